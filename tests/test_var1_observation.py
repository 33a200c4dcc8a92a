"""Gaussian observations with VAR(1) noise across channels (observation='gaussian_var1')."""

import dataclasses
import math

import h5py
import numpy as np
import pytest
import torch

from nwb_lrnn import LowRankRNN, read_fit, write_nwb
from nwb_lrnn.inference import make_proposal
from nwb_lrnn.model import LowRankRNNModel, ModelConfig
from nwb_lrnn.model.observation import GaussianVAR1Observation, innovation_floor

from .test_smc import _estimates, kalman_log_marginal_ar1


def _coupled_map(n, rho=0.85, seed=0):
    """A stable (n, n) map with off-diagonal coupling and spectral radius ``rho``."""
    rng = np.random.default_rng(seed)
    A = np.diag(np.linspace(0.9, -0.2, n)) + 0.3 * rng.normal(size=(n, n))
    return A * (rho / np.abs(np.linalg.eigvals(A)).max())


def _linear_var1(n=4, sd=0.3, seed=0):
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(6, 2)) / 2, rng.normal(size=(2, 6)) / 4
    cov = sd ** 2 * (0.6 * np.eye(n) + 0.4)
    return LowRankRNN.from_parameters(U=U, V=V, decay=0.8, nonlinearity="identity",
                                      noise_z=0.2, C=rng.normal(size=(n, 2)),
                                      d=np.arange(n, dtype=float), noise_x_cov=cov,
                                      noise_ar_matrix=_coupled_map(n, seed=seed),
                                      n_particles=256, observation="gaussian_var1",
                                      random_state=0)


@pytest.mark.parametrize("floor", [0.0, 0.05])
def test_every_parameter_value_is_a_stationary_var1(floor):
    torch.manual_seed(0)
    obs = GaussianVAR1Observation(6, 2).double()
    obs.noise_floor.fill_(floor)
    for scale in (0.1, 3.0, 30.0):
        with torch.no_grad():
            obs.raw_coupling.normal_(0.0, scale)
            obs.stationary.offdiag.normal_(0.0, 0.5)
        with torch.no_grad():
            S, A, L = obs._factors()
        assert float(torch.linalg.eigvals(A).abs().max()) < 1.0
        Se = S @ S.T  # Σ_e = A Σ_e Aᵀ + Σ_η, and L is Σ_η's Cholesky factor
        assert torch.allclose(Se, A @ Se @ A.T + L @ L.T, atol=1e-10)
        assert torch.allclose(L, torch.tril(L)) and bool((L.diagonal() > 0).all())
        # Σ_η never below the floor, however large the coupling
        assert float(torch.linalg.eigvalsh(L @ L.T)[0]) >= floor * (1 - 1e-9)
        # named arrays back to parameters, exactly
        twin = GaussianVAR1Observation(6, 2).double()
        twin.load_arrays(obs.to_arrays())
        for k, v in obs.to_arrays().items():
            np.testing.assert_allclose(twin.to_arrays()[k], v, atol=1e-9, rtol=1e-9)


def test_the_floor_is_a_tenth_of_the_datas_smallest_var1_innovation():
    rng = np.random.default_rng(1)
    n, T = 5, 4000
    A = _coupled_map(n, rho=0.9, seed=1)
    Q = np.diag([1.0, 0.5, 0.2, 0.1, 0.02])
    y = np.zeros((2, T, n))
    for t in range(1, T):
        y[:, t] = y[:, t - 1] @ A.T + rng.normal(size=(2, n)) @ np.sqrt(Q)
    y += 3.0
    # independent: least squares per trial pair, numpy
    yc = y - y.reshape(-1, n).mean(0)
    X, Y = yc[:, :-1].reshape(-1, n), yc[:, 1:].reshape(-1, n)
    coef = np.linalg.lstsq(X, Y, rcond=None)[0]
    E = Y - X @ coef
    want = 0.1 * np.linalg.eigvalsh(E.T @ E / len(E))[0]
    assert innovation_floor(torch.as_tensor(y)) == pytest.approx(want, rel=1e-4)
    assert want == pytest.approx(0.1 * 0.02, rel=0.15)
    # data with an exactly silent direction (an average reference): 1e-6 of the variance
    avg = yc - yc.mean(-1, keepdims=True)
    var = np.mean(avg[:, :-1].reshape(-1, n).var(0))
    assert innovation_floor(torch.as_tensor(avg)) == pytest.approx(1e-6 * var, rel=0.01)


def test_ar1_noise_keeps_its_floor_and_its_named_arrays():
    from nwb_lrnn.model.observation import GaussianAR1Observation

    torch.manual_seed(0)
    obs = GaussianAR1Observation(5, 2).double()
    with torch.no_grad():
        obs.innovation.set_cov(torch.diag(torch.tensor([1.0, 0.5, 1e-9, 1e-9, 0.2])))
        obs.raw_ar.normal_()
    obs.noise_floor.fill_(0.03)
    with torch.no_grad():
        L = obs.chol()
    lo = float(torch.linalg.eigvalsh(L @ L.T)[0])
    assert lo == pytest.approx(0.03, rel=1e-6)  # 1e-9 + ε
    twin = GaussianAR1Observation(5, 2).double()
    twin.load_arrays(obs.to_arrays())
    assert float(twin.noise_floor) == pytest.approx(0.5 * lo)
    for k, v in obs.to_arrays().items():
        np.testing.assert_allclose(twin.to_arrays()[k], v, atol=1e-12, rtol=1e-9)


def test_the_fit_sets_the_floor_and_files_without_one_still_load():
    from nwb_lrnn.estimator import export_fit, import_fit

    est = _linear_var1()
    data = est.sample(4, 60, random_state=2)
    fit = LowRankRNN(rank=2, n_units=8, observation="gaussian_var1", max_epochs=1,
                     n_particles=8, verbose=False, random_state=0).fit(data)
    obs = fit.model_.observation
    floor = float(obs.noise_floor)
    assert 0.0 < floor < 0.1 * float(torch.linalg.eigvalsh(
        torch.as_tensor(est.parameters_["noise_x_cov"]))[-1])
    with torch.no_grad():
        L = obs._factors()[2]
    assert float(torch.linalg.eigvalsh(L @ L.T)[0]) >= floor * (1 - 1e-6)
    record = export_fit(fit)
    assert "model.observation.noise_floor" in record.state
    old = dict(record.state)
    del old["model.observation.noise_floor"]
    twin = import_fit(dataclasses.replace(record, state=old))
    assert float(twin.model_.observation.noise_floor) == 0.0
    with torch.no_grad():
        obs.noise_floor.fill_(0.0)
        for a, b in zip(obs._factors(), twin.model_.observation._factors(), strict=True):
            torch.testing.assert_close(a, b)


def test_generated_noise_has_the_stationary_covariance_and_the_map():
    est = _linear_var1()
    obs = est.model_.observation
    with torch.no_grad():
        e = obs.noise((300, 200, 4), torch.Generator().manual_seed(0),
                      dtype=torch.float64).numpy()
        Se = obs.stationary_cov().numpy()
        A = obs.ar().numpy()
    np.testing.assert_allclose(A, est.parameters_["noise_ar_matrix"], atol=1e-10)
    for t in (0, 199):  # stationary from the first bin
        np.testing.assert_allclose(np.cov(e[:, t].T), Se, atol=0.1 * np.abs(Se).max())
    lag1 = np.einsum("ntc,ntd->cd", e[:, 1:], e[:, :-1]) / (300 * 199)
    np.testing.assert_allclose(lag1, A @ Se, atol=0.05 * np.abs(Se).max())
    r = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        pred = obs.predict_noise(r, 2).numpy()
    np.testing.assert_allclose(pred, r.numpy() @ (A @ A).T, atol=1e-12)


def test_log_marginal_matches_kalman_and_the_path_density_matches_scipy():
    g = torch.Generator().manual_seed(0)
    model = LowRankRNNModel(ModelConfig(rank=2, n_units=6, n_channels=4,
                                        nonlinearity="identity", noise_cov="full",
                                        observation="gaussian_var1"), generator=g).double()
    with torch.no_grad():
        model.transition.noise.set_cov(torch.tensor([[0.09, 0.02], [0.02, 0.09]]))
        model.transition.init_mean.copy_(torch.tensor([0.5, -0.5]))
        A = torch.as_tensor(_coupled_map(4))
        model.observation._set_noise(A, torch.as_tensor(
            __import__("scipy.linalg").linalg.solve_discrete_lyapunov(
                A.numpy(), 0.09 * (0.6 * np.eye(4) + 0.4))))
    _, y = model.sample(3, 30, generator=g)
    exact = kalman_log_marginal_ar1(model, y)
    prop = make_proposal("optimal", model, generator=g).double()
    est = _estimates(model, prop, y, 512, 20, g)
    tol = 0.5 * est.var(0) + 4 * est.std(0) / math.sqrt(est.shape[0]) + 0.05
    assert torch.all((est.mean(0) - exact).abs() <= tol), (est.mean(0), exact)
    with torch.no_grad():  # the same data under the diagonal AR(1) of the same channels
        diag = LowRankRNNModel(ModelConfig(rank=2, n_units=6, n_channels=4,
                                           nonlinearity="identity", noise_cov="full",
                                           observation="gaussian_ar1")).double()
        diag.load_state_dict({k: v for k, v in model.state_dict().items()
                              if not k.startswith("observation.")}, strict=False)
        diag.observation.C.copy_(model.observation.C)
        diag.observation.d.copy_(model.observation.d)
        diag.observation.innovation.set_cov(model.observation.chol() @ model.observation.chol().T)
        diag.observation.raw_ar.copy_(torch.atanh(A.diagonal().clamp(-0.99, 0.99) / 0.999))
        assert float((kalman_log_marginal_ar1(diag, y) - exact).min()) < -1.0
        z, y1 = model.sample(1, 5, generator=g)
        lp = model.observation.log_prob_sequence(y1, z)
        e = (y1 - model.observation.mean(z))[0].numpy()
        Se = model.observation.stationary_cov().numpy()
        S = (model.observation.chol() @ model.observation.chol().T).numpy()
    from scipy.stats import multivariate_normal as mvn
    ref = mvn.logpdf(e[0], cov=Se) + sum(mvn.logpdf(e[t], mean=A.numpy() @ e[t - 1], cov=S)
                                         for t in range(1, 5))
    assert abs(float(lp) - ref) < 1e-9


def test_initialisation_matches_the_residuals_lag0_and_lag1_covariances():
    """Noise with coupled channels: the Yule–Walker start has the residual's covariance as
    its stationary covariance and its lag-1 covariance as A Σ_e; the diagonal AR(1)'s start
    (gaussian_ar1) implies a stationary covariance further from the residual's."""
    from nwb_lrnn.model.observation import GaussianAR1Observation

    n = 6
    A = _coupled_map(n, rho=0.8, seed=1)
    rng = np.random.default_rng(0)
    e, out = np.zeros((8, n)), np.empty((8, 2000, n))
    for t in range(2000):
        e = e @ A.T + 0.3 * rng.normal(size=(8, n))
        out[:, t] = e
    y = torch.as_tensor(out)
    obs = GaussianVAR1Observation(n, 1).double()
    obs.init_from_data(y, 1.0, 1)
    with torch.no_grad():
        r = obs._residual(y - obs.d, obs.C).numpy()
        Se, got = obs.stationary_cov().numpy(), obs.ar().numpy()
    G0 = np.einsum("ntc,ntd->cd", r, r) / (8 * 2000)
    G1 = np.einsum("ntc,ntd->cd", r[:, 1:], r[:, :-1]) / (8 * 1999)
    scale = np.abs(G0).max()
    assert np.abs(Se - G0).max() < 0.06 * scale  # 5 % shrinkage of the off-diagonal
    assert np.abs(got @ Se - G1).max() < 0.06 * scale
    assert float(np.abs(np.linalg.eigvals(got)).max()) < 1.0
    diag = GaussianAR1Observation(n, 1).double()
    diag.init_from_data(y, 1.0, 1)
    with torch.no_grad():
        Sd = diag.stationary_cov().numpy()
    assert np.abs(Sd - G0).max() > 3 * np.abs(Se - G0).max()


def test_fit_score_sample_and_round_trip_through_nwb(tmp_path):
    est0 = _linear_var1()
    data = est0.sample(6, 80, random_state=3)
    est = LowRankRNN(rank=2, n_units=8, observation="gaussian_var1", max_epochs=3,
                     n_particles=8, verbose=False, random_state=0).fit(data)
    assert est.proposal_name_ == "optimal"
    assert est.parameters_["noise_ar_matrix"].shape == (4, 4)
    assert np.isfinite(est.score(data))
    assert est.sample(2, 30, random_state=0).values.shape == (2, 30, 4)
    pred = est.predict_ahead(data, k=2, random_state=0)
    assert np.isfinite(pred[:, 2:]).all()
    path = write_nwb(est, tmp_path / "fit.nwb", data=data)
    with h5py.File(path, "r") as f:
        (grp,) = [g for g in f["processing"].values() if "model" in g]
        np.testing.assert_allclose(grp["model"]["noise_ar_matrix"][()],
                                   est.parameters_["noise_ar_matrix"], rtol=1e-6)
        assert "noise_ar" not in grp["model"]
    twin = read_fit(path)
    assert twin.observation == "gaussian_var1"
    assert twin.score(data, random_state=0) == pytest.approx(est.score(data, random_state=0),
                                                             abs=1e-4)
    again = LowRankRNN.from_parameters(**est.parameters_, n_particles=8, random_state=0)
    np.testing.assert_allclose(again.parameters_["noise_ar_matrix"],
                               est.parameters_["noise_ar_matrix"], rtol=1e-5, atol=1e-6)


def test_bad_settings_are_refused_with_a_message():
    U, V = np.ones((3, 1)), np.ones((1, 3))
    with pytest.raises(ValueError, match="spectral radius < 0.999"):
        LowRankRNN.from_parameters(U=U, V=V, noise_ar_matrix=np.eye(3),
                                   observation="gaussian_var1")
    with pytest.raises(ValueError, match="takes the noise's map as noise_ar_matrix"):
        LowRankRNN.from_parameters(U=U, V=V, noise_ar=0.5, observation="gaussian_var1")
    with pytest.raises(ValueError, match="noise_ar_matrix .* belongs to observation='gaussian_"):
        LowRankRNN.from_parameters(U=U, V=V, noise_ar_matrix=np.zeros((3, 3)),
                                   observation="gaussian_ar1")
    with pytest.raises(ValueError, match="noise_ar_matrix belongs to the AR noise"):
        LowRankRNN.from_parameters(U=U, V=V, noise_ar_matrix=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"noise_ar_matrix must have shape \(3, 3\)"):
        LowRankRNN.from_parameters(U=U, V=V, noise_ar_matrix=np.zeros((3, 2)),
                                   observation="gaussian_var1")
