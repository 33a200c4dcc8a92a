"""Tests of nwb_lrnn.data.BinnedData."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from nwb_lrnn.data import BinnedData

RNG_SEED = 1234


@pytest.fixture
def counts() -> np.ndarray:
    return np.random.default_rng(RNG_SEED).poisson(1.5, size=(6, 50, 4))


@pytest.fixture
def data(counts) -> BinnedData:
    inputs = np.random.default_rng(0).standard_normal((6, 50, 2))
    return BinnedData(counts, 0.02, "counts", inputs=inputs,
                      trials={"cond": np.arange(6) % 2, "label": np.array(list("abcdef"))},
                      provenance={"file": "x.nwb", "dandiset": "000001"})


# ------------------------------------------------------------------------- construction
def test_shapes_and_defaults(counts):
    d = BinnedData(counts, 0.02, "counts")
    assert d.shape == (6, 50, 4) and len(d) == 6
    assert (d.n_trials, d.n_time, d.n_channels, d.n_inputs) == (6, 50, 4, 0)
    assert d.values.dtype == np.float32
    np.testing.assert_array_equal(d.values, counts)
    np.testing.assert_array_equal(d.channel_ids, np.arange(4))
    assert d.channel_names == ["ch0", "ch1", "ch2", "ch3"]
    assert d.channel_locations is None and d.inputs is None
    np.testing.assert_allclose(d.start_times, np.arange(6) * 50 * 0.02)
    assert d.trials == {} and d.provenance == {}
    assert d.duration == pytest.approx(1.0)
    np.testing.assert_allclose(d.times, np.arange(50) * 0.02)
    assert d.nan_mask is None


def test_two_d_promotion():
    d = BinnedData(np.zeros((30, 3)), 0.1, "continuous", inputs=np.ones((30, 2)))
    assert d.shape == (1, 30, 3)
    assert d.inputs.shape == (1, 30, 2) and d.inputs.dtype == np.float32
    assert d.n_inputs == 2


def test_channel_names_default_from_ids():
    d = BinnedData(np.zeros((1, 5, 3)), 0.1, "counts", channel_ids=[10, 11, 12])
    assert d.channel_names == ["10", "11", "12"]
    d = BinnedData(np.zeros((1, 5, 2)), 0.1, "counts", channel_names=["a", "b"],
                   channel_locations=[[0, 0, 0], [1, np.nan, 2]])
    assert d.channel_names == ["a", "b"]
    assert d.channel_locations.shape == (2, 3)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 5)])
def test_values_wrong_ndim(shape):
    with pytest.raises(ValueError, match=r"values.*got shape " + re.escape(str(shape))):
        BinnedData(np.zeros(shape), 0.1, "counts")


def test_values_empty_axis():
    with pytest.raises(ValueError, match=r"values.*\(0, 5, 3\)"):
        BinnedData(np.zeros((0, 5, 3)), 0.1, "counts")


def test_bad_kind():
    with pytest.raises(ValueError, match=r"'kind'.*'spikes'"):
        BinnedData(np.zeros((1, 5, 3)), 0.1, "spikes")


def test_bad_nan_policy():
    with pytest.raises(ValueError, match=r"'nan_policy'.*'drop'"):
        BinnedData(np.zeros((1, 5, 3)), 0.1, "continuous", nan_policy="drop")


@pytest.mark.parametrize("bin_size", [0, -0.01])
def test_bin_size_not_positive(bin_size):
    with pytest.raises(ValueError, match=rf"bin_size must be > 0.*{bin_size}"):
        BinnedData(np.zeros((1, 5, 3)), bin_size, "counts")


def test_bin_size_type():
    with pytest.raises(TypeError, match="bin_size must be a number"):
        BinnedData(np.zeros((1, 5, 3)), "20ms", "counts")


def test_negative_counts():
    x = np.zeros((2, 5, 3))
    x[1, 2, 0] = -1
    with pytest.raises(ValueError, match=r"1 entries are not.*-1\.0 at .*\(1, 2, 0\)"):
        BinnedData(x, 0.1, "counts")


def test_non_integer_counts():
    x = np.zeros((2, 5, 3))
    x[0, 3, 2] = 0.5
    x[1, 4, 1] = 2.25
    with pytest.raises(ValueError, match=r"'counts'.*2 entries are not.*0\.5 at .*\(0, 3, 2\)"):
        BinnedData(x, 0.1, "counts")


def test_counts_never_allow_nan():
    x = np.zeros((1, 5, 3))
    x[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 entries are not.*nan.*NaN"):
        BinnedData(x, 0.1, "counts", nan_policy="allow")


def test_nan_raise_names_channels():
    x = np.zeros((2, 5, 4))
    x[0, 1, 1] = x[1, 2, 1] = x[0, 0, 3] = np.nan
    with pytest.raises(ValueError, match=r"3 NaN.*2 channel.*1 \('b'\).*3 \('d'\)"
                                         r".*nan_policy='allow'"):
        BinnedData(x, 0.1, "continuous", channel_names=list("abcd"))


def test_nan_allow_and_mask():
    x = np.ones((2, 5, 4))
    x[0, 1, 1] = np.nan
    d = BinnedData(x, 0.1, "continuous", nan_policy="allow")
    mask = d.nan_mask
    assert mask.shape == (2, 5, 4) and mask.dtype == bool
    assert mask.sum() == x.size - 1 and not mask[0, 1, 1]
    assert np.isnan(d.values[0, 1, 1])
    # NaN survives trial selection and windowing
    assert d[0].nan_mask is not None and d[1].nan_mask is None


@pytest.mark.parametrize("kind", ["counts", "continuous"])
def test_inf_never_allowed(kind):
    x = np.zeros((1, 5, 3))
    x[0, 2, 1] = np.inf
    with pytest.raises(ValueError, match=r"1 infinite.*\(0, 2, 1\)"):
        BinnedData(x, 0.1, kind, nan_policy="allow")


def test_inputs_shape_mismatch():
    with pytest.raises(ValueError, match=r"inputs has shape \(2, 4, 1\).*values has shape "
                                         r"\(2, 5, 3\)"):
        BinnedData(np.zeros((2, 5, 3)), 0.1, "counts", inputs=np.zeros((2, 4, 1)))


def test_inputs_2d_needs_single_trial():
    with pytest.raises(ValueError, match=r"inputs of shape \(5, 1\).*\(2, 5, 3\)"):
        BinnedData(np.zeros((2, 5, 3)), 0.1, "counts", inputs=np.zeros((5, 1)))


def test_inputs_must_be_finite():
    u = np.zeros((1, 5, 1))
    u[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="inputs contains 1 NaN"):
        BinnedData(np.zeros((1, 5, 3)), 0.1, "continuous", inputs=u)


def test_channel_metadata_lengths():
    x = np.zeros((1, 5, 3))
    with pytest.raises(ValueError, match=r"channel_names has 2 entries.*3 channels"):
        BinnedData(x, 0.1, "counts", channel_names=["a", "b"])
    with pytest.raises(TypeError, match=r"channel_names\[1\] is int"):
        BinnedData(x, 0.1, "counts", channel_names=["a", 1, "c"])
    with pytest.raises(ValueError, match=r"channel_ids.*n_channels=3.*\(4,\)"):
        BinnedData(x, 0.1, "counts", channel_ids=[1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"channel_ids must be unique.*2"):
        BinnedData(x, 0.1, "counts", channel_ids=[1, 2, 2])
    with pytest.raises(ValueError, match=r"channel_locations.*\(3, 2\)"):
        BinnedData(x, 0.1, "counts", channel_locations=np.zeros((3, 2)))


def test_trials_and_start_times_lengths():
    x = np.zeros((3, 5, 2))
    with pytest.raises(ValueError, match=r"trials column 'cond'.*n_trials=3.*\(2,\)"):
        BinnedData(x, 0.1, "counts", trials={"cond": [0, 1]})
    with pytest.raises(ValueError, match=r"start_times.*n_trials=3.*\(4,\)"):
        BinnedData(x, 0.1, "counts", start_times=np.arange(4.0))


def test_provenance_must_be_json():
    d = BinnedData(np.zeros((1, 5, 2)), 0.1, "counts",
                   provenance={"n": np.int64(3), "v": np.arange(2)})
    assert d.provenance == {"n": 3, "v": [0, 1]}
    with pytest.raises(TypeError, match=r"provenance\['obj'\] must be JSON"):
        BinnedData(np.zeros((1, 5, 2)), 0.1, "counts", provenance={"obj": object()})


def test_repr(data):
    assert repr(BinnedData(np.zeros((10, 200, 40)), 0.02, "counts")) == (
        "<BinnedData | counts, 10 trials × 200 bins × 40 channels, bin 20.0 ms>")
    assert repr(data) == ("<BinnedData | counts, 6 trials × 50 bins × 4 channels, "
                          "bin 20.0 ms, 2 inputs>")
    assert "1 trial ×" in repr(data[0])


# ------------------------------------------------------------------------- from_array
@pytest.mark.parametrize(("x", "kind"), [
    (np.array([[0, 3], [1, 2]]), "counts"),
    (np.array([[0.0, 3.0], [1.0, 2.0]]), "counts"),
    (np.array([[0.0, 3.5], [1.0, 2.0]]), "continuous"),
    (np.array([[0, -3], [1, 2]]), "continuous"),
    (np.array([[True, False]]), "counts"),
])
def test_from_array_kind_inference(x, kind):
    d = BinnedData.from_array(x)
    assert d.kind == kind and d.bin_size == 1.0 and d.shape == (1, *x.shape)


def test_from_array_nan_is_continuous_and_kwargs():
    x = np.array([[0.0, np.nan], [1.0, 2.0]])
    d = BinnedData.from_array(x, 0.5, nan_policy="allow", channel_names=["a", "b"])
    assert d.kind == "continuous" and d.channel_names == ["a", "b"] and d.bin_size == 0.5
    assert BinnedData.from_array(np.ones((2, 3)), kind="continuous").kind == "continuous"


# ------------------------------------------------------------------------- trial subsets
def test_getitem_and_select(data):
    sub = data[[4, 1]]
    assert sub.shape == (2, 50, 4)
    np.testing.assert_array_equal(sub.values, data.values[[4, 1]])
    np.testing.assert_array_equal(sub.inputs, data.inputs[[4, 1]])
    np.testing.assert_array_equal(sub.start_times, data.start_times[[4, 1]])
    np.testing.assert_array_equal(sub.trials["label"], ["e", "b"])
    assert data[-1].shape == (1, 50, 4)
    assert data[1:5:2].n_trials == 2
    assert data.select_trials(np.arange(6) >= 4).n_trials == 2
    assert sub.provenance == data.provenance and sub.kind == data.kind
    with pytest.raises(IndexError, match=r"Invalid trial index 9.*6 trial"):
        data[9]
    with pytest.raises(ValueError, match="empty"):
        data[[]]
    with pytest.raises(TypeError, match="trial only"):
        data[0, 1]


def test_split_trials_disjoint_covering_reproducible(data):
    train, test = data.split_trials(0.34, random_state=3)
    assert (len(train), len(test)) == (3, 3)
    tr_t, te_t = set(train.start_times.tolist()), set(test.start_times.tolist())
    assert tr_t.isdisjoint(te_t) and tr_t | te_t == set(data.start_times.tolist())
    train2, test2 = data.split_trials(0.34, random_state=3)
    np.testing.assert_array_equal(test.values, test2.values)
    np.testing.assert_array_equal(train.trials["label"], train2.trials["label"])
    # values follow their start time
    for part in (train, test):
        for i, t in enumerate(part.start_times):
            j = int(np.flatnonzero(data.start_times == t)[0])
            np.testing.assert_array_equal(part.values[i], data.values[j])
            np.testing.assert_array_equal(part.inputs[i], data.inputs[j])


def test_split_trials_int_and_no_shuffle(data):
    train, test = data.split_trials(2, shuffle=False)
    np.testing.assert_array_equal(test.trials["label"], ["e", "f"])
    np.testing.assert_array_equal(train.trials["label"], list("abcd"))


@pytest.mark.parametrize(("test_size", "err", "match"), [
    (0.0, ValueError, r"test_size must be > 0\.0, got 0\.0"),
    (1.0, ValueError, r"test_size must be < 1\.0, got 1\.0"),
    (1.5, ValueError, r"test_size must be < 1\.0, got 1\.5"),
    (0, ValueError, r"test_size must be >= 1, got 0"),
    (6, ValueError, r"test_size=6 with 6 trial\(s\) gives 0 training and 6 test"),
    ("half", TypeError, r"test_size.*'half'"),
    (True, TypeError, r"test_size.*True"),
])
def test_split_trials_bad_test_size(data, test_size, err, match):
    with pytest.raises(err, match=match):
        data.split_trials(test_size)


def test_split_trials_single_trial():
    d = BinnedData(np.zeros((1, 5, 2)), 0.1, "counts")
    with pytest.raises(ValueError, match="0 training and 1 test"):
        d.split_trials(0.5)


# ------------------------------------------------------------------------- windows
def test_random_windows_match_source(data):
    w = data.windows(12, n_windows=20, random_state=7)
    assert w.shape == (20, 12, 4) and w.inputs.shape == (20, 12, 2)
    assert w.provenance["windowed_from"] == "(6, 50, 4)"
    assert w.provenance["file"] == "x.nwb"
    for k in range(20):
        global_bin = round(float(w.start_times[k]) / data.bin_size)
        trial, start = divmod(global_bin, data.n_time)
        assert start + 12 <= data.n_time
        np.testing.assert_array_equal(w.values[k], data.values[trial, start:start + 12])
        np.testing.assert_array_equal(w.inputs[k], data.inputs[trial, start:start + 12])
        assert w.trials["label"][k] == data.trials["label"][trial]
    w2 = data.windows(12, n_windows=20, random_state=7)
    np.testing.assert_array_equal(w.start_times, w2.start_times)


def test_random_windows_cover_all_positions():
    d = BinnedData(np.zeros((2, 5, 1)), 1.0, "counts")
    w = d.windows(4, n_windows=400, random_state=0)
    # 2 trials x 2 start positions, all drawn
    assert set(w.start_times.tolist()) == {0.0, 1.0, 5.0, 6.0}


@pytest.mark.parametrize(("length", "step"), [(10, None), (10, 3), (50, None), (7, 50), (1, 1)])
def test_regular_windows_count(data, length, step):
    w = data.windows(length, step=step)
    step_ = length if step is None else step
    per_trial = (data.n_time - length) // step_ + 1
    assert w.shape == (data.n_trials * per_trial, length, 4)
    # second window of the first trial (when there is one)
    if per_trial > 1:
        np.testing.assert_array_equal(w.values[1], data.values[0, step_:step_ + length])
        assert w.start_times[1] == pytest.approx(step_ * data.bin_size)
    # first window of the last trial
    k = (data.n_trials - 1) * per_trial
    np.testing.assert_array_equal(w.values[k], data.values[-1, :length])
    np.testing.assert_array_equal(w.trials["cond"][k], data.trials["cond"][-1])


def test_windows_errors(data):
    with pytest.raises(ValueError, match=r"length=51.*n_time=50"):
        data.windows(51)
    with pytest.raises(ValueError, match="length must be >= 1, got 0"):
        data.windows(0)
    with pytest.raises(ValueError, match="step must be >= 1, got 0"):
        data.windows(5, step=0)
    with pytest.raises(ValueError, match="n_windows must be >= 1, got 0"):
        data.windows(5, n_windows=0)
    with pytest.raises(ValueError, match=r"either n_windows.*or step"):
        data.windows(5, n_windows=3, step=2)


# ------------------------------------------------------------------------- split_time
def test_split_time(data):
    first, last = data.split_time(0.8)
    assert first.shape == (6, 40, 4) and last.shape == (6, 10, 4)
    assert first.inputs.shape == (6, 40, 2) and last.inputs.shape == (6, 10, 2)
    np.testing.assert_array_equal(np.concatenate([first.values, last.values], axis=1),
                                  data.values)
    np.testing.assert_allclose(last.start_times, data.start_times + 40 * 0.02)
    np.testing.assert_array_equal(last.trials["label"], data.trials["label"])
    with pytest.raises(ValueError, match=r"fraction must be < 1\.0, got 1\.0"):
        data.split_time(1.0)
    with pytest.raises(ValueError, match=r"fraction=0\.001.*0 and 50 bins"):
        data.split_time(0.001)


# ------------------------------------------------------------------------- conversion
def test_to_dict_from_dict_round_trip(data):
    d = data.replace(channel_ids=np.array(["u1", "u2", "u3", "u4"]),
                     channel_locations=[[0, 0, 0], [1, 1, 1], [np.nan, 2, 2], [3, 3, 3]])
    meta = json.loads(json.dumps(d.to_dict()))
    assert "values" not in meta and meta["kind"] == "counts" and meta["shape"] == [6, 50, 4]
    back = BinnedData.from_dict(meta, values=d.values, inputs=d.inputs)
    _assert_same(back, d)
    full = json.loads(json.dumps(d.to_dict(include_arrays=True), allow_nan=False))
    _assert_same(BinnedData.from_dict(full), d)
    with pytest.raises(ValueError, match="pass values"):
        BinnedData.from_dict(meta)
    with pytest.raises(ValueError, match=r"shape \(6, 50, 4\)"):
        BinnedData.from_dict(meta, values=d.values[:, :10], inputs=d.inputs[:, :10])


def test_to_dict_nan_values_strict_json():
    x = np.ones((1, 4, 2))
    x[0, 1, 0] = np.nan
    d = BinnedData(x, 0.004, "continuous", nan_policy="allow")
    full = json.loads(json.dumps(d.to_dict(include_arrays=True), allow_nan=False))
    back = BinnedData.from_dict(full)
    np.testing.assert_array_equal(back.nan_mask, d.nan_mask)
    assert back.nan_policy == "allow"


def _assert_same(a: BinnedData, b: BinnedData) -> None:
    assert a.shape == b.shape and a.kind == b.kind and a.bin_size == b.bin_size
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    np.testing.assert_array_equal(a.channel_ids, b.channel_ids)
    assert a.channel_ids.dtype == b.channel_ids.dtype
    assert a.channel_names == b.channel_names
    np.testing.assert_array_equal(a.channel_locations, b.channel_locations)
    np.testing.assert_array_equal(a.start_times, b.start_times)
    assert a.trials.keys() == b.trials.keys()
    for k in a.trials:
        np.testing.assert_array_equal(a.trials[k], b.trials[k])
        assert a.trials[k].dtype == b.trials[k].dtype
    assert a.provenance == b.provenance


def test_replace_rejects_unknown(data):
    with pytest.raises(TypeError, match="unexpected argument"):
        data.replace(colour="red")


def test_astensor(data):
    torch = pytest.importorskip("torch")
    y, u = data.astensor()
    assert y.dtype == torch.float32 and tuple(y.shape) == (6, 50, 4)
    assert tuple(u.shape) == (6, 50, 2)
    np.testing.assert_array_equal(y.numpy(), data.values)
    y[0, 0, 0] = 99.0  # a copy: the data are untouched
    assert data.values[0, 0, 0] != 99.0
    y64, none = BinnedData(np.zeros((1, 3, 2)), 0.1, "counts").astensor(dtype=torch.float64)
    assert y64.dtype == torch.float64 and none is None
