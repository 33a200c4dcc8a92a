"""Backward smoothing of the particle filter against an exact Rauch–Tung–Striebel smoother."""

import numpy as np
import pytest
import torch

from nwb_lrnn import LowRankRNN
from nwb_lrnn.inference import backward_smoothing, make_proposal, particle_filter

from .test_smc import _linear_model, linear_gaussian_matrices


def rts_smoother(model, y):
    """Exact E[z_t | y] and SD of the linear-Gaussian model, (B, T, R) each (float64)."""
    tr = model.transition
    with torch.no_grad():
        A, b, Q, C, d, Rn = linear_gaussian_matrices(model)
        means, sds = [], []
        for seq in y:
            mf, Pf, mp, Pp = [], [], [], []
            mu, P = tr.init_mean.clone(), tr.init_noise.cov()
            for t, yt in enumerate(seq):
                if t > 0:
                    mu, P = A @ mu + b, A @ P @ A.T + Q
                mp.append(mu)
                Pp.append(P)
                S = C @ P @ C.T + Rn
                K = P @ C.T @ torch.linalg.inv(S)
                mu, P = mu + K @ (yt - C @ mu - d), P - K @ C @ P
                mf.append(mu)
                Pf.append(P)
            ms, Ps = [mf[-1]], [Pf[-1]]
            for t in range(len(seq) - 2, -1, -1):
                J = Pf[t] @ A.T @ torch.linalg.inv(Pp[t + 1])
                ms.insert(0, mf[t] + J @ (ms[0] - mp[t + 1]))
                Ps.insert(0, Pf[t] + J @ (Ps[0] - Pp[t + 1]) @ J.T)
            means.append(torch.stack(ms))
            sds.append(torch.stack([p.diagonal().sqrt() for p in Ps]))
        return torch.stack(means), torch.stack(sds)


@pytest.mark.parametrize("proposal", ["optimal", "bootstrap"])
def test_backward_smoothing_matches_the_exact_smoother_better_than_the_paths(proposal):
    model, g = _linear_model(obs_sd=0.7)
    _, y = model.sample(2, 120, generator=g)
    exact_mean, exact_sd = rts_smoother(model, y)
    prop = make_proposal(proposal, model, generator=g).double()
    err_b, err_p, sd_err = [], [], []
    with torch.no_grad():
        for _ in range(4):
            res = particle_filter(model, prop, y, n_particles=128, generator=g,
                                  return_particles=True)
            mu_b, sd_b = backward_smoothing(res, model.transition)
            mu_p, _ = res.smoothed_mean_std()
            err_b.append(((mu_b - exact_mean) ** 2).mean())
            err_p.append(((mu_p - exact_mean) ** 2).mean())
            sd_err.append((sd_b / exact_sd - 1).abs().median())
    err_b, err_p = float(torch.stack(err_b).mean()), float(torch.stack(err_p).mean())
    scale = float(exact_sd.pow(2).mean())  # the posterior variance
    # backward smoothing: a Monte Carlo error far below the posterior's own spread, and below
    # the ancestral paths' (which collapse onto few ancestors far from the end)
    assert err_b < 0.1 * scale, (err_b, scale)
    assert err_b < 0.5 * err_p, (err_b, err_p)
    assert float(torch.stack(sd_err).mean()) < 0.15


def test_backward_smoothing_follows_the_inputs():
    """With inputs, the transition t -> t + 1 is driven by inputs[:, t]: the smoother must
    use the same drive (a wrong one shifts the means far beyond the Monte Carlo error)."""
    rng = np.random.default_rng(0)
    U, V = rng.normal(size=(6, 2)) / 2, rng.normal(size=(2, 6)) / 4
    est = LowRankRNN.from_parameters(U=U, V=V, decay=0.8, nonlinearity="identity",
                                     noise_z=0.3, C=rng.normal(size=(4, 2)), noise_x=0.5,
                                     B=rng.normal(size=(6, 1)), n_particles=256,
                                     random_state=0)
    u = np.sign(np.sin(np.arange(80) / 5.0))[None, :, None] * 2.0
    data = est.sample(1, 80, inputs=u, random_state=1)
    model = est.model_.double()
    y, uu = data.astensor(dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    prop = make_proposal("optimal", model, generator=g).double()
    with torch.no_grad():
        res = particle_filter(model, prop, y, inputs=uu, n_particles=256, generator=g,
                              return_particles=True)
        with_u = backward_smoothing(res, model.transition, uu)[0]
        without = backward_smoothing(res, model.transition)[0]
    filt = res.filtering_mean()
    # at the last step both equal the filter; earlier, the driven smoother stays near the
    # filter's estimate and the undriven one does not
    assert torch.allclose(with_u[:, -1], filt[:, -1])
    assert float((with_u - filt).abs().mean()) < 0.5 * float((without - filt).abs().mean())


def test_transform_picks_the_smoother():
    rng = np.random.default_rng(0)
    U, V = rng.normal(size=(6, 2)) / 2, rng.normal(size=(2, 6)) / 4
    est = LowRankRNN.from_parameters(U=U, V=V, decay=0.8, noise_z=0.3,
                                     C=rng.normal(size=(4, 2)), noise_x=0.5, n_particles=32,
                                     random_state=0)
    data = est.sample(2, 60, random_state=1)
    auto = est.transform(data)
    assert np.allclose(auto, est.transform(data, smoother="backward"))
    assert not np.allclose(auto, est.transform(data, smoother="paths"))
    ar = LowRankRNN.from_parameters(U=U, V=V, decay=0.8, noise_z=0.3,
                                    C=rng.normal(size=(4, 2)), noise_x=0.5, noise_ar=0.5,
                                    observation="gaussian_ar1", n_particles=16, random_state=0)
    d2 = ar.sample(1, 40, random_state=1)
    assert np.allclose(ar.transform(d2), ar.transform(d2, smoother="paths"))
    with pytest.raises(ValueError, match="noise with memory"):
        ar.transform(d2, smoother="backward")
    with pytest.raises(ValueError, match="smoother"):
        est.transform(data, smoother="rts")


def test_many_sequences_are_smoothed_in_chunks_as_one_by_one():
    """K = 512 puts 8 sequences in a chunk: 20 sequences take three chunks, and each must come
    out as when smoothed alone."""
    from nwb_lrnn.inference import SMCResult

    model, g = _linear_model()
    _, y = model.sample(20, 6, generator=g)
    prop = make_proposal("optimal", model, generator=g).double()
    with torch.no_grad():
        res = particle_filter(model, prop, y, n_particles=512, generator=g,
                              return_particles=True)
        mu, sd = backward_smoothing(res, model.transition)
        for b in (0, 9, 19):
            one = SMCResult(res.log_marginal[b:b + 1], res.ess[:, b:b + 1],
                            res.particles[:, :, b:b + 1], res.log_weights[:, :, b:b + 1],
                            res.ancestors[:, :, b:b + 1])
            mu1, sd1 = backward_smoothing(one, model.transition)
            assert torch.allclose(mu[b:b + 1], mu1, atol=1e-12)
            assert torch.allclose(sd[b:b + 1], sd1, atol=1e-12)
