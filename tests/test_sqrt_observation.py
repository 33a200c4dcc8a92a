"""Spike counts as Gaussian on the variance-stabilised scale (observation='gaussian_sqrt')."""

import math

import numpy as np
import pytest
import torch

from nwb_lrnn import BinnedData, LowRankRNN, read_fit, write_nwb
from nwb_lrnn.baselines import compare_to_baselines
from nwb_lrnn.inference import make_proposal
from nwb_lrnn.model import LowRankRNNModel, ModelConfig

from .test_smc import _estimates, kalman_log_marginal


def _pair(seed=0):
    """The same linear model with Gaussian and with gaussian_sqrt observations (float64)."""
    g = torch.Generator().manual_seed(seed)
    kw = dict(rank=2, n_units=6, n_channels=5, nonlinearity="identity", noise_cov="full")
    gauss = LowRankRNNModel(ModelConfig(**kw), generator=g).double()
    sqrt = LowRankRNNModel(ModelConfig(**kw, observation="gaussian_sqrt")).double()
    with torch.no_grad():
        gauss.transition.noise.set_cov(torch.tensor([[0.09, 0.02], [0.02, 0.09]]))
        gauss.observation.d.copy_(torch.linspace(2.0, 4.0, 5))  # 2 √(y + 3/8) at 0.6-3.6 Hz
        gauss.observation.raw_sd.copy_(torch.linspace(-1.0, 0.5, 5))
        sqrt.load_state_dict(gauss.state_dict())
    return gauss, sqrt, g


def test_log_prob_is_the_gaussian_density_of_the_stabilised_counts_times_the_jacobian():
    _, sqrt, _ = _pair()
    ob = sqrt.observation
    rng = np.random.default_rng(0)
    y = torch.as_tensor(rng.poisson(3.0, size=(7, 5)), dtype=torch.float64)
    z = torch.as_tensor(rng.normal(size=(7, 2)))
    from scipy.stats import norm

    with torch.no_grad():
        mu = (z @ ob.C.T + ob.d).numpy()
        sd = ob.sd().numpy()
        got = ob.log_prob(y, z).numpy()
    x = 2.0 * np.sqrt(y.numpy() + 0.375)
    # |dx/dy| = 1 / √(y + 3/8)
    ref = (norm.logpdf(x, mu, sd) - 0.5 * np.log(y.numpy() + 0.375)).sum(-1)
    assert np.allclose(got, ref, atol=1e-10)
    # over y >= 0 the density of y integrates to P(x >= 2√(3/8)) (a change of variables)
    one = LowRankRNNModel(ModelConfig(rank=1, n_units=2, n_channels=1,
                                      observation="gaussian_sqrt")).double().observation
    with torch.no_grad():
        one.d.fill_(1.5)
        one.raw_sd.fill_(0.0)
        t = torch.linspace(0.0, 80.0, 400_001, dtype=torch.float64)[:, None]
        mass = torch.trapezoid(torch.exp(one.log_prob(t, torch.zeros(1, 1,
                                                                     dtype=torch.float64))),
                               t[:, 0])
        inside = 1.0 - norm.cdf(2.0 * math.sqrt(0.375), 1.5, float(one.sd()))
    assert abs(float(mass) - inside) < 1e-4, (float(mass), inside)


def test_the_filter_is_the_gaussian_filter_of_the_stabilised_counts():
    gauss, sqrt, g = _pair()
    rng = np.random.default_rng(1)
    y = torch.as_tensor(rng.poisson(2.0, size=(3, 25, 5)), dtype=torch.float64)
    x = 2.0 * torch.sqrt(y + 0.375)
    jac = -0.5 * torch.log(y + 0.375).sum((1, 2))
    exact = kalman_log_marginal(gauss, x) + jac  # exact, the linear model's Kalman filter
    prop = make_proposal("optimal", sqrt, generator=g).double()
    est = _estimates(sqrt, prop, y, 256, 10, g)
    tol = 0.5 * est.var(0) + 4 * est.std(0) / math.sqrt(est.shape[0]) + 0.05
    assert torch.all((est.mean(0) - exact).abs() <= tol), (est.mean(0), exact)


def test_samples_are_counts_with_the_model_mean():
    _, sqrt, _ = _pair()
    ob = sqrt.observation
    z = torch.zeros(200_000, 2, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        y = ob.sample(z, g)
        mean = ob.mean(z[:1])[0]
    assert torch.all(y >= 0) and torch.equal(y, y.round())
    # E[y] ≈ (μ² + σ²)/4 − 3/8: the rounding and the clip at 0 move it by < 0.1 count here
    assert torch.allclose(y.mean(0), mean, atol=0.1), (y.mean(0), mean)


def test_fit_compare_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    lam = np.exp(0.5 * np.sin(np.arange(120) / 6.0))[None, :, None] * rng.uniform(1, 4, 8)
    data = BinnedData(rng.poisson(np.broadcast_to(lam, (6, 120, 8))).astype(float),
                      kind="counts", bin_size=0.05)
    est = LowRankRNN(rank=2, n_units=8, observation="gaussian_sqrt", n_particles=8,
                     max_epochs=3, validation_fraction=0.25, random_state=0,
                     verbose=False).fit(data)
    assert est.proposal_.name == "optimal" and est.kind_ == "counts"
    assert np.isfinite(est.score(data))
    gen = est.sample(2, 40, random_state=0)
    assert gen.kind == "counts" and np.all(gen.values == np.round(gen.values))
    train, test = est.split(data)
    rows = compare_to_baselines(est, train, test, k=2, n_draws=2)
    # its density is not a probability of the counts: no log-likelihood beside Poisson's
    assert math.isnan(rows[0]["loglik_per_bin"])
    from nwb_lrnn.baselines import format_comparison

    assert format_comparison(rows).splitlines()[1].split()[:2] == ["lowrank_rnn", "n/a"]
    assert np.isfinite(rows[0]["mse_1"]) and np.isfinite(rows[1]["loglik_per_bin"])
    path = tmp_path / "fit.nwb"
    write_nwb(est, path, data=data, include=("model",))
    back = read_fit(path)
    assert back.model_config_.observation == "gaussian_sqrt"
    assert np.allclose(back.transform(data), est.transform(data))
    # 'auto' picks it for counts
    assert LowRankRNN(max_epochs=1, n_units=4, rank=1, verbose=False).fit(
        data).model_config_.observation == "gaussian_sqrt"


def test_continuous_data_are_refused():
    with pytest.raises(ValueError, match="needs spike counts"):
        LowRankRNN(rank=1, n_units=4, observation="gaussian_sqrt", max_epochs=1,
                   verbose=False).fit(np.random.default_rng(0).normal(size=(2, 30, 3)))


def _principal_angle(A, B):
    """Largest principal angle (degrees) between the column spaces of A and B."""
    qa, qb = np.linalg.qr(A)[0], np.linalg.qr(B)[0]
    s = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return float(np.degrees(np.arccos(np.clip(s.min(), -1.0, 1.0))))


def test_the_readout_starts_from_factor_analysis_not_from_the_noisiest_neurons():
    """Stabilised counts whose shared part lies in a known 2-D subspace, two neurons with a
    large private variance of their own: the start (factor analysis) finds the shared
    subspace and each neuron's noise, where PCA's axes turn towards the two noisy neurons."""
    from nwb_lrnn.model.observation import fa_loadings, pca_loadings

    rng = np.random.default_rng(0)
    n, C, R = 6000, 12, 2
    W = rng.normal(0.0, 0.6, size=(C, R))
    private = np.full(C, 1.0)
    private[[3, 8]] = 3.0  # bursty neurons
    x = 8.0 + rng.normal(size=(n, R)) @ W.T + rng.normal(size=(n, C)) * np.sqrt(private)
    y = (x / 2.0) ** 2 - 0.375  # the values whose 2 sqrt(y + 3/8) is x
    model = LowRankRNNModel(ModelConfig(rank=R, n_units=8, n_channels=C,
                                        observation="gaussian_sqrt"))
    model.observation.init_from_data(torch.as_tensor(y[None]), 0.05, R)
    xs = torch.as_tensor(x, dtype=torch.float32)
    C_pca = pca_loadings(xs - xs.mean(0), R)[0].numpy()
    assert _principal_angle(model.observation.C.detach().numpy(), W) < 10.0
    assert _principal_angle(C_pca, W) > 30.0
    sd = model.observation.sd().detach().numpy()
    np.testing.assert_allclose(sd**2, private, rtol=0.15)  # the private noise, per neuron
    # more factors asked than channels: the extra columns are 0; a constant channel is no error
    xs2 = xs[:, :3].clone()
    xs2[:, 1] = xs2[0, 1]
    C3, noise3 = fa_loadings(xs2, 5)
    assert C3.shape == (3, 5) and torch.all(C3[:, 3:] == 0) and torch.isfinite(noise3).all()
