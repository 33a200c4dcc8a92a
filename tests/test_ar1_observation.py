"""Gaussian observations with AR(1) noise in time (observation='gaussian_ar1')."""

import h5py
import numpy as np
import pytest
import torch

from nwb_lrnn import BinnedData, LowRankRNN, _defaults, read_fit, write_nwb
from nwb_lrnn.model import LowRankRNNModel, ModelConfig
from nwb_lrnn.model.observation import OBSERVATIONS, GaussianAR1Observation


def _linear_ar1(ar=(0.9, 0.5, -0.2, 0.0), sd=0.3, seed=0, rho=0.5):
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(6, 2)) / 2
    V = rng.normal(size=(2, 6)) / 4
    C = rng.normal(size=(len(ar), 2))
    n = len(ar)
    cov = sd ** 2 * ((1 - rho) * np.eye(n) + rho)  # innovations correlated across channels
    return LowRankRNN.from_parameters(U=U, V=V, decay=0.8, nonlinearity="identity",
                                      noise_z=0.2, C=C, d=np.arange(n, dtype=float),
                                      noise_x_cov=cov, noise_ar=np.array(ar), n_particles=256,
                                      observation="gaussian_ar1", random_state=0)


def test_generated_noise_is_ar1_and_stationary_from_the_first_bin():
    obs = GaussianAR1Observation(3, 1).double()
    with torch.no_grad():
        obs.raw_ar.copy_(torch.atanh(torch.tensor([0.9, 0.0, -0.5], dtype=torch.float64)
                                     / 0.999))
        obs.C.zero_()
    z = torch.zeros(400, 200, 1, dtype=torch.float64)
    with torch.no_grad():  # d = 0, C = 0: the noise alone
        e = obs.sample(z, generator=torch.Generator().manual_seed(0)).numpy()
    sd = obs.sd().detach().numpy()
    a = np.array([0.9, 0.0, -0.5])
    stat = sd / np.sqrt(1 - a * a)
    np.testing.assert_allclose(e[:, 0].std(0), stat, rtol=0.1)  # the first bin too
    np.testing.assert_allclose(e[:, -1].std(0), stat, rtol=0.1)
    lag1 = (e[:, 1:] * e[:, :-1]).mean((0, 1)) / (e * e).mean((0, 1))
    np.testing.assert_allclose(lag1, a, atol=0.02)


def test_initialisation_finds_the_noise_autocorrelation():
    est = _linear_ar1()
    y = est.sample(8, 400, random_state=1)
    obs = GaussianAR1Observation(4, 2)
    obs.init_from_data(torch.as_tensor(y.values, dtype=torch.float32), 1.0, 2)
    a = obs.ar().detach().numpy()
    # the two-PC residual of 4 channels is not the noise alone, but its ordering is kept and
    # the negative coefficient is clipped at 0
    assert a[0] > a[1] > a[2] - 1e-6 and a[2] >= 0.0 and 0 < a[0] <= 0.98


def test_predict_ahead_matches_the_exact_kalman_prediction():
    est = _linear_ar1()
    y = est.sample(1, 60, random_state=2)
    pred = est.predict_ahead(y, k=2, random_state=0)
    # exact: Kalman filter on the state (z, e), then two steps ahead
    p = est.parameters_
    R, C = 2, 4
    A = np.zeros((R + C, R + C))
    A[:R, :R] = np.diag(np.broadcast_to(p["decay"], R)) + p["V"] @ p["U"]
    A[R:, R:] = np.diag(p["noise_ar"])
    b = np.concatenate([-p["V"] @ p["h"], np.zeros(C)])
    nz = np.asarray(p["noise_z"])
    Qz = nz if nz.ndim == 2 else np.diag(nz ** 2)
    Sx = p["noise_x_cov"]
    Q = np.block([[Qz, np.zeros((R, C))], [np.zeros((C, R)), Sx]])
    H = np.hstack([p["C"], np.eye(C)])
    mu = np.concatenate([p["init_mean"], np.zeros(C)])
    P = np.block([[np.diag(np.broadcast_to(p["init_sd"], R) ** 2), np.zeros((R, C))],
                  [np.zeros((C, R)), Sx / (1 - np.outer(p["noise_ar"], p["noise_ar"]))]])
    exact = np.full((60, C), np.nan)
    for t, yt in enumerate(y.values[0]):
        if t > 0:
            mu, P = A @ mu + b, A @ P @ A.T + Q
        S = H @ P @ H.T
        K = P @ H.T @ np.linalg.inv(S)
        mu, P = mu + K @ (yt - H @ mu - p["d"]), P - K @ H @ P
        if t + 2 < 60:
            m2 = A @ (A @ mu + b) + b
            exact[t + 2] = H @ m2 + p["d"]
    err = np.abs(pred[0, 2:] - exact[2:])
    scale = np.abs(exact[2:] - p["d"]).mean()
    assert err.mean() < 0.1 * scale, (err.mean(), scale)
    # and it predicts the data better than their mean does
    assert np.mean((pred[0, 2:] - y.values[0, 2:]) ** 2) < np.mean(
        (p["d"] - y.values[0, 2:]) ** 2)


def test_fit_score_sample_and_round_trip_through_nwb(tmp_path):
    est0 = _linear_ar1()
    data = est0.sample(6, 80, random_state=3)
    est = LowRankRNN(rank=2, n_units=8, observation="gaussian_ar1", max_epochs=3,
                     n_particles=8, verbose=False, random_state=0).fit(data)
    assert est.proposal_name_ == "optimal"
    assert est.parameters_["noise_ar"].shape == (4,)
    assert np.isfinite(est.score(data))
    assert est.sample(2, 30, random_state=0).values.shape == (2, 30, 4)
    path = write_nwb(est, tmp_path / "fit.nwb", data=data)
    with h5py.File(path, "r") as f:
        (grp,) = [g for g in f["processing"].values() if "model" in g]
        np.testing.assert_allclose(grp["model"]["noise_ar"][()], est.parameters_["noise_ar"],
                                   rtol=1e-6)
        cov = grp["model"]["noise_x_cov"][()]
        np.testing.assert_allclose(cov, est.parameters_["noise_x_cov"], rtol=1e-6)
        np.testing.assert_allclose(np.sqrt(np.diag(cov)), grp["model"]["noise_x"][()],
                                   rtol=1e-5)
    twin = read_fit(path)
    assert twin.observation == "gaussian_ar1"
    assert twin.score(data, random_state=0) == pytest.approx(est.score(data, random_state=0),
                                                             abs=1e-4)


def test_bad_settings_are_refused_with_a_message():
    with pytest.raises(ValueError, match="noise_ar belongs to the AR"):
        LowRankRNN.from_parameters(U=np.ones((3, 1)), V=np.ones((1, 3)), noise_ar=0.5)
    with pytest.raises(ValueError, match="noise_x_cov belongs to the AR"):
        LowRankRNN.from_parameters(U=np.ones((3, 1)), V=np.ones((1, 3)), noise_x_cov=np.eye(3))
    with pytest.raises(ValueError, match="symmetric positive definite"):
        LowRankRNN.from_parameters(U=np.ones((3, 1)), V=np.ones((1, 3)),
                                   noise_x_cov=np.ones((3, 3)), observation="gaussian_ar1")
    with pytest.raises(ValueError, match="disagree"):
        LowRankRNN.from_parameters(U=np.ones((3, 1)), V=np.ones((1, 3)), noise_x=0.1,
                                   noise_x_cov=np.eye(3), observation="gaussian_ar1")
    with pytest.raises(ValueError, match=r"noise_ar must lie in \(-0.999, 0.999\)"):
        LowRankRNN.from_parameters(U=np.ones((3, 1)), V=np.ones((1, 3)), noise_ar=1.0,
                                   observation="gaussian_ar1")
    model = LowRankRNNModel(ModelConfig(rank=1, n_units=3, n_channels=3,
                                        observation="gaussian_ar1"))
    with pytest.raises(NotImplementedError, match="log_prob_sequence"):
        model.observation.log_prob(torch.zeros(3), torch.zeros(1))
    data = BinnedData(np.zeros((2, 20, 3)), 1.0, "continuous")
    with pytest.raises(ValueError, match="can only be filtered by proposal='optimal'"):
        LowRankRNN(rank=1, n_units=3, observation="gaussian_ar1", proposal="bootstrap",
                   max_epochs=1).fit(data)


def test_the_clis_observation_names_are_the_registrys():
    builtin = {n for n, c in OBSERVATIONS.items() if c.__module__ == "nwb_lrnn.model.observation"}
    assert set(_defaults.OBSERVATION_NAMES) == builtin | {"auto"}


def test_real_eeg_trains_in_float32_at_the_default_learning_rate():
    """64 correlated EEG channels whiten to signals 10²–10³ times the unit noise; in float32
    the cancelling terms of the weight sent the bound to 7·10⁷ nats a bin within 10 Adam
    steps at lr 1e-2. The filter now runs those steps in float64."""
    from pathlib import Path

    from nwb_lrnn.io.sources import read

    edf = Path(__file__).parents[1] / "nwb_lrnn" / "sample_data" / "S001R01.edf"
    data = read(str(edf))
    est = LowRankRNN(rank=3, observation="gaussian_ar1", max_epochs=1, steps_per_epoch=30,
                     window=100, batch_size=16, n_particles=16, verbose=False,
                     stability_check=0, random_state=0).fit(data)
    bound = est.history_.train_bound[-1]
    assert np.isfinite(bound) and 20 < bound < 80, bound  # nats a bin; VAR(1): 61


def test_from_parameters_takes_what_parameters_gives():
    est = _linear_ar1()
    twin = LowRankRNN.from_parameters(**est.parameters_, n_particles=256, random_state=0)
    for name in ("C", "noise_x", "noise_x_cov", "noise_ar"):
        np.testing.assert_allclose(twin.parameters_[name], est.parameters_[name], rtol=1e-10)
    y = est.sample(2, 40, random_state=4)
    assert twin.score(y, random_state=0) == pytest.approx(est.score(y, random_state=0))
    p = dict(est.parameters_, noise_x=est.parameters_["noise_x"] * 2)
    with pytest.raises(ValueError, match="disagree"):
        LowRankRNN.from_parameters(**p)
