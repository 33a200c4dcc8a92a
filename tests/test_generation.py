"""Generation that stays bounded, statistics that survive bad samples, exact float64 networks."""

import tracemalloc
import warnings

import numpy as np
import pytest

from nwb_lrnn import BinnedData, LowRankRNN, find_fixed_points
from nwb_lrnn.metrics import compare_spike_statistics, spike_statistics


def _teacher_data(n_trials=8, n_time=100):
    rng = np.random.default_rng(0)
    teacher = LowRankRNN.from_parameters(U=rng.normal(size=(20, 2)),
                                         V=rng.normal(size=(2, 20)) / 20, decay=0.9,
                                         nonlinearity="tanh", noise_z=0.1, random_state=0)
    return teacher.sample(n_trials, n_time, random_state=1)


def _explosive(**kw):
    """A ReLU network whose single positive direction grows by 1.4 per step."""
    N = 10
    return LowRankRNN.from_parameters(U=np.ones((N, 1)), V=np.full((1, N), 0.05), decay=0.9,
                                      nonlinearity="relu", noise_z=0.1, **kw)


def test_default_fit_is_bounded_and_says_so():
    data = _teacher_data()
    est = LowRankRNN(rank=2, n_units=20, max_epochs=3, random_state=0, verbose=False)
    assert est.nonlinearity == "clipped_relu"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a bounded fit warns of nothing
        est.fit(data)
    r = est.stability_
    assert est.stable_ is True and r["stable"]
    assert r["n_time"] == 10 * data.n_time and r["n_trials"] == 2
    assert 0 < r["max_abs_z"] <= r["bound_factor"] * r["data_max_abs_z"]
    assert r["first_step_out"] is None


def test_relu_student_diverges_and_the_fit_warns():
    # measured: a 3-epoch ReLU student of this teacher generates |z| ~1e29 within 1000 steps
    with pytest.warns(UserWarning, match="not bounded.*nonlinearity='clipped_relu'"):
        est = LowRankRNN(rank=2, n_units=20, max_epochs=3, random_state=0, verbose=False,
                         nonlinearity="relu").fit(_teacher_data())
    assert est.stable_ is False
    assert est.stability_["first_step_out"] is not None


def test_check_generation_without_data_and_skipping_it():
    est = _explosive()
    assert est.stable_ is None
    with pytest.warns(UserWarning, match=r"\|z\| = 1 \(no data given\)"):
        r = est.check_generation(n_time=300)
    assert not r["stable"] and r["first_step_out"] < 100
    stable = LowRankRNN.from_parameters(U=np.ones((4, 1)), V=np.ones((1, 4)) / 8, decay=0.5)
    assert stable.check_generation(n_time=500, warn=False)["stable"]
    est = LowRankRNN(rank=2, n_units=8, max_epochs=1, random_state=0, verbose=False,
                     stability_check=0).fit(_teacher_data(2, 30))
    assert est.stable_ is None and est.stability_ is None
    with pytest.raises(ValueError, match="stability_check"):
        LowRankRNN(max_epochs=1, stability_check=-1, verbose=False).fit(_teacher_data(2, 30))


def test_stability_is_stored_in_the_fit_file(tmp_path):
    from nwb_lrnn import read_fit, write_nwb
    from nwb_lrnn.io.fit_nwb import summarize_fit

    data = _teacher_data(4, 50)
    est = LowRankRNN(rank=2, n_units=8, max_epochs=1, random_state=0, verbose=False).fit(data)
    path = tmp_path / "fit.nwb"
    write_nwb(est, path, data=data)
    back = read_fit(path)
    assert back.stable_ == est.stable_ and back.stability_["n_time"] == 500
    metrics = {name: value for name, value, split in summarize_fit(path)["metrics"]}
    assert metrics["generation_bounded"] == float(est.stable_)
    assert metrics["generation_max_abs_z_ratio"] == pytest.approx(est.stability_["ratio"])


def test_sample_refuses_astronomic_counts_without_blaming_the_kind():
    # bounded latents, but exp(25) spikes per bin: counts no float32 holds exactly
    est = LowRankRNN.from_parameters(U=np.ones((3, 1)), V=np.ones((1, 3)) / 10, decay=0.5,
                                     observation="poisson", readout="affine",
                                     C=np.zeros((2, 1)), d=np.full(2, 25.0), link="exp")
    with pytest.raises(ValueError, match="generated spike counts diverged") as err:
        est.sample(1, 20, random_state=0)
    assert "kind" not in str(err.value)
    r = est.check_generation(n_time=50, warn=False)
    assert not r["stable"] and r["max_count"] >= 2 ** 24
    from nwb_lrnn.cli import stability_line
    from nwb_lrnn.estimator import generation_failure

    assert generation_failure(r) == "count"
    assert "NOT bounded" in stability_line(est) and "a count of" in stability_line(est)


def test_sample_warns_when_latents_leave_the_data_range():
    est = _explosive()
    est.stability_ = {"data_max_abs_z": 1.0}
    with pytest.warns(UserWarning, match="leave the range of the data"):
        est.sample(1, 12, random_state=0)


def _isis_by_hand(counts, bin_size):
    """Spike times placed evenly in their bins, differenced within each trial."""
    out = []
    for n in range(counts.shape[2]):
        isis = []
        for tr in range(counts.shape[0]):
            times = [(t + (j + 0.5) / k) * bin_size
                     for t, k in enumerate(counts[tr, :, n].astype(int)) for j in range(k)]
            isis += list(np.diff(times))
        out.append(np.array(isis))
    return out


def test_isi_statistics_match_an_independent_formula():
    rng = np.random.default_rng(1)
    y = rng.poisson(rng.uniform(0.05, 2.5, size=4), size=(3, 80, 4))
    st = spike_statistics(y, 0.02)
    ref = _isis_by_hand(y, 0.02)
    for a, b in zip(st["isi"], ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(st["isi_cv"], [v.std() / v.mean() for v in ref], rtol=1e-10)
    edges = st["isi_hist"][1]
    np.testing.assert_allclose(st["isi_hist"][0],
                               np.histogram(np.concatenate(ref), edges, density=True)[0])
    assert not st["isi_subsampled"].any()


def test_spike_statistics_stay_bounded_on_diverged_samples():
    rng = np.random.default_rng(0)
    y = rng.poisson(0.5, size=(4, 300, 6)).astype(float)
    bad = y.copy()
    bad[1, 100:] = 5e9  # what a diverged model drew per bin
    tracemalloc.start()
    try:
        out = compare_spike_statistics(y, bad, bin_size=0.05)
        st = spike_statistics(bad, 0.05, max_isis=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2 ** 20  # the old code asked for ~10^12 intervals
    assert out["fano_ratio"] > 1e6  # and says how wrong the sample is
    assert st["isi_subsampled"].all() and all(len(v) == 1000 for v in st["isi"])
    # 5e9 spikes a bin: nearly all intervals are Δ/5e9
    assert np.mean(np.isclose(st["isi"][0], 0.05 / 5e9, rtol=1e-9, atol=0)) > 0.9
    with pytest.raises(ValueError, match="NaN or infinite"):
        spike_statistics(np.full((1, 5, 1), np.inf), 0.05)


def _fixed_point_network(seed_max=30, N=60, R=2):
    for seed in range(seed_max):
        rng = np.random.default_rng(seed)
        U, V = rng.normal(size=(N, R)), rng.normal(size=(R, N)) * 2 / np.sqrt(N)
        h = 0.5 * rng.normal(size=N)
        if len(find_fixed_points(LowRankRNN.from_parameters(U=U, V=V, h=h, decay=0.9),
                                 verbose=False)) >= 3:
            return U, V, h
    raise AssertionError("no network with 3 fixed points")


def test_float64_parameters_stay_exact(tmp_path):
    import nwb_lrnn

    U, V, h = _fixed_point_network()
    est = LowRankRNN.from_parameters(U=U, V=V, h=h, decay=0.9)
    assert str(est._dtype()) == "torch.float64"
    z = find_fixed_points(est, verbose=False).z
    resid = np.abs(0.9 * z + np.maximum(z @ U.T - h, 0) @ V.T - z).max()
    assert resid < 1e-9
    est32 = LowRankRNN.from_parameters(U=U, V=V, h=h, decay=0.9, dtype="float32")
    z32 = find_fixed_points(est32, verbose=False).z
    assert np.abs(0.9 * z32 + np.maximum(z32 @ U.T - h, 0) @ V.T - z32).max() > 1e-9
    # inference and the file round trip keep float64
    y = est.sample(2, 30, random_state=0)
    assert est.transform(y).shape == (2, 30, 2) and np.isfinite(est.score(y))
    path = tmp_path / "f64.nwb"
    nwb_lrnn.write_nwb(est, path, data=y)
    back = nwb_lrnn.read_fit(path)
    assert str(back._dtype()) == "torch.float64"
    np.testing.assert_array_equal(back.parameters_["U"], U)
    with pytest.raises(ValueError, match="dtype"):
        LowRankRNN.from_parameters(U=U, V=V, dtype="float16")


def test_binned_data_sample_is_counts():
    est = LowRankRNN.from_parameters(U=np.ones((3, 1)), V=np.ones((1, 3)) / 10, decay=0.5,
                                     observation="poisson")
    out = est.sample(2, 10, random_state=0)
    assert isinstance(out, BinnedData) and out.kind == "counts"


def test_generation_off_the_data_scale_fails_the_check():
    # bounded latents are not enough: a failed rank-16 EEG fit kept |z| within 2.4x the data's
    # while generating data far off its scale
    rng = np.random.default_rng(0)
    est = LowRankRNN.from_parameters(U=rng.normal(size=(8, 2)), V=rng.normal(size=(2, 8)) / 8,
                                     decay=0.8, noise_z=0.3, C=rng.normal(size=(3, 2)),
                                     d=np.zeros(3), noise_x=0.1, nonlinearity="tanh")
    data = est.sample(4, 200, random_state=1)
    r = est.check_generation(data, warn=False)
    assert r["stable"] and 0.8 < r["scale_ratio"] < 1.25  # its own samples: the same scale
    assert r["scale_ratio_range"][0] <= r["scale_ratio"] <= r["scale_ratio_range"][1]
    loud = BinnedData(data.values * 20, data.bin_size, "continuous")
    with pytest.warns(UserWarning, match=r"standard deviation is 0\.0\d+x the data's"):
        r = est.check_generation(loud)
    assert not r["stable"] and r["first_step_out"] is None and r["scale_ratio"] < 1 / 3
    assert est.stable_ is False
    from nwb_lrnn.cli import stability_line
    from nwb_lrnn.estimator import generation_failure

    assert generation_failure(r) == "scale" and "OFF SCALE" in stability_line(est)
    assert generation_failure({"stable": True}) is None and generation_failure(None) is None

    spikes = LowRankRNN.from_parameters(U=rng.normal(size=(8, 2)), V=rng.normal(size=(2, 8)) / 8,
                                        decay=0.8, noise_z=0.3, observation="poisson",
                                        C=rng.normal(size=(4, 2)) * 0.3, d=np.zeros(4),
                                        bin_size=0.05, nonlinearity="tanh")
    counts = spikes.sample(4, 200, random_state=1)
    assert spikes.check_generation(counts, warn=False)["stable"]
    busy = BinnedData(counts.values * 10, counts.bin_size, "counts")
    with pytest.warns(UserWarning, match=r"mean count is 0\.\d+x the data's"):
        r = spikes.check_generation(busy)
    assert not r["stable"] and r["scale_ratio"] < 1 / 3
