"""Spikes the paper's way: NLB metrics, spike statistics, decoding, NLB files, conditions as
inputs, and a ring-attractor teacher–student check with inputs."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from nwb_lrnn.analysis.decoding import decode_behavior, read_behavior
from nwb_lrnn.conditions import condition_inputs, inputs_for
from nwb_lrnn.data import BinnedData
from nwb_lrnn.io.nlb import read_nlb
from nwb_lrnn.io.nwb import NWBReadError
from nwb_lrnn.metrics import (
    bits_per_spike,
    co_bps,
    compare_spike_statistics,
    fp_bps,
    psth_r2,
    spike_statistics,
    velocity_r2,
)

from .nwb_factory import write_nwbfile


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------ co-bps
def _poisson_set(seed=0, n_trials=60, n_time=50, n_neurons=6):
    rng = np.random.default_rng(seed)
    lam = rng.uniform(0.05, 1.5, size=(1, n_time, n_neurons)).repeat(n_trials, 0)
    return lam, rng.poisson(lam).astype(float)


def test_co_bps_zero_for_mean_rate_and_positive_for_truth():
    lam, y = _poisson_set()
    null = np.broadcast_to(y.mean(axis=(0, 1)), y.shape)
    assert co_bps(null, y) == pytest.approx(0.0, abs=1e-12)
    assert co_bps(lam, y) > 0.1
    # a worse-than-null prediction is negative
    assert co_bps(np.roll(lam, 7, axis=1), y) < co_bps(lam, y)
    # same as the existing bits_per_spike
    assert co_bps(lam, y) == pytest.approx(bits_per_spike(lam, y))


def test_co_bps_hand_computed_and_bin_size():
    # one neuron, one trial, 2 bins: y = (0, 2), rates = (0.5, 1.5); null = 1 per bin
    y = np.array([[[0.0], [2.0]]])
    r = np.array([[[0.5], [1.5]]])
    ll = lambda lam: np.sum(y * np.log(lam) - lam)  # noqa: E731 (log y! cancels)
    expected = (ll(r) - ll(np.ones_like(r))) / 2.0 / math.log(2)
    assert co_bps(r, y) == pytest.approx(expected)
    # rates in Hz with bin_size
    assert co_bps(r / 0.01, y, bin_size=0.01) == pytest.approx(expected)
    # 2-D input (time, neurons)
    assert co_bps(r[0], y[0]) == pytest.approx(expected)


def test_co_bps_errors():
    with pytest.raises(ValueError, match="rates_heldout and spikes_heldout"):
        co_bps(np.ones((2, 3, 4)), np.ones((2, 3, 5)))
    with pytest.raises(ValueError, match="no spike"):
        co_bps(np.ones((2, 3, 4)), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="bin_size"):
        co_bps(np.ones((2, 3, 4)), np.ones((2, 3, 4)), bin_size=0)


def test_fp_bps():
    lam, y = _poisson_set(1, n_time=10)
    assert fp_bps(np.broadcast_to(y.mean((0, 1)), y.shape), y) == pytest.approx(0, abs=1e-12)
    assert fp_bps(lam, y) > 0
    with pytest.raises(ValueError, match="rates_forward"):
        fp_bps(lam[:, :5], y)


# ------------------------------------------------------------------------------ psth R²
def test_psth_r2_one_for_true_psths_and_hand_case():
    rng = np.random.default_rng(0)
    cond = np.repeat(["a", "b", "c"], 30)
    shapes = {"a": np.sin(np.linspace(0, 3, 40)), "b": np.cos(np.linspace(0, 3, 40)),
              "c": np.linspace(0, 1, 40)}
    lam = np.stack([0.5 + 0.4 * shapes[c][:, None] * np.ones((1, 5)) for c in cond])
    y = rng.poisson(lam).astype(float)
    # predicted PSTH equal to the empirical one: R² = 1 exactly
    emp = np.stack([y[cond == c].mean(0) for c in cond])
    assert psth_r2(emp, y, cond) == pytest.approx(1.0)
    # true rates: high but below 1 (sampling noise in the empirical PSTHs)
    assert 0.5 < psth_r2(lam, y, cond) < 1.0
    # conditions as lists of trial indices give the same value
    groups = [np.flatnonzero(cond == c) for c in "abc"]
    assert psth_r2(lam, y, groups) == pytest.approx(psth_r2(lam, y, cond))
    # smoothing the spikes brings the empirical PSTHs closer to the smooth truth
    assert psth_r2(lam, y, cond, smooth_sd=2.0) > psth_r2(lam, y, cond)

    # hand case: 2 conditions × 2 bins, 1 neuron; true PSTH (0, 2 | 4, 6), pred (1, 2 | 4, 5)
    y2 = np.array([[[0.0], [2.0]], [[4.0], [6.0]]])
    r2 = np.array([[[1.0], [2.0]], [[4.0], [5.0]]])
    ss_tot = (9 + 1 + 1 + 9)
    assert psth_r2(r2, y2, [0, 1]) == pytest.approx(1 - 2 / ss_tot)
    per = psth_r2(np.concatenate([r2, r2], -1), np.concatenate([y2, y2], -1), [0, 1],
                  per_neuron=True)
    assert per.shape == (2,)


def test_psth_r2_errors():
    with pytest.raises(ValueError, match="one label per trial"):
        psth_r2(np.ones((4, 3, 2)), np.ones((4, 3, 2)), [0, 1])


# ------------------------------------------------------------------------------ vel R²
def test_velocity_r2_linear_and_unrelated():
    rng = np.random.default_rng(0)
    rates = rng.gamma(2.0, 1.0, size=(25, 40, 12))
    vel = rates @ rng.normal(size=(12, 2)) + 0.01 * rng.normal(size=(25, 40, 2))
    assert velocity_r2(rates, vel) > 0.99
    assert velocity_r2(rates, vel, alpha=[0.01, 1.0, 100.0]) > 0.99
    assert velocity_r2(rates, rng.normal(size=(25, 40, 2))) < 0.05


# ------------------------------------------------------------------------------ decoding
def test_decode_behavior_lag_and_folds():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(20, 30, 3))
    b = np.zeros((20, 30, 1))
    b[:, 2:, 0] = z[:, :-2, 0] - z[:, :-2, 2]  # behaviour lags the latents by 2 bins
    no_lag = decode_behavior(z, b)
    out = decode_behavior(z, b, lag=2, cv=4, random_state=0)
    assert out["mean_r2"] > 0.99 > no_lag["mean_r2"]
    assert out["prediction"].shape == (20, 28, 1)
    assert len(out["folds"]) == 4
    assert sorted(np.concatenate(out["folds"]).tolist()) == list(range(20))
    # (trials, time) behaviour, and one single trial split in time
    assert decode_behavior(z, b[..., 0], lag=2)["r2"].shape == (1,)
    assert decode_behavior(z[0], b[0], lag=2, cv=3)["mean_r2"] > 0.99


def test_decode_behavior_errors():
    z = np.zeros((4, 10, 2))
    with pytest.raises(ValueError, match="same trials and time bins"):
        decode_behavior(z, np.zeros((4, 9, 1)))
    with pytest.raises(ValueError, match="cv"):
        decode_behavior(z, np.zeros((4, 10, 1)), cv=5)
    with pytest.raises(ValueError, match="lag"):
        decode_behavior(z, np.zeros((4, 10, 1)), lag=10)
    with pytest.raises(ValueError, match="alpha"):
        decode_behavior(z, np.zeros((4, 10, 1)), alpha=[0.0, 1.0], cv=2)


# ------------------------------------------------------------------------------ spike stats
def test_spike_statistics_hand_case():
    # 1 trial, 4 bins of 0.1 s, 2 neurons
    y = np.array([[[1, 0], [0, 2], [1, 0], [2, 2]]], dtype=float)
    st = spike_statistics(y, 0.1)
    np.testing.assert_allclose(st["mean_rate"], [10.0, 10.0])
    # neuron 0: counts 1,0,1,2: mean 1, var 0.5; neuron 1: 0,2,0,2: mean 1, var 1
    np.testing.assert_allclose(st["fano"], [0.5, 1.0])
    c = np.corrcoef(y[0].T)
    np.testing.assert_allclose(st["correlation"], c, atol=1e-12)
    np.testing.assert_allclose(st["population_rate"], [5.0, 10.0, 5.0, 20.0])
    # ISIs of neuron 0: spikes at 0.05, 0.25, 0.325, 0.375
    np.testing.assert_allclose(st["isi"][0], [0.2, 0.075, 0.05])
    # neuron 1: 0.125, 0.175, 0.325, 0.375
    np.testing.assert_allclose(st["isi"][1], [0.05, 0.15, 0.05])
    dens, edges = st["isi_hist"]
    assert dens.shape == (30,) and edges.shape == (31,)
    # a silent neuron: NaN Fano and correlations, no ISI
    st = spike_statistics(np.concatenate([y, np.zeros((1, 4, 1))], -1), 0.1)
    assert np.isnan(st["fano"][2]) and np.isnan(st["correlation"][2]).all()
    assert st["isi"][2].size == 0 and np.isnan(st["isi_cv"][2])


def test_spike_statistics_isi_within_trials_and_binned_data():
    y = np.zeros((2, 5, 1))
    y[0, 4, 0] = 1
    y[1, 0, 0] = 1
    st = spike_statistics(BinnedData(y, 0.01, "counts"), 0.01)
    assert st["isi"][0].size == 0  # no interval across the trial boundary
    with pytest.raises(ValueError, match="non-negative"):
        spike_statistics(-y, 0.01)


def test_compare_spike_statistics():
    rng = np.random.default_rng(0)
    lam = rng.uniform(0.05, 0.8, size=8)
    mix = rng.normal(size=(8, 2)) * 0.6

    def gen(seed, scale=1.0):
        r = np.random.default_rng(seed)
        common = r.normal(size=(20, 300, 2))
        return r.poisson(scale * lam * np.exp(common @ mix.T)).astype(float)

    a, b = gen(1), gen(2)
    same = compare_spike_statistics(BinnedData(a, 0.01, "counts"), b)
    assert same["rate_correlation"] > 0.95
    assert abs(same["rate_ratio"] - 1) < 0.05
    assert abs(same["fano_ratio"] - 1) < 0.1
    assert same["population_rate_ks"] < 0.1
    assert same["correlation_similarity"] > 0.5
    other = compare_spike_statistics(a, gen(3, scale=2.0), bin_size=0.01)
    assert other["rate_ratio"] == pytest.approx(2.0, rel=0.1)
    assert other["population_rate_ks"] > same["population_rate_ks"]
    with pytest.raises(ValueError, match="bin_size"):
        compare_spike_statistics(a, b)
    with pytest.raises(ValueError, match="same neurons"):
        compare_spike_statistics(a, b[..., :3], bin_size=0.01)


# ------------------------------------------------------------------------------ NLB file
N_TARGETS = 4


def write_nlb_file(path, *, n_trials=24, n_heldin=6, n_heldout=3, seed=0):
    """An NLB-layout NWB file: Units with a ``heldout`` column, trials with ``split``,
    ``move_onset_time`` and a ``target`` angle (degrees), hand velocity in
    processing/behavior. Rates are linear in the hand velocity."""
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries

    rng = np.random.default_rng(seed)
    nwb = NWBFile(session_description="NLB-style test", identifier=f"nlb-{seed}",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    dt, trial_len = 0.001, 1.0
    duration = n_trials * trial_len + 1.0
    t = np.arange(0, duration, dt)
    vel = np.zeros((t.size, 2))
    targets = np.array([0.0, 90.0, 180.0, 270.0])[np.arange(n_trials) % N_TARGETS]
    splits = np.array(["train", "train", "val", "test"])[np.arange(n_trials) % 4]
    onsets = []
    nwb.add_trial_column(name="split", description="NLB split")
    nwb.add_trial_column(name="move_onset_time", description="movement onset")
    nwb.add_trial_column(name="target", description="reach angle (deg)")
    for k in range(n_trials):
        start = 0.5 + k * trial_len
        onset = start + 0.4 + 0.05 * rng.uniform()
        onsets.append(onset)
        m = (t >= onset) & (t < onset + 0.4)
        bell = np.sin(np.pi * (t[m] - onset) / 0.4) ** 2
        ang = np.deg2rad(targets[k])
        vel[m] = 30.0 * bell[:, None] * np.array([np.cos(ang), np.sin(ang)])
        nwb.add_trial(start_time=start, stop_time=start + trial_len - 0.01,
                      split=str(splits[k]), move_onset_time=onset, target=float(targets[k]))
    nwb.add_unit_column(name="heldout", description="held-out unit")
    n = n_heldin + n_heldout
    pref = rng.uniform(0, 2 * np.pi, n)
    for i in range(n):
        rate = np.clip(10.0 + 1.0 * (vel @ np.array([np.cos(pref[i]), np.sin(pref[i])])),
                       0.5, None)
        spikes = t[rng.uniform(size=t.size) < rate * dt]
        nwb.add_unit(spike_times=spikes, heldout=bool(i >= n_heldin))
    beh = nwb.create_processing_module("behavior", "behaviour")
    bts = BehavioralTimeSeries(name="BehavioralTimeSeries")
    bts.add_timeseries(TimeSeries(name="hand_vel", data=vel, unit="mm/s", rate=1 / dt,
                                  starting_time=0.0, description="hand velocity"))
    beh.add(bts)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path, np.asarray(onsets), targets, splits


@pytest.fixture(scope="module")
def nlb_file(tmp_path_factory):
    return write_nlb_file(tmp_path_factory.mktemp("nlb") / "nlb.nwb")


def test_read_nlb_splits_and_units(nlb_file):
    path, onsets, targets, splits = nlb_file
    heldin, heldout = read_nlb(path, bin_size=0.01, split="train")
    n_train = int((splits == "train").sum())
    assert heldin.shape == (n_train, 70, 6)
    assert heldout.shape == (n_train, 70, 3)
    np.testing.assert_allclose(heldin.start_times, onsets[splits == "train"] - 0.25)
    np.testing.assert_allclose(heldin.start_times, heldout.start_times)
    assert set(heldin.trials["split"].tolist()) == {"train"}
    np.testing.assert_allclose(heldin.trials["target"], targets[splits == "train"])
    both, _ = read_nlb(path, bin_size=0.01, split=["train", "val"], window=(-0.1, 0.3))
    assert both.shape == (int(np.isin(splits, ["train", "val"]).sum()), 40, 6)
    assert read_nlb(path, bin_size=0.01, split=None)[0].n_trials == len(splits)


def test_read_nlb_errors(nlb_file, tmp_path):
    path = nlb_file[0]
    with pytest.raises(NWBReadError, match="values present are"):
        read_nlb(path, split="nope")
    with pytest.raises(ValueError, match="window"):
        read_nlb(path, window=(0.3, 0.1))
    plain = write_nwbfile(tmp_path / "plain.nwb")
    with pytest.raises(NWBReadError, match="'heldout'.*quality"):
        read_nlb(plain)


def test_read_behavior_and_decode_from_rates(nlb_file):
    path = nlb_file[0]
    heldin, heldout = read_nlb(path, bin_size=0.02, split=None)
    vel = read_behavior(path, "hand_vel", like=heldin)
    assert vel.shape == (heldin.n_trials, heldin.n_time, 2)
    # the mean per bin: bins before movement onset are 0, peak speed ~30 after onset
    assert np.abs(vel[:, :10]).max() < 1e-9
    assert 20 < np.hypot(vel[..., 0], vel[..., 1]).max() <= 30.0 + 1e-9
    # the same bins from align_to/window give the same array
    vel2 = read_behavior(path, "BehavioralTimeSeries/hand_vel", bin_size=0.02,
                         align_to="move_onset_time", window=(0.25, 0.45))
    np.testing.assert_allclose(vel, vel2)
    one = read_behavior(path, "hand_vel", bin_size=0.5, time_range=(0.0, 5.0))
    assert one.shape == (1, 10, 2)
    # velocity is decodable from smoothed spikes of all units (rates are linear in it)
    from scipy.ndimage import gaussian_filter1d

    counts = np.concatenate([heldin.values, heldout.values], -1)
    smooth = gaussian_filter1d(counts, 2.0, axis=1)
    assert velocity_r2(smooth, vel, alpha=[1.0, 10.0, 100.0]) > 0.3
    with pytest.raises(ValueError, match="hand_pos.*hand_vel"):
        read_behavior(path, "hand_pos", like=heldin)
    with pytest.raises(ValueError, match="bin_size is required"):
        read_behavior(path, "hand_vel")
    with pytest.raises(ValueError, match="not both"):
        read_behavior(path, "hand_vel", like=heldin, bin_size=0.02)


# ------------------------------------------------------------------------------ conditions
def test_condition_inputs_onehot_and_angle(nlb_file):
    path = nlb_file[0]
    heldin, _ = read_nlb(path, bin_size=0.01, split=None)
    oh = condition_inputs(heldin, "target", onset=5, duration=10)
    assert oh.inputs.shape == (heldin.n_trials, 70, N_TARGETS)
    assert oh.provenance["condition_inputs"]["categories"] == [0.0, 90.0, 180.0, 270.0]
    np.testing.assert_array_equal(oh.inputs[:, 5:15].sum(-1), 1.0)
    assert oh.inputs[:, :5].sum() == 0 and oh.inputs[:, 15:].sum() == 0
    k = np.argmax(oh.inputs[:, 5], axis=-1)
    np.testing.assert_array_equal(k, (heldin.trials["target"] // 90).astype(int))
    ang = condition_inputs(heldin, "target", kind="angle", degrees=True)
    np.testing.assert_allclose(ang.inputs[:, 0, 0], np.cos(np.deg2rad(heldin.trials["target"])),
                               atol=1e-6)
    assert ang.inputs.shape == (heldin.n_trials, 70, 2)
    # default window: the whole trial, unit-norm (cos, sin) in every bin
    np.testing.assert_allclose(np.hypot(ang.inputs[..., 0], ang.inputs[..., 1]), 1.0,
                               rtol=1e-6)
    both = condition_inputs(oh, "target", kind="angle", degrees=True, append=True)
    assert both.n_inputs == N_TARGETS + 2
    # onset from a trials column of times (move onset is at bin 25 of the (-0.25, 0.45) window)
    mv = condition_inputs(heldin, "target", kind="angle", degrees=True,
                          onset="move_onset_time", duration=3)
    nz = np.flatnonzero(np.abs(mv.inputs[0]).sum(-1) > 0)
    assert nz.tolist() == [25, 26, 27]


def test_condition_inputs_errors():
    d = BinnedData(np.zeros((3, 10, 2)), 0.01, "counts",
                   trials={"side": np.array(["L", "R", "L"], dtype=object),
                           "angle": np.array([0.0, 1.0, 2.0])})
    with pytest.raises(ValueError, match=r"'target'.*angle, side"):
        condition_inputs(d, "target")
    with pytest.raises(ValueError, match="no trial table"):
        condition_inputs(BinnedData(np.zeros((3, 10, 2)), 0.01, "counts"), "side")
    with pytest.raises(ValueError, match="numeric angles"):
        condition_inputs(d, "side", kind="angle")
    with pytest.raises(ValueError, match="kind"):
        condition_inputs(d, "side", kind="ring")
    with pytest.raises(ValueError, match="onset"):
        condition_inputs(d, "side", onset=10)
    with pytest.raises(ValueError, match="onset column 'cue'"):
        condition_inputs(d, "side", onset="cue")
    with pytest.raises(ValueError, match=r"\['U'\] not in categories"):
        inputs_for(["L", "U"], 10, categories=["L", "R"])
    with pytest.raises(ValueError, match="duration"):
        inputs_for(["L"], 10, duration=0)


def test_inputs_for_new_angle_matches_encoding():
    u = inputs_for([0.0, 45.0], 20, kind="angle", degrees=True, onset=[2, 4], duration=5,
                   scale=2.0)
    assert u.shape == (2, 20, 2) and u.dtype == np.float32
    np.testing.assert_allclose(u[1, 4], [2 * np.cos(np.pi / 4), 2 * np.sin(np.pi / 4)],
                               rtol=1e-6)
    assert np.abs(u[1, :4]).sum() == 0 and np.abs(u[1, 9:]).sum() == 0
    assert np.abs(u[0, 2:7]).min() >= 0 and u[0, 2:7, 0].tolist() == [2.0] * 5


# ------------------------------------------------------------------------------ ring teacher
def _end_angles(z):
    end = z[:, -5:].mean(1)
    return np.arctan2(end[:, 1], end[:, 0])


def _circ_alignment(cue, decoded):
    """|mean e^{i(φ ∓ θ)}|: 1 when the decoded angles are the cue angles up to a rotation
    (or a reflection) of the plane; ~0 when unrelated."""
    return max(abs(np.mean(np.exp(1j * (decoded - cue)))),
               abs(np.mean(np.exp(1j * (decoded + cue)))))


def _pca_angles(z):
    end = z[:, -5:].mean(1)
    end = end - end.mean(0)
    _, _, vt = np.linalg.svd(end, full_matrices=False)
    p = end @ vt[:2].T
    return np.arctan2(p[:, 1], p[:, 0])


def test_ring_teacher_holds_cued_angle():
    from nwb_lrnn.teachers import ring_teacher

    teacher, make_cue = ring_teacher(64, n_observed=40)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    data, z = teacher.sample(16, 60, inputs=make_cue(angles, 60), random_state=0,
                             return_latents=True)
    assert data.values.shape == (16, 60, 40)
    err = np.degrees(np.abs(np.angle(np.exp(1j * (np.arctan2(z[:, -1, 1], z[:, -1, 0])
                                                   - angles)))))
    assert err.max() < 20.0
    # the state is on the ring (not at the origin) long after the cue
    r = np.hypot(z[:, -1, 0], z[:, -1, 1])
    assert r.min() > 1.5
    with pytest.raises(ValueError, match="rank 2"):
        ring_teacher(rank=3)
    with pytest.raises(ValueError, match="ring attractor"):
        ring_teacher(decay=0.5, recurrent_gain=1.0)


def _fit_student(n_trials, n_time, epochs, seed=0):
    from nwb_lrnn import LowRankRNN
    from nwb_lrnn.teachers import ring_teacher

    teacher, make_cue = ring_teacher(64, n_observed=40)
    rng = np.random.default_rng(seed)
    cues = rng.uniform(0, 360, n_trials)
    data = teacher.sample(n_trials, n_time, random_state=seed + 1,
                          inputs=make_cue(cues, n_time, degrees=True))
    data = data.replace(inputs=None, trials={"cue": cues})
    data = condition_inputs(data, "cue", kind="angle", degrees=True, onset=5, duration=10)
    student = LowRankRNN(rank=2, n_units=32, observation="poisson",
                         nonlinearity="clipped_relu", max_epochs=epochs, n_particles=16,
                         batch_size=16, learning_rate=2e-2, random_state=seed, verbose=False,
                         device="cpu")
    student.fit(data)
    test_cues = np.linspace(0, 360, 16, endpoint=False)
    test = teacher.sample(16, n_time, inputs=make_cue(test_cues, n_time, degrees=True),
                          random_state=seed + 2)
    z = student.transform(test)
    gen, z_gen = student.sample(16, n_time, inputs=inputs_for(
        test_cues, n_time, kind="angle", degrees=True, onset=5, duration=10),
        random_state=0, return_latents=True)
    return np.deg2rad(test_cues), z, gen, z_gen, test


def test_ring_student_smoke():
    cues, z, gen, _, test = _fit_student(n_trials=60, n_time=40, epochs=3)
    assert z.shape == (16, 40, 2)
    assert gen.values.shape == test.values.shape
    assert np.all(np.isfinite(z))
    assert _circ_alignment(cues, _pca_angles(z)) > 0.5


@pytest.mark.slow
def test_ring_student_recovers_ring():
    # ~30 s on one thread
    cues, z, gen, z_gen, test = _fit_student(n_trials=120, n_time=40, epochs=60)
    # posterior end states of the teacher's trials lie on a ring ordered by cue angle
    assert _circ_alignment(cues, _pca_angles(z)) > 0.9
    # the student's own dynamics hold the cued angle: its generated end states too
    # (measured 0.87 with this seed; the generated angles diffuse with the learned noise)
    assert _circ_alignment(cues, _pca_angles(z_gen)) > 0.7
    # generated spikes match the teacher's statistics (measured: rate ratio 1.02,
    # correlation similarity 0.98, KS 0.05); the ring units all have about the same mean
    # rate, so rate_correlation is uninformative here
    stats = compare_spike_statistics(test, gen)
    assert 0.8 < stats["rate_ratio"] < 1.25
    assert stats["correlation_similarity"] > 0.8
    assert stats["population_rate_ks"] < 0.2
