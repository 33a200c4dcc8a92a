"""Hostile inputs: damaged NWB and EDF files, random arrays and options (hypothesis).

Every case ends in a result or in an nwb_lrnn error with a message — never a raw h5py/MNE
exception, a hang or a crash. A SIGALRM guard turns a hang into a failure.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from nwb_lrnn import BinnedData  # noqa: E402
from nwb_lrnn.io.binning import bin_spike_times  # noqa: E402
from nwb_lrnn.io.mne import EEGReadError, read_eeg  # noqa: E402
from nwb_lrnn.io.nwb import NWBReadError, read_nwb  # noqa: E402

from .nwb_factory import write_nwbfile  # noqa: E402

DATA = Path(__file__).parent / "data"
NWB_BYTES = (DATA / "A8604-211122.nwb").read_bytes()
EDF_BYTES = (DATA / "S001R01.edf").read_bytes()
FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@contextmanager
def no_hang(seconds: int = 30):
    def boom(*_):
        raise TimeoutError(f"hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _damage(data: bytes, cut: float | None, flips: list[tuple[float, int]]) -> bytes:
    b = bytearray(data)
    if cut is not None:
        b = b[:int(len(b) * cut)]
    for pos, bit in flips:
        if b:
            b[int(pos * (len(b) - 1))] ^= 1 << bit
    return bytes(b)


damage = st.tuples(st.one_of(st.none(), st.floats(0.0, 0.999)),
                   st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 7)), max_size=12))


@FUZZ
@given(damage)
def test_damaged_nwb_gives_nwb_error(tmp_path_factory, how):
    path = tmp_path_factory.mktemp("fuzz") / "damaged.nwb"
    path.write_bytes(_damage(NWB_BYTES, *how))
    with no_hang():
        try:
            data = read_nwb(path, bin_size=0.5, time_range=(0.0, 100.0))
        except NWBReadError as err:
            assert str(path) in str(err)
        else:
            assert data.values.shape == (1, 200, 3) and np.isfinite(data.values).all()


@FUZZ
@given(damage)
def test_damaged_edf_gives_eeg_error(tmp_path_factory, how):
    path = tmp_path_factory.mktemp("fuzz") / "damaged.edf"
    path.write_bytes(_damage(EDF_BYTES, *how))
    with no_hang():
        try:
            raw = read_eeg(path, verbose="error")
        except EEGReadError as err:
            assert str(path) in str(err)
        else:
            assert raw.n_times > 0


def test_not_an_eeg_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(EEGReadError, match="not an EEG format"):
        read_eeg(p)
    with pytest.raises(FileNotFoundError, match="EEG file not found"):
        read_eeg(tmp_path / "missing.edf")
    empty = tmp_path / "empty.edf"
    empty.write_bytes(b"")
    with pytest.raises(EEGReadError, match="empty.edf"):
        read_eeg(empty)


arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.int16, np.bool_]),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=6),
    elements=None)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(values=arrays, kind=st.sampled_from([None, "counts", "continuous"]),
       bin_size=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-3, 3)))
def test_binned_data_accepts_or_explains(values, kind, bin_size):
    try:
        d = BinnedData.from_array(values, bin_size=bin_size, kind=kind)
    except (ValueError, TypeError) as err:
        assert len(str(err)) > 20  # a sentence, not a bare library message
    else:
        assert d.values.ndim == 3 and d.bin_size > 0 and np.isfinite(d.bin_size)
        if d.kind == "counts":
            assert (d.values >= 0).all()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(spikes=st.lists(hnp.arrays(np.float64, st.integers(0, 50),
                                  elements=st.floats(-10, 110, allow_nan=False)),
                       min_size=1, max_size=5),
       bin_size=st.floats(0.01, 20.0), start=st.floats(-5.0, 50.0), n_bins=st.integers(0, 40))
def test_binning_counts_every_spike_inside_the_window(spikes, bin_size, start, n_bins):
    out = bin_spike_times(spikes, bin_size=bin_size, starts=start, n_bins=n_bins)
    assert out.shape == (1, n_bins, len(spikes))
    stop = start + n_bins * bin_size
    for u, t in enumerate(spikes):
        inside = int(((t >= start) & (t < stop)).sum())
        # edges are computed as start + k·bin_size; allow a spike exactly on the far edge
        assert abs(int(out[0, :, u].sum()) - inside) <= int(np.isclose(t, stop).sum())


def test_huge_request_is_refused_with_the_estimate(tmp_path):
    path = write_nwbfile(tmp_path / "f.nwb", n_units=4, duration=20.0)
    with pytest.raises(MemoryError, match=r"would need [\d.]+ GiB"):
        read_nwb(path, bin_size=1e-10, time_range=(0.0, 10.0))
