"""Tests of the spikeinterface bridge: nwb_lrnn.io.sorting.from_sorting / to_sorting."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from nwb_lrnn.data import BinnedData
from nwb_lrnn.io.sorting import from_sorting, to_sorting

si = pytest.importorskip("spikeinterface.core")


def _numpy_sorting(samples, labels, fs=1000.0, unit_ids=None):
    return si.NumpySorting.from_samples_and_labels(
        [np.asarray(samples, dtype=np.int64)], [np.asarray(labels)], fs, unit_ids=unit_ids)


def _trains(sorting, segment_index):
    return {u: sorting.get_unit_spike_train(u, segment_index=segment_index)
            for u in sorting.get_unit_ids()}


def _round_trip(sorting, data):
    """from_sorting on every segment, with each trial's window; stacked (trials, time, units)."""
    out = []
    for i in range(sorting.get_num_segments()):
        t0 = data.start_times[i]
        back = from_sorting(sorting, bin_size=data.bin_size, segment_index=i, t_start=t0,
                            t_stop=t0 + data.n_time * data.bin_size)
        assert back.n_time == data.n_time
        out.append(back.values[0])
    return np.stack(out)


# ------------------------------------------------------------------------------ from_sorting
def test_from_sorting_bins_and_metadata():
    # fs = 1000 Hz, 0.25 s bins: samples 250, 500, 750 lie exactly on bin edges
    sorting = _numpy_sorting([0, 249, 250, 499, 500, 999, 10, 750],
                             [3, 3, 3, 3, 3, 3, 8, 8])
    data = from_sorting(sorting, bin_size=0.25, t_stop=1.0)
    assert isinstance(data, BinnedData)
    assert data.kind == "counts" and data.shape == (1, 4, 2)
    np.testing.assert_array_equal(data.values[0, :, 0], [2, 2, 1, 1])  # edge -> later bin
    np.testing.assert_array_equal(data.values[0, :, 1], [1, 0, 0, 1])
    assert data.channel_ids.tolist() == [3, 8]
    assert data.channel_names == ["3", "8"]
    np.testing.assert_array_equal(data.start_times, [0.0])
    assert data.bin_size == 0.25
    assert data.provenance == {
        "reader": "nwb_lrnn.io.from_sorting", "sorting": "NumpySorting",
        "sampling_frequency": 1000.0, "segment_index": 0, "unit_ids": [3, 8],
        "t_start": 0.0, "t_stop": 1.0}


def test_from_sorting_edges_with_offset_window():
    sorting = _numpy_sorting([100, 349, 350, 599, 600, 850], [1] * 6)
    data = from_sorting(sorting, bin_size=0.25, t_start=0.1, t_stop=0.85)
    # bins [0.1, 0.35), [0.35, 0.6), [0.6, 0.85): 0.85 is excluded, 0.1 included
    np.testing.assert_array_equal(data.values[0, :, 0], [2, 2, 1])
    np.testing.assert_array_equal(data.start_times, [0.1])


def test_from_sorting_never_counts_a_spike_at_t_stop():
    # 0.1 + 2 * 0.1 rounds to 0.30000000000000004 > 0.3: the spike at 0.3 s must still be out
    sorting = _numpy_sorting([100, 299, 300], [1, 1, 1])
    data = from_sorting(sorting, bin_size=0.1, t_start=0.1, t_stop=0.3)
    np.testing.assert_array_equal(data.values[0, :, 0], [1, 1])


@pytest.mark.parametrize(("t_start", "t_stop", "bin_size"),
                         [(0.0, 3.0, 0.02), (0.3, 2.7, 0.1), (1.234, 2.9, 0.05),
                          (0.0, 3.0, 0.0123)])
def test_from_sorting_counts_equal_spikes_in_window(t_start, t_stop, bin_size):
    sorting = si.generate_sorting(num_units=6, durations=[3.0, 2.0], firing_rates=20.0, seed=0)
    data = from_sorting(sorting, bin_size=bin_size, t_start=t_start, t_stop=t_stop)
    n_bins = data.n_time
    assert n_bins == int(np.floor((t_stop - t_start) / bin_size + 1e-9))
    for j, u in enumerate(sorting.get_unit_ids()):
        t = sorting.get_unit_spike_train(u, segment_index=0, return_times=True)
        # whole bins only: the partial last bin (if any) is dropped
        stop = min(t_stop, t_start + n_bins * bin_size)
        expected = np.count_nonzero((t >= t_start) & (t < stop))
        assert data.values[0, :, j].sum() == expected
        assert expected > 0
    # string unit ids from generate_sorting are kept as ids and names
    assert data.channel_names == [str(u) for u in sorting.get_unit_ids()]


def test_from_sorting_segment_and_unit_selection():
    sorting = si.generate_sorting(num_units=5, durations=[2.0, 1.0], firing_rates=10.0, seed=1)
    ids = sorting.get_unit_ids()
    chosen = [ids[3], ids[0]]
    data = from_sorting(sorting, bin_size=0.05, segment_index=1, unit_ids=chosen,
                        t_stop=1.0)
    assert data.channel_ids.tolist() == chosen
    assert data.provenance["segment_index"] == 1
    assert data.provenance["unit_ids"] == [str(u) for u in chosen]
    for j, u in enumerate(chosen):
        t = sorting.get_unit_spike_train(u, segment_index=1, return_times=True)
        assert data.values[0, :, j].sum() == np.count_nonzero(t < 1.0)
    one = from_sorting(sorting, bin_size=0.05, unit_ids=ids[2], t_stop=1.0)
    assert one.channel_ids.tolist() == [ids[2]]


def test_from_sorting_default_window_without_recording():
    sorting = _numpy_sorting([5, 120, 333], [0, 1, 0])
    data = from_sorting(sorting, bin_size=0.1)
    # from 0 to the end of the bin holding the last spike (0.333 s -> bin 3)
    assert data.n_time == 4
    np.testing.assert_array_equal(data.values[0].sum(axis=0), [2, 1])
    assert data.provenance["t_stop"] == pytest.approx(0.4)


def test_from_sorting_default_window_from_registered_recording():
    sorting = si.generate_sorting(num_units=3, durations=[2.0, 1.5], firing_rates=5.0, seed=2)
    recording = si.generate_recording(num_channels=1, durations=[2.0, 1.5],
                                      sampling_frequency=30000.0, seed=2)
    sorting.register_recording(recording)
    data = from_sorting(sorting, bin_size=0.1, segment_index=1)
    assert data.n_time == 15
    assert data.provenance["t_start"] == 0.0
    assert data.provenance["t_stop"] == pytest.approx(1.5)
    total = sum(sorting.get_unit_spike_train(u, segment_index=1).size
                for u in sorting.get_unit_ids())
    assert data.values.sum() == total


def test_from_sorting_default_start_follows_segment_start_time():
    sorting = _numpy_sorting([0, 100, 250], [1, 1, 1])
    sorting.shift_times(10.0)
    data = from_sorting(sorting, bin_size=0.1)
    np.testing.assert_array_equal(data.start_times, [10.0])
    np.testing.assert_array_equal(data.values[0, :, 0], [1, 1, 1])


def test_from_sorting_logs_dropped_partial_bin(caplog):
    sorting = _numpy_sorting([0, 950], [1, 1])
    with caplog.at_level(logging.INFO, logger="nwb_lrnn.io.sorting"):
        data = from_sorting(sorting, bin_size=0.3, t_stop=1.0)
    assert data.n_time == 3
    assert data.values.sum() == 1  # 0.95 s is in the dropped partial bin [0.9, 1.0)
    assert "not a whole number" in caplog.text


# ------------------------------------------------------------------------------ to_sorting
def _poisson_data(rng, *, n_trials=3, n_time=50, n_units=4, rate=1.5, bin_size=0.01,
                  start_times=None, channel_ids=None):
    counts = rng.poisson(rate, size=(n_trials, n_time, n_units))
    return BinnedData(counts, bin_size, "counts", start_times=start_times,
                      channel_ids=channel_ids)


@pytest.mark.parametrize(("bin_size", "fs", "start_times"),
                         [(0.01, 30000.0, [0.0, 0.5, 1.0]),
                          (0.0123, 1000.0, [0.0, 3.7, 12.345]),
                          (0.02, 20000.0, [-1.0, 0.1, 1e4]),
                          (1 / 3, 7.0, [0.3, 0.6, 0.9])])
def test_round_trip_reproduces_counts(bin_size, fs, start_times):
    rng = np.random.default_rng(0)
    data = _poisson_data(rng, bin_size=bin_size, start_times=start_times,
                         channel_ids=[10, 20, 30, 40])
    sorting = to_sorting(data, sampling_frequency=fs, random_state=1)
    assert isinstance(sorting, si.NumpySorting)
    assert sorting.get_num_segments() == 3
    assert list(sorting.get_unit_ids()) == [10, 20, 30, 40]
    assert sorting.get_sampling_frequency() == fs
    for i, t0 in enumerate(start_times):
        assert sorting.get_start_time(segment_index=i) == t0
    np.testing.assert_array_equal(_round_trip(sorting, data), data.values)


@pytest.mark.parametrize(("bin_size", "fs"),
                         [(0.005, 2000.0), (0.001, 30000.0), (0.02, 1000.0), (0.1, 30.0),
                          (0.0123, 1000.0)])
def test_round_trip_with_every_sample_used(bin_size, fs):
    # full bins use the samples on the bin edges, where float rounding decides the bin
    start_times = [0.0, 0.1, 2.0, 5.0, 12.345, 1e3 + 0.3]
    n_time = 60
    first = np.ceil(np.arange(n_time + 1) * bin_size * fs - 1e-6).astype(int)
    per_bin = np.diff(first)  # samples per bin (away from rounding trouble)
    counts = np.broadcast_to(per_bin[None, :, None], (len(start_times), n_time, 1))
    data = BinnedData(counts, bin_size, "counts", start_times=start_times)
    sorting = to_sorting(data, sampling_frequency=fs, random_state=0)
    np.testing.assert_array_equal(_round_trip(sorting, data), data.values)


def test_to_sorting_places_spikes_inside_bins_distinct_and_sorted():
    rng = np.random.default_rng(3)
    data = _poisson_data(rng, n_trials=2, n_time=40, rate=4.0, bin_size=0.005,
                         start_times=[2.0, 5.0])
    fs = 2000.0  # 10 samples per bin, up to ~12 spikes: mostly distinct
    counts = data.values.astype(int)
    assert counts.max() <= 10
    sorting = to_sorting(data, sampling_frequency=fs, random_state=0)
    for i in range(2):
        for j, samples in enumerate(_trains(sorting, i).values()):
            assert np.all(np.diff(samples) > 0)  # sorted and distinct
            np.testing.assert_array_equal(np.bincount(samples // 10, minlength=40),
                                          counts[i, :, j])


def test_to_sorting_more_spikes_than_samples_shares_samples(caplog):
    counts = np.zeros((1, 3, 1))
    counts[0, :, 0] = [7, 0, 2]
    data = BinnedData(counts, 0.005, "counts")
    with caplog.at_level(logging.WARNING, logger="nwb_lrnn.io.sorting"):
        sorting = to_sorting(data, sampling_frequency=600.0, random_state=0)  # 3 samples/bin
    assert "more spikes than samples" in caplog.text
    samples = sorting.get_unit_spike_train(0, segment_index=0)
    assert np.all(np.diff(samples) >= 0)
    per_sample = np.bincount(samples, minlength=9)
    assert sorted(per_sample[:3].tolist()) == [2, 2, 3]  # 7 = 2 * 3 + 1: as even as possible
    assert per_sample[3:6].sum() == 0
    assert sorted(per_sample[6:].tolist()) == [0, 1, 1]  # 2 <= 3 samples: distinct
    np.testing.assert_array_equal(_round_trip(sorting, data), data.values)


def test_to_sorting_keeps_empty_trials_as_segments():
    counts = np.zeros((4, 10, 2))
    counts[1, 3, 0] = 2
    data = BinnedData(counts, 0.01, "counts", channel_ids=["a", "b"])
    sorting = to_sorting(data, random_state=0)
    assert sorting.get_num_segments() == 4  # empty trials 2 and 3 included
    assert sorting.get_unit_spike_train("b", segment_index=3).size == 0
    np.testing.assert_array_equal(_round_trip(sorting, data), data.values)
    empty = to_sorting(BinnedData(np.zeros((2, 5, 1)), 0.01, "counts"), random_state=0)
    assert empty.get_num_segments() == 2


def test_to_sorting_single_trial():
    rng = np.random.default_rng(4)
    data = _poisson_data(rng, start_times=[0.0, 1.0, 2.0])
    sorting = to_sorting(data, trial=2, random_state=0)
    assert sorting.get_num_segments() == 1
    assert sorting.get_start_time(segment_index=0) == 2.0
    back = from_sorting(sorting, bin_size=0.01, t_start=2.0, t_stop=2.5)
    np.testing.assert_array_equal(back.values[0], data.values[2])


def test_to_sorting_is_reproducible():
    rng = np.random.default_rng(5)
    data = _poisson_data(rng)
    a = to_sorting(data, random_state=7).to_spike_vector()
    b = to_sorting(data, random_state=7).to_spike_vector()
    c = to_sorting(data, random_state=np.random.default_rng(7)).to_spike_vector()
    d = to_sorting(data, random_state=8).to_spike_vector()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert a.size == d.size and not np.array_equal(a["sample_index"], d["sample_index"])


@pytest.mark.parametrize("count", [3, 8])  # few draws (rejection) and many (random keys)
def test_to_sorting_spikes_uniform_within_bins(count):
    counts = np.full((1, 200, 1), float(count))
    data = BinnedData(counts, 0.01, "counts")
    samples = to_sorting(data, sampling_frequency=1000.0,
                         random_state=0).get_unit_spike_train(0, segment_index=0)
    assert np.all(np.diff(samples) > 0)
    offsets = samples % 10  # 10 samples per bin: each offset expects 20 * count spikes
    hist = np.bincount(offsets, minlength=10)
    expected = 20.0 * count
    chi2 = ((hist - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # 0.999 quantile of chi2 with 9 dof (conservative without replacement)


def test_from_sorting_of_generated_sorting_round_trips():
    sorting = si.generate_sorting(num_units=4, durations=[2.0], firing_rates=15.0, seed=3)
    data = from_sorting(sorting, bin_size=0.02, t_stop=2.0)
    again = to_sorting(data, sampling_frequency=30000.0, random_state=0)
    assert list(again.get_unit_ids()) == list(sorting.get_unit_ids())
    np.testing.assert_array_equal(_round_trip(again, data), data.values)


# ------------------------------------------------------------------------------ errors
@pytest.fixture
def small_sorting():
    return _numpy_sorting([10, 500, 900], [1, 2, 1])


def test_from_sorting_rejects_non_sorting():
    with pytest.raises(TypeError, match="sorting must be a spikeinterface BaseSorting, got "
                                        "ndarray"):
        from_sorting(np.zeros(3), bin_size=0.1)


def test_from_sorting_segment_index_out_of_range(small_sorting):
    with pytest.raises(ValueError, match=r"segment_index must be in \[0, 0\] \(the sorting has "
                                         r"1 segment\(s\)\), got 1"):
        from_sorting(small_sorting, bin_size=0.1, segment_index=1)
    with pytest.raises(ValueError, match="segment_index must be in .* got -1"):
        from_sorting(small_sorting, bin_size=0.1, segment_index=-1)
    with pytest.raises(TypeError, match=r"segment_index must be an int, got float \(0.0\)"):
        from_sorting(small_sorting, bin_size=0.1, segment_index=0.0)


def test_from_sorting_unknown_unit_ids_lists_valid_ones(small_sorting):
    with pytest.raises(ValueError, match=r"unknown unit id\(s\): 5, 'x'\. The sorting's unit "
                                         r"ids are: 1, 2\."):
        from_sorting(small_sorting, bin_size=0.1, unit_ids=[1, 5, "x"])
    many = si.generate_sorting(num_units=30, durations=[1.0], seed=0)
    with pytest.raises(ValueError, match=r"'0', '1', .*'19', \.\.\. and 10 more\.$"):
        from_sorting(many, bin_size=0.1, unit_ids=["99"])


def test_from_sorting_repeated_or_empty_unit_ids(small_sorting):
    with pytest.raises(ValueError, match="unit_ids must not repeat a unit; repeated: 2"):
        from_sorting(small_sorting, bin_size=0.1, unit_ids=[2, 1, 2])
    with pytest.raises(ValueError, match="unit_ids is empty"):
        from_sorting(small_sorting, bin_size=0.1, unit_ids=[])


def test_from_sorting_no_units():
    sorting = si.NumpySorting.from_samples_and_labels(
        [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)], 1000.0, unit_ids=[])
    with pytest.raises(ValueError, match="The sorting has no units"):
        from_sorting(sorting, bin_size=0.1, t_stop=1.0)


@pytest.mark.parametrize(("bin_size", "err", "match"),
                         [(0.0, ValueError, r"bin_size must be > 0.0, got 0.0"),
                          (-0.1, ValueError, r"bin_size must be > 0.0, got -0.1"),
                          (float("nan"), ValueError, "bin_size must be finite"),
                          ("0.1", TypeError, r"bin_size must be a number, got str")])
def test_from_sorting_bad_bin_size(small_sorting, bin_size, err, match):
    with pytest.raises(err, match=match):
        from_sorting(small_sorting, bin_size=bin_size, t_stop=1.0)


def test_from_sorting_bin_longer_than_window(small_sorting):
    with pytest.raises(ValueError, match=r"bin_size \(2.0 s\) is longer than the window "
                                         r"\[0.0, 1.0\) of 1.0 s"):
        from_sorting(small_sorting, bin_size=2.0, t_stop=1.0)


def test_from_sorting_bad_window(small_sorting):
    with pytest.raises(ValueError, match=r"t_stop must be > t_start, got t_start=1.0 and "
                                         r"t_stop=1.0"):
        from_sorting(small_sorting, bin_size=0.1, t_start=1.0, t_stop=1.0)
    with pytest.raises(ValueError, match=r"t_stop must be > t_start, got t_start=0.0 and "
                                         r"t_stop=-1.0"):
        from_sorting(small_sorting, bin_size=0.1, t_stop=-1.0)
    with pytest.raises(ValueError, match="Cannot infer t_stop: segment 0 has no spike"):
        from_sorting(small_sorting, bin_size=0.1, t_start=5.0)


def test_to_sorting_errors():
    counts = BinnedData(np.ones((2, 5, 1)), 0.01, "counts")
    with pytest.raises(TypeError, match="data must be a BinnedData, got ndarray"):
        to_sorting(np.ones((2, 5, 1)))
    with pytest.raises(ValueError, match=r"to_sorting needs spike counts \(data.kind='counts'\), "
                                         r"got data.kind='continuous'"):
        to_sorting(BinnedData(np.ones((2, 5, 1)), 0.01, "continuous"))
    with pytest.raises(ValueError, match=r"trial must be in \[0, 1\] \(data has 2 trial\(s\)\), "
                                         r"got 2"):
        to_sorting(counts, trial=2)
    with pytest.raises(TypeError, match="trial must be an int"):
        to_sorting(counts, trial="0")
    with pytest.raises(ValueError, match=r"sampling_frequency must be > 0.0, got 0.0"):
        to_sorting(counts, sampling_frequency=0.0)
    with pytest.raises(ValueError, match=r"sampling_frequency=50.0 Hz is too low for "
                                         r"bin_size=0.01 s.*>= 100 Hz"):
        to_sorting(counts, sampling_frequency=50.0)
    with pytest.raises(TypeError, match="random_state must be None, an int or a numpy "
                                        "Generator, got str"):
        to_sorting(counts, random_state="seed")


def test_missing_spikeinterface_gives_install_hint(monkeypatch, small_sorting):
    monkeypatch.setitem(sys.modules, "spikeinterface", None)
    monkeypatch.setitem(sys.modules, "spikeinterface.core", None)
    hint = r"pip install nwb-lrnn\[spikeinterface\]"
    with pytest.raises(ImportError, match=hint):
        from_sorting(small_sorting, bin_size=0.1)
    with pytest.raises(ImportError, match=hint):
        to_sorting(BinnedData(np.ones((1, 5, 1)), 0.01, "counts"))
