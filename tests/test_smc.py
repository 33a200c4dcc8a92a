"""The particle filter against an exact Kalman filter (linear-Gaussian case)."""

import math

import numpy as np
import pytest
import torch

from nwb_lrnn.inference import (
    BootstrapProposal,
    MultinomialResampler,
    OptimalGaussianProposal,
    SystematicResampler,
    make_proposal,
    particle_filter,
)
from nwb_lrnn.model import LowRankRNNModel, ModelConfig


def _linear_model(seed=0, obs_sd=1.0, noise_sd=0.3, n_channels=4, noise_cov="full"):
    g = torch.Generator().manual_seed(seed)
    model = LowRankRNNModel(ModelConfig(rank=2, n_units=6, n_channels=n_channels,
                                        nonlinearity="identity", noise_cov=noise_cov),
                            generator=g).double()
    rho = 0.3 if noise_cov == "full" else 0.0
    with torch.no_grad():
        model.transition.noise.set_cov(torch.tensor([[noise_sd**2, rho * noise_sd**2],
                                                     [rho * noise_sd**2, noise_sd**2]]))
        model.observation.raw_sd.fill_(math.log(math.expm1(obs_sd)))
        model.transition.init_mean.copy_(torch.tensor([0.5, -0.5]))
    return model, g


def linear_gaussian_matrices(model):
    """(A, b, Q, C, d, R_noise) of a linear model with white Gaussian observations:
    z_{t+1} = A z_t + b + N(0, Q), y_t = C z_t + d + N(0, R_noise)."""
    tr, ob = model.transition, model.observation
    with torch.no_grad():
        A = torch.diag(tr.decay.expand(tr.rank)) + tr.V @ tr.U
        return A, -tr.V @ tr.h, tr.noise.cov(), ob.C, ob.d, torch.diag(ob.sd() ** 2)


def kalman_log_marginal(model, y):
    """Exact log p(y) of the linear-Gaussian state-space model, per sequence (float64)."""
    tr = model.transition
    with torch.no_grad():
        A, b, Q, C, d, Rn = linear_gaussian_matrices(model)
        out = []
        for seq in y:
            mu, P, ll = tr.init_mean.clone(), tr.init_noise.cov(), 0.0
            for t, yt in enumerate(seq):
                if t > 0:
                    mu, P = A @ mu + b, A @ P @ A.T + Q
                S = C @ P @ C.T + Rn
                ll += torch.distributions.MultivariateNormal(C @ mu + d, S).log_prob(yt)
                K = P @ C.T @ torch.linalg.inv(S)
                mu, P = mu + K @ (yt - C @ mu - d), P - K @ C @ P
            out.append(ll)
        return torch.stack(out)


def _estimates(model, proposal, y, K, n_rep, g, **kw):
    with torch.no_grad():
        return torch.stack([particle_filter(model, proposal, y, n_particles=K, generator=g,
                                            **kw).log_marginal for _ in range(n_rep)])


@pytest.mark.parametrize("proposal,noise_cov", [("bootstrap", "full"), ("optimal", "full"),
                                                ("encoder", "full"), ("encoder", "diag"),
                                                ("optimal", "diag")])
def test_log_marginal_matches_kalman(proposal, noise_cov):
    model, g = _linear_model(noise_cov=noise_cov)
    _, y = model.sample(3, 30, generator=g)
    exact = kalman_log_marginal(model, y)
    prop = make_proposal(proposal, model, generator=g).double()
    errs = {}
    for K in (16, 512):
        est = _estimates(model, prop, y, K, 20, g)
        err = (est - exact).abs().mean(0)
        sem = est.std(0) / math.sqrt(est.shape[0])
        # Jensen: E[log Ẑ] <= log Z (Ẑ is unbiased for Z)
        assert torch.all(est.mean(0) <= exact + 4 * sem), (proposal, K, est.mean(0), exact)
        if K == 512:  # many particles: within about Var/2 (the bias) plus 4 standard errors
            tol = 0.5 * est.var(0) + 4 * sem + 0.05
            assert torch.all((est.mean(0) - exact).abs() <= tol), (proposal, est.mean(0), exact)
        errs[K] = float(err.mean())
    assert errs[512] < errs[16], errs  # the Monte Carlo error shrinks with particles


def test_optimal_proposal_has_lower_variance_than_bootstrap():
    # informative observations (small observation noise): the bootstrap struggles
    model, g = _linear_model(obs_sd=0.2, noise_sd=0.5, n_channels=6)
    _, y = model.sample(4, 40, generator=g)
    exact = kalman_log_marginal(model, y)
    boot = _estimates(model, BootstrapProposal(), y, 64, 20, g)
    opt = _estimates(model, OptimalGaussianProposal(), y, 64, 20, g)
    assert torch.all(opt.std(0) < 0.5 * boot.std(0)), (opt.std(0), boot.std(0))
    assert (opt.mean(0) - exact).abs().max() < (boot.mean(0) - exact).abs().max()


def test_adaptive_resampling_and_multinomial_agree_with_kalman():
    model, g = _linear_model()
    _, y = model.sample(2, 25, generator=g)
    exact = kalman_log_marginal(model, y)
    for kw in ({"ess_threshold": 0.5}, {"resampler": MultinomialResampler()}):
        est = _estimates(model, OptimalGaussianProposal(), y, 256, 15, g, **kw)
        assert torch.all((est.mean(0) - exact).abs() < 0.5 * est.var(0) + 4 * est.std(0) / 4
                         + 0.05), kw
    res = particle_filter(model, OptimalGaussianProposal(), y, n_particles=64, generator=g,
                          ess_threshold=0.3)
    assert not bool(res.resampled.all())  # some steps skipped resampling


def test_filter_result_shapes_and_smoothing():
    model, g = _linear_model()
    _, y = model.sample(3, 20, generator=g)
    res = particle_filter(model, OptimalGaussianProposal(), y, n_particles=32, generator=g,
                          return_particles=True)
    assert res.particles.shape == (20, 32, 3, 2)
    assert res.log_weights.shape == (20, 32, 3)
    assert res.ancestors.shape == (20, 32, 3)
    assert res.ess.shape == (20, 3)
    assert torch.all(res.ess <= 32 + 1e-6) and torch.all(res.ess >= 1 - 1e-6)
    torch.testing.assert_close(res.log_weights.exp().sum(1), torch.ones(20, 3,
                                                                         dtype=torch.float64))
    mu_f = res.filtering_mean()
    mu_s, sd_s = res.smoothed_mean_std()
    assert mu_f.shape == mu_s.shape == sd_s.shape == (3, 20, 2)
    # last step: the smoothed and filtering posteriors coincide
    torch.testing.assert_close(mu_f[:, -1], mu_s[:, -1])


def test_no_gradient_through_resampling_but_through_particles():
    model, g = _linear_model()
    model = model.float()
    _, y = model.sample(2, 15, generator=g)
    res = particle_filter(model, OptimalGaussianProposal(), y, n_particles=8, generator=g)
    res.log_marginal.sum().backward()
    assert model.transition.U_t.grad is not None
    assert torch.isfinite(model.transition.U_t.grad).all()
    anc = SystematicResampler()(torch.randn(8, 2, requires_grad=True), g)
    assert not anc.requires_grad and anc.dtype == torch.int64


@pytest.mark.parametrize("resampler", [SystematicResampler(), MultinomialResampler()])
def test_resamplers_follow_the_weights(resampler):
    g = torch.Generator().manual_seed(3)
    w = torch.tensor([0.1, 0.2, 0.3, 0.4])
    counts = np.zeros(4)
    for _ in range(500):
        idx = resampler(torch.log(w)[:, None].expand(4, 8).contiguous(), g)
        counts += np.bincount(idx.flatten().numpy(), minlength=4)
    np.testing.assert_allclose(counts / counts.sum(), w.numpy(), atol=0.02)


def test_systematic_resampling_is_low_variance():
    g = torch.Generator().manual_seed(0)
    w = torch.log(torch.tensor([0.25, 0.25, 0.25, 0.25]))[:, None]
    idx = SystematicResampler()(w, g)
    assert sorted(idx[:, 0].tolist()) == [0, 1, 2, 3]  # equal weights: each kept once


@pytest.mark.parametrize("case", [
    dict(observation="gaussian", proposal="optimal", nonlinearity="clipped_relu",
         noise_cov="full"),
    dict(observation="gaussian", proposal="optimal", nonlinearity="tanh", decay_per_dim=True),
    dict(observation="poisson", proposal="encoder", nonlinearity="relu", link="softplus"),
    dict(observation="poisson", proposal="encoder", nonlinearity="tanh", link="exp",
         decay_per_dim=True),
])
@pytest.mark.parametrize("block", [None, 100, 720])  # 720: blocks of 4 steps, the last partial
def test_fused_loop_matches_autograd_exactly(case, block, monkeypatch):
    """The hand-written backward of the fused loops gives autograd's values and gradients
    (also when the backward pass works through the steps in several blocks and recomputes
    what it did not keep)."""
    if block is not None:
        from nwb_lrnn.inference import fused

        monkeypatch.setattr(fused, "_BLOCK_ELEMENTS", block)
        monkeypatch.setattr(fused, "_KEEP_ELEMENTS", 0)
    case = dict(case)
    prop_name = case.pop("proposal")
    cfg = ModelConfig(rank=2, n_units=12, n_channels=5, bin_size=0.05, **case)
    model = LowRankRNNModel(cfg, generator=torch.Generator().manual_seed(0)).double()
    if cfg.observation == "poisson":
        model.observation.init_from_rates(torch.full((5,), 0.5, dtype=torch.float64))
    prop = make_proposal(prop_name, model, generator=torch.Generator().manual_seed(1)).double()
    _, y = model.sample(3, 15, generator=torch.Generator().manual_seed(2))
    params = list(model.parameters()) + list(prop.parameters())
    out = {}
    for fused in (True, False):
        for p in params:
            p.grad = None
        res = particle_filter(model, prop, y, n_particles=5, fused=fused,
                              generator=torch.Generator().manual_seed(3))
        (res.log_marginal * torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)).sum().backward()
        out[fused] = (res.log_marginal.detach(), [p.grad.clone() for p in params])
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-12, atol=1e-10)
    for g_fused, g_auto in zip(out[True][1], out[False][1], strict=True):
        torch.testing.assert_close(g_fused, g_auto, rtol=1e-9, atol=1e-11)
    # the fused path really ran: it leaves no per-step autograd nodes behind
    with torch.enable_grad():
        res = particle_filter(model, prop, y, n_particles=5,
                              generator=torch.Generator().manual_seed(3))
    assert "Loop" in type(_find_loop_node(res.log_marginal.grad_fn)).__name__


def _find_loop_node(fn, seen=None):
    seen = set() if seen is None else seen
    stack = [fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if "Loop" in type(node).__name__:
            return node
        stack.extend(n for n, _ in node.next_functions)
    return None


def test_encoder_of_the_reference_architecture_is_causal_or_wraps_around():
    from nwb_lrnn.inference import Encoder

    torch.manual_seed(0)
    for padding in ("zeros", "circular"):
        enc = Encoder(5, 2, hidden=8, kernel_size=(7, 3, 1), causal=True, padding=padding)
        assert [c.kernel_size[0] for c in enc.convs] == [7, 3, 1]
        assert [(c.in_channels, c.out_channels) for c in enc.convs] == [(5, 8), (8, 8), (8, 4)]
        assert enc.flops(3, 10) == 2 * (5 * 8 * 7 + 8 * 8 * 3 + 8 * 4) * 30
        y = torch.randn(2, 4, 5, requires_grad=True)  # a window shorter than the first kernel
        mean, sd = enc(y)
        assert mean.shape == sd.shape == (2, 4, 2) and bool((sd > 0).all())
        # which inputs the encoding of the first step depends on
        enc.conv3.weight.data.normal_()
        grad, = torch.autograd.grad(enc(y)[0][:, 0].sum(), y)
        touched = grad.abs().sum((0, 2)) > 0
        if padding == "zeros":  # causal: y_0 only
            assert touched.tolist() == [True, False, False, False]
        else:  # the window wrapped around: the last steps are seen before the first
            assert touched.all()
    # the package's default: two convolutions of one size, centred
    enc = Encoder(5, 2)
    assert [c.kernel_size[0] for c in enc.convs] == [11, 11] and not enc.causal
    with pytest.raises(ValueError, match="encoder_padding"):
        Encoder(5, 2, padding="reflect")
    with pytest.raises(ValueError, match="encoder_kernel"):
        Encoder(5, 2, kernel_size=[0, 3])


def test_three_layer_circular_encoder_agrees_with_kalman():
    model, g = _linear_model(noise_cov="diag")
    _, y = model.sample(2, 30, generator=g)
    exact = kalman_log_marginal(model, y)
    prop = make_proposal("encoder", model, generator=g, kernel_size=(9, 5, 1), hidden=16,
                         causal=True, padding="circular").double()
    est = _estimates(model, prop, y, 512, 10, g)
    tol = 0.5 * est.var(0) + 4 * est.std(0) / math.sqrt(10) + 0.05
    assert torch.all((est.mean(0) - exact).abs() <= tol), (est.mean(0), exact)


def _ar1_model(seed=0, ar=0.8, obs_sd=0.3, n_channels=4):
    g = torch.Generator().manual_seed(seed)
    model = LowRankRNNModel(ModelConfig(rank=2, n_units=6, n_channels=n_channels,
                                        nonlinearity="identity", noise_cov="full",
                                        observation="gaussian_ar1"), generator=g).double()
    with torch.no_grad():
        model.transition.noise.set_cov(torch.tensor([[0.09, 0.02], [0.02, 0.09]]))
        # innovations correlated across channels (0.4 between neighbours)
        idx = torch.arange(n_channels, dtype=torch.float64)
        corr = 0.4 ** (idx[:, None] - idx[None, :]).abs()
        model.observation.innovation.set_cov(obs_sd ** 2 * corr)
        a = torch.linspace(-0.3, ar, n_channels, dtype=torch.float64)
        model.observation.raw_ar.copy_(torch.atanh(a / 0.999))
        model.transition.init_mean.copy_(torch.tensor([0.5, -0.5]))
    return model, g


def kalman_log_marginal_ar1(model, y):
    """Exact log p(y) with AR(1) or VAR(1) observation noise: a Kalman filter on the state
    (z, e)."""
    tr, ob = model.transition, model.observation
    with torch.no_grad():
        R, C = tr.rank, ob.n_channels
        A = torch.zeros(R + C, R + C, dtype=torch.float64)
        A[:R, :R] = torch.diag(tr.decay.expand(R)) + tr.V @ tr.U
        a = ob.ar()  # (C,) for gaussian_ar1, (C, C) for gaussian_var1
        A[R:, R:] = a if a.ndim == 2 else torch.diag(a)
        b = torch.cat([-tr.V @ tr.h, torch.zeros(C, dtype=torch.float64)])
        Q = torch.block_diag(tr.noise.cov(), ob.chol() @ ob.chol().T)
        H = torch.cat([ob.C, torch.eye(C, dtype=torch.float64)], 1)
        out = []
        for seq in y:
            mu = torch.cat([tr.init_mean, torch.zeros(C, dtype=torch.float64)])
            P = torch.block_diag(tr.init_noise.cov(), ob.stationary_cov())
            ll = 0.0
            for t, yt in enumerate(seq):
                if t > 0:
                    mu, P = A @ mu + b, A @ P @ A.T + Q
                S = H @ P @ H.T
                ll += torch.distributions.MultivariateNormal(H @ mu + ob.d, S).log_prob(yt)
                K = P @ H.T @ torch.linalg.inv(S)
                mu, P = mu + K @ (yt - H @ mu - ob.d), P - K @ H @ P
            out.append(ll)
        return torch.stack(out)


def test_ar1_observation_noise_log_marginal_matches_kalman():
    model, g = _ar1_model()
    _, y = model.sample(3, 30, generator=g)
    exact = kalman_log_marginal_ar1(model, y)
    prop = make_proposal("optimal", model, generator=g).double()
    est = _estimates(model, prop, y, 512, 20, g)
    sem = est.std(0) / math.sqrt(est.shape[0])
    tol = 0.5 * est.var(0) + 4 * sem + 0.05
    assert torch.all((est.mean(0) - exact).abs() <= tol), (est.mean(0), exact)
    # the same data seen as white noise: a different (worse) model, far from the exact value
    with torch.no_grad():
        white, _ = _linear_model(obs_sd=float(model.observation.stationary_sd().mean()))
        assert float((kalman_log_marginal(white, y) - exact).abs().min()) > 1.0
        # the exact joint density of one path, against scipy
        z, y1 = model.sample(1, 5, generator=g)
        lp = model.observation.log_prob_sequence(y1, z)
        e = (y1 - model.observation.mean(z))[0].numpy()
        a = model.observation.ar().numpy()
        S = model.observation.innovation_cov().numpy()
    from scipy.stats import multivariate_normal as mvn
    S0 = S / (1 - a[:, None] * a[None, :])  # the stationary covariance
    ref = mvn.logpdf(e[0], cov=S0) + sum(mvn.logpdf(e[t], mean=a * e[t - 1], cov=S)
                                         for t in range(1, 5))
    assert abs(float(lp) - ref) < 1e-9


@pytest.mark.parametrize("proposal", ["bootstrap", "encoder"])
def test_ar1_observation_refuses_proposals_that_ignore_the_previous_bin(proposal):
    model, g = _ar1_model()
    with pytest.raises(ValueError, match="can only be filtered by proposal='optimal'"):
        make_proposal(proposal, model, generator=g)
