"""Baselines (nwb_lrnn.baselines) against independent formulas, and the RNN beside them."""

import warnings

import numpy as np
import pytest
from scipy import stats

from nwb_lrnn import BinnedData, LowRankRNN
from nwb_lrnn.baselines import (
    VAR,
    IIDGaussian,
    PoissonGLM,
    compare_decoding,
    compare_to_baselines,
    decoding_metrics,
    fa_latents,
    format_comparison,
    format_decoding,
    pca_latents,
    stored_decoding,
)


def _ar(n_trials=2, T=3000, A=None, seed=0):
    rng = np.random.default_rng(seed)
    A = np.array([[0.8, 0.1], [-0.2, 0.7]]) if A is None else A
    x = np.zeros((n_trials, T, 2))
    for t in range(1, T):
        x[:, t] = x[:, t - 1] @ A.T + 0.5 * rng.normal(size=(n_trials, 2))
    return x, A


def test_var_recovers_its_coefficients_and_likelihood():
    x, A = _ar()
    var = VAR(1).fit(x)
    np.testing.assert_allclose(var.coef_[:2].T, A, atol=0.03)
    np.testing.assert_allclose(var.cov_, 0.25 * np.eye(2), atol=0.02)
    # one-step predictive density, by scipy
    resid = (x[:, 1:] - (x[:, :-1] @ var.coef_[:2] + var.coef_[2])).reshape(-1, 2)
    ref = stats.multivariate_normal(np.zeros(2), var.cov_).logpdf(resid).mean()
    assert var.log_likelihood(x) == pytest.approx(ref, rel=1e-10)


def test_var_k_step_prediction_is_the_iterated_map():
    x, _ = _ar(1, 400)
    var = VAR(1).fit(x)
    A, c = var.coef_[:2].T, var.coef_[2]
    pred = var.predict(x, k=3)
    t = 100
    ref = x[0, t - 3]
    for _ in range(3):
        ref = A @ ref + c
    np.testing.assert_allclose(pred[0, t], ref, rtol=1e-10)
    assert np.isnan(pred[0, :3]).all() and np.isfinite(pred[0, 3:]).all()
    assert VAR(2).fit(x).predict(x, k=2).shape == x.shape


def test_iid_gaussian_is_scipy():
    x = np.random.default_rng(1).normal(size=(3, 200, 4)) @ np.diag([1, 2, 3, 4])
    m = IIDGaussian().fit(x)
    flat = x.reshape(-1, 4)
    # each channel's variance, and a shrunk correlation (close to the sample's here)
    np.testing.assert_allclose(np.diag(m.cov_), flat.var(0), rtol=1e-10)
    sample = np.cov(flat.T, bias=True)
    off = ~np.eye(4, dtype=bool)  # independent channels: correlations shrunk towards 0
    assert np.all(np.abs(m.cov_[off]) <= np.abs(sample[off]) + 1e-12)
    ref = stats.multivariate_normal(flat.mean(0), m.cov_).logpdf(flat).mean()
    assert m.log_likelihood(x) == pytest.approx(ref, rel=1e-10)
    assert m.sample(2, 50, random_state=0).shape == (2, 50, 4)


def test_poisson_glm_constant_rate_is_scipy_and_history_is_learnt():
    rng = np.random.default_rng(0)
    y = rng.poisson([0.5, 2.0, 4.0], size=(5, 400, 3))
    glm0 = PoissonGLM(0).fit(y)
    ref = stats.poisson(y.reshape(-1, 3).mean(0)).logpmf(y.reshape(-1, 3)).sum(1).mean()
    assert glm0.log_likelihood(y) == pytest.approx(ref, rel=1e-9)
    # self-exciting counts: the history coefficient is positive and the likelihood better
    z = np.zeros((4, 1500, 1))
    for t in range(1, 1500):
        z[:, t] = rng.poisson(np.exp(-1.0 + 0.8 * np.log1p(z[:, t - 1])))
    glm1 = PoissonGLM(1).fit(z)
    assert glm1.coef_[0, 0] == pytest.approx(0.8, abs=0.15)
    assert glm1.log_likelihood(z) > PoissonGLM(0).fit(z).log_likelihood(z)
    assert glm1.predict(z, k=2).shape == z.shape
    assert glm1.sample(2, 100, random_state=0).shape == (2, 100, 1)


def test_pca_and_fa_latents_find_a_shared_signal():
    rng = np.random.default_rng(0)
    s = np.sin(np.linspace(0, 40, 2000))[None, :, None]
    rates = np.exp(0.5 + 0.8 * s * rng.normal(size=(1, 1, 30)))
    y = rng.poisson(rates * 0.5)
    for fn in (pca_latents, fa_latents):
        lat = fn(y, n_components=1, bin_size=0.02)
        assert lat.shape == (1, 2000, 1)
        assert abs(np.corrcoef(lat[0, :, 0], s[0, :, 0])[0, 1]) > 0.9


def test_pca_latents_of_continuous_data_use_the_values():
    # continuous data (negative values) are not square-rooted: the latents stay finite and
    # follow the shared signal
    rng = np.random.default_rng(1)
    s = np.sin(np.linspace(0, 30, 1500))
    x = s[None, :, None] * rng.normal(size=(1, 1, 12)) + 0.3 * rng.normal(size=(1, 1500, 12))
    data = BinnedData(x, 0.01, "continuous")
    for fn in (pca_latents, fa_latents):
        lat = fn(data, n_components=1, smooth_s=0.0)
        assert np.isfinite(lat).all()
        assert abs(np.corrcoef(lat[0, :, 0], s)[0, 1]) > 0.9


def test_pca_latents_are_principal_components_and_fa_latents_are_not():
    # PCA: the projection on the top principal axes (numpy's SVD here); FA weighs channels by
    # their own noise, so with one loud channel of its own the two differ
    rng = np.random.default_rng(2)
    s = rng.normal(size=(1, 800, 2))
    x = s @ rng.normal(size=(2, 10)) + 0.3 * rng.normal(size=(1, 800, 10))
    x[..., 0] += 4.0 * rng.normal(size=800)          # channel 0: large private noise
    data = BinnedData(x, 0.01, "continuous")
    pca = pca_latents(data, n_components=2, smooth_s=0.0)[0]
    xc = x[0] - x[0].mean(0)
    vt = np.linalg.svd(xc, full_matrices=False)[2]
    ref = xc @ vt[:2].T
    np.testing.assert_allclose(np.abs(pca), np.abs(ref), rtol=1e-5, atol=1e-5)
    fa = fa_latents(data, n_components=2, smooth_s=0.0)[0]
    # FA's 2-D subspace leaves channel 0's private noise out, PCA's takes it in
    r2 = [np.linalg.lstsq(np.c_[lat, np.ones(800)], x[0, :, 0] - x[0, :, 0].mean(),
                          rcond=None)[1][0] for lat in (pca, fa)]
    assert r2[1] > 2 * r2[0]     # residual of channel 0: larger from FA's latents


def test_compare_decoding_tells_a_decodable_behaviour_from_noise():
    from nwb_lrnn.analysis import decode_behavior
    from nwb_lrnn.teachers import oscillator_teacher

    teacher = oscillator_teacher(20, 2, seed=3)  # a fitted-like model with known latents
    data, z = teacher.sample(12, 120, burn_in=50, random_state=4, return_latents=True)
    z = np.asarray(z)
    rng = np.random.default_rng(5)
    behaviour = {"linear": z @ np.array([1.0, -0.5]) + 0.05 * rng.normal(size=z.shape[:2]),
                 "noise": rng.normal(size=(12, 120, 2))}
    rows = compare_decoding(teacher, data, behaviour, random_state=0)
    assert [r["model"] for r in rows] == ["lowrank_rnn", "pca", "fa"]
    by = {r["model"]: r for r in rows}
    # the teacher's own posterior latents carry the behaviour; PCA and FA of 20 channels
    # with 2 dimensions span nearly the same space
    assert by["lowrank_rnn"]["linear"] > 0.8
    assert by["fa"]["linear"] > 0.5 and by["pca"]["linear"] > 0.5
    for r in rows:
        assert r["noise"] < 0.05 and len(r["noise_r2"]) == 2 and r["n_components"] == 2
    # the RNN row is the decoder run on transform's latents, with the same folds
    direct = decode_behavior(teacher.transform(data, random_state=0), behaviour["linear"])
    assert by["lowrank_rnn"]["linear"] == pytest.approx(direct["mean_r2"])
    text = format_decoding(rows)
    assert text.splitlines()[0].split() == ["model", "linear", "noise"]
    best = max(rows, key=lambda r: r["linear"])["model"]
    assert next(ln for ln in text.splitlines() if ln.startswith(best)).split()[1].endswith("*")
    # stored as metrics and read back
    metrics = [(k, v, split) for k, (v, split) in decoding_metrics(rows).items()]
    assert all(split == "cross_validation" for _, _, split in metrics)
    back = stored_decoding([*metrics, ("var1.dh", 0.1, "validation")])
    assert back == {r["model"]: {"linear": r["linear"], "noise": r["noise"]} for r in rows}
    with pytest.raises(ValueError, match="behavior is empty"):
        compare_decoding(teacher, data, {})


def test_baselines_reject_bad_input():
    with pytest.raises(ValueError, match="finite"):
        VAR(1).fit(np.full((1, 10, 2), np.nan))
    with pytest.raises(ValueError, match="too short"):
        VAR(5).fit(np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        PoissonGLM(1).fit(-np.ones((1, 10, 2)))


def test_true_model_beats_the_baselines_on_dynamics():
    rng = np.random.default_rng(0)
    teacher = LowRankRNN.from_parameters(U=rng.normal(size=(20, 2)),
                                         V=rng.normal(size=(2, 20)) * 0.4, decay=0.9,
                                         nonlinearity="tanh", noise_z=0.1, random_state=0)
    train = teacher.sample(8, 200, random_state=1)
    test = teacher.sample(4, 200, random_state=2)
    rows = {r["model"]: r for r in compare_to_baselines(teacher, train, test, k=5)}
    assert set(rows) == {"lowrank_rnn", "iid_gaussian", "var1", "var5"}
    rnn = rows.pop("lowrank_rnn")
    for name, r in rows.items():
        assert rnn["loglik_per_bin"] > r["loglik_per_bin"], name
        assert rnn["mse_k"] < r["mse_k"], name
    assert {"dstsp", "dh"} <= set(rnn)
    alone = compare_to_baselines(teacher, train, test, k=5, baselines=False)
    assert [r["model"] for r in alone] == ["lowrank_rnn"]
    assert alone[0]["loglik_per_bin"] == pytest.approx(rnn["loglik_per_bin"])


def test_generated_measures_are_means_over_independent_draws():
    rng = np.random.default_rng(1)
    est = LowRankRNN.from_parameters(U=rng.normal(size=(8, 2)), V=rng.normal(size=(2, 8)) * 0.4,
                                     decay=0.9, nonlinearity="tanh", noise_z=0.1, random_state=0)
    train = est.sample(1, 600, random_state=1)
    test = est.sample(1, 300, random_state=2)
    both = compare_to_baselines(est, train, test, random_state=7, n_draws=2)
    one = [compare_to_baselines(est, train, test, random_state=s, n_draws=1) for s in (7, 8)]
    for j, row in enumerate(both):
        for m in ("dstsp", "dh"):
            vals = [o[j][m] for o in one]
            assert row[m] == pytest.approx(np.mean(vals)), (row["model"], m)
            assert row[f"{m}_sd"] == pytest.approx(np.std(vals, ddof=1)), (row["model"], m)
            assert vals[0] != vals[1]  # the draws differ
        assert np.isnan(one[0][j]["dstsp_sd"])  # one draw: no spread
    assert "±" in format_comparison(both)
    with pytest.raises(ValueError, match="n_draws"):
        compare_to_baselines(est, train, test, n_draws=0)


def test_counts_comparison_has_spike_measures():
    est = LowRankRNN.from_parameters(U=np.ones((3, 1)), V=np.ones((1, 3)) / 10, decay=0.5,
                                     observation="poisson", bin_size=0.05, bias=np.ones(3))
    train = est.sample(4, 100, random_state=0)
    test = est.sample(2, 100, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = compare_to_baselines(est, train, test)
    assert [r["model"] for r in rows] == ["lowrank_rnn", "poisson_rate", "poisson_glm1"]
    assert all({"rate_correlation", "fano_ratio", "loglik_per_bin"} <= set(r) for r in rows)
    assert isinstance(test, BinnedData)


def test_predict_ahead_beats_the_mean():
    rng = np.random.default_rng(3)
    est = LowRankRNN.from_parameters(U=rng.normal(size=(10, 2)), V=rng.normal(size=(2, 10)) * 0.5,
                                     decay=0.95, nonlinearity="tanh", noise_z=0.05)
    y = est.sample(3, 300, random_state=0)
    x = y.values
    for k in (1, 4):
        pred = est.predict_ahead(y, k=k, random_state=0)
        assert np.isnan(pred[:, :k]).all() and np.isfinite(pred[:, k:]).all()
        mse = ((pred[:, k:] - x[:, k:]) ** 2).mean()
        assert mse < 0.5 * ((x - x.mean((0, 1))) ** 2).mean()
    with pytest.raises(ValueError, match="k"):
        est.predict_ahead(y, k=0)
