"""read_nwb on real and pynwb-made NWB files, and its errors."""

import io
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_lrnn.io import NWBReadError, read_nwb
from nwb_lrnn.io.binning import bin_spike_times

from .nwb_factory import make_nwbfile, spikes_in, write_nwbfile

PYNAPPLE = Path(__file__).parent / "data" / "A8604-211122.nwb"


def test_pynapple_counts_equal_spikes_in_window():
    data = read_nwb(PYNAPPLE, bin_size=0.05, time_range=(100.0, 400.0))
    assert data.kind == "counts" and data.shape == (1, 6000, 3)
    assert list(data.channel_ids) == [6, 191, 206]
    for row in range(3):
        assert data.values[0, :, row].sum() == spikes_in(PYNAPPLE, row, 100.0, 400.0)
    assert data.provenance["identifier"] == "A8604-211122"
    assert data.provenance["time_range"] == [100.0, 400.0]


def test_pynapple_default_range_keeps_every_spike():
    data = read_nwb(PYNAPPLE, bin_size=0.1)
    np.testing.assert_array_equal(data.values.sum((0, 1)), [11020, 4690, 5644])


def test_pynapple_epochs_alignment_and_unit_selection():
    data = read_nwb(PYNAPPLE, bin_size=1.0, units=[206, 6], intervals="epochs",
                    align_to="start_time", window=(0.0, 100.0))
    assert data.shape == (1, 100, 2) and list(data.channel_ids) == [206, 6]
    with h5py.File(PYNAPPLE) as f:
        start = f["intervals/epochs/start_time"][0]
    assert data.values[0, :, 1].sum() == spikes_in(PYNAPPLE, 0, start, start + 100.0)


@pytest.fixture(scope="module")
def made_file(tmp_path_factory):
    return write_nwbfile(tmp_path_factory.mktemp("nwb") / "made.nwb", n_units=4)


def test_trial_alignment_filter_and_table_columns(made_file):
    data = read_nwb(made_file, bin_size=0.1, align_to="cue_time", window=(0.5, 1.0),
                    trial_filter={"condition": "left"})
    # trials 1, 3, 5, 7 are 'left'; unit 1 is not observed in [10, 15): trials whose window
    # [cue - 0.5, cue + 1) touches that gap are dropped
    cues = 1.0 + 2.2 * np.array([1, 3, 5, 7]) + 0.5
    observed = (cues - 0.5 >= 15.0) | (cues + 1.0 <= 10.0)
    assert data.n_trials == observed.sum() and data.n_time == 15
    assert list(data.trials["condition"]) == ["left"] * int(observed.sum())
    for k, cue in enumerate(cues[observed]):
        assert data.values[k, :, 0].sum() == spikes_in(made_file, 0, cue - 0.5, cue + 1.0)
    np.testing.assert_allclose(data.start_times, cues[observed] - 0.5)


def test_unit_filter_locations_and_obs_intervals(made_file):
    data = read_nwb(made_file, bin_size=0.5, unit_filter={"quality": "good"},
                    time_range=(0.0, 8.0))
    assert list(data.channel_ids) == [0, 2]
    np.testing.assert_allclose(data.channel_locations, [[0, 0, -1], [2, 4, -1]])
    # default range: where every unit is observed (unit 1 misses [10, 15))
    with pytest.raises(NWBReadError, match="unit 1 is not observed during the whole time"):
        read_nwb(made_file, bin_size=0.5, time_range=(5.0, 12.0))
    data = read_nwb(made_file, bin_size=0.5, units=[0, 2, 3])
    assert data.provenance["time_range"] == [0.0, 20.0]


def test_same_counts_from_path_h5py_fileobj_and_nwbfile(made_file):
    from pynwb import NWBHDF5IO

    kw = dict(bin_size=0.25, time_range=(0.0, 9.0))
    ref = read_nwb(made_file, **kw).values
    with h5py.File(made_file, "r") as f:
        np.testing.assert_array_equal(read_nwb(f, **kw).values, ref)
    with open(made_file, "rb") as fh:
        np.testing.assert_array_equal(read_nwb(fh, **kw).values, ref)
    with NWBHDF5IO(str(made_file), "r") as nio:
        np.testing.assert_array_equal(read_nwb(nio.read(), **kw).values, ref)
    mem = make_nwbfile(n_units=4)  # in memory, never written
    assert read_nwb(mem, **kw).shape == ref.shape


class CountingFile(io.RawIOBase):
    """A file object that counts the bytes read through it."""

    def __init__(self, path):
        self._f = open(path, "rb")
        self.bytes_read = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        return self._f.seek(offset, whence)

    def tell(self):
        return self._f.tell()

    def readinto(self, b):
        n = self._f.readinto(b)
        self.bytes_read += n or 0
        return n

    def close(self):
        self._f.close()
        super().close()


def test_reads_only_the_units_not_the_acquisition(tmp_path):
    path = write_nwbfile(tmp_path / "big.nwb", n_units=3, acquisition_mb=40)
    size = path.stat().st_size
    fh = CountingFile(path)
    data = read_nwb(fh, bin_size=0.1, time_range=(0.0, 10.0))
    assert data.n_channels == 3
    assert fh.bytes_read < 0.02 * size, (fh.bytes_read, size)


# ----------------------------------------------------------------------------- bad input
def test_missing_file():
    with pytest.raises(FileNotFoundError, match="NWB file not found: .*nope.nwb"):
        read_nwb("nope.nwb", bin_size=0.1)


def test_not_hdf5(tmp_path):
    p = tmp_path / "notes.nwb"
    p.write_text("hello")
    with pytest.raises(NWBReadError, match="notes.nwb is not an HDF5/NWB file"):
        read_nwb(p, bin_size=0.1)


def test_truncated_hdf5(tmp_path):
    p = tmp_path / "cut.nwb"
    raw = PYNAPPLE.read_bytes()
    p.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(NWBReadError, match="cut.nwb cannot be opened as HDF5 .truncated"):
        read_nwb(p, bin_size=0.1)


def test_no_units_table(tmp_path):
    p = write_nwbfile(tmp_path / "nounits.nwb", with_units=False)
    with pytest.raises(NWBReadError, match=r"has no Units table \(/units\)"):
        read_nwb(p, bin_size=0.1)


def test_units_without_spikes(tmp_path):
    p = write_nwbfile(tmp_path / "empty.nwb", n_units=3, empty_unit=True,
                      with_obs_intervals=False)
    with pytest.raises(NWBReadError, match=r"unit\(s\) \[2\] have no spikes"):
        read_nwb(p, bin_size=0.1)
    data = read_nwb(p, bin_size=0.1, allow_empty_units=True, time_range=(0, 5))
    assert data.values[..., 2].sum() == 0


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(bin_size=0.0), ValueError, "bin_size must be > 0"),
    (dict(bin_size=-1.0), ValueError, "bin_size must be > 0"),
    (dict(bin_size=20.0, time_range=(0, 5)), ValueError,
     r"bin_size \(20.0 s\) is longer than the time range"),
    (dict(bin_size=3.0, align_to="cue_time", window=(0.5, 1.0)), ValueError,
     r"longer than the trial window \(1.5 s\)"),
    (dict(bin_size=0.1, align_to="reward_time", window=(0, 1)), NWBReadError,
     r"trials table has no column 'reward_time'; its columns are: condition, cue_time"),
    (dict(bin_size=0.1, units=[0, 99]), NWBReadError, r"unit id\(s\) \[99\] not in the Units"),
    (dict(bin_size=0.1, unit_filter={"sorter": "ks"}), NWBReadError,
     "Units table has no column 'sorter'"),
    (dict(bin_size=0.1, unit_filter={"quality": "perfect"}), NWBReadError,
     "no unit left after"),
    (dict(bin_size=0.1, align_to=[1.0, 2.0]), ValueError, r"window=\(before, after\) is "),
    (dict(bin_size=0.1, time_range=(5, 1)), ValueError, "start < stop"),
    (dict(bin_size=0.1, intervals="sleep"), ValueError, r"'intervals'.*got 'sleep'"),
])
def test_bad_arguments(made_file, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        read_nwb(made_file, **kwargs)


def test_no_trials_table():
    with pytest.raises(NWBReadError, match=r"has no trials table \(/intervals/trials\)"):
        read_nwb(PYNAPPLE, bin_size=0.1, align_to="start_time", window=(0, 1))


def test_source_type_and_scheme_errors():
    with pytest.raises(TypeError, match="source must be a path, an http"):
        read_nwb(42, bin_size=0.1)
    with pytest.raises(NWBReadError, match="only local paths and http"):
        read_nwb("s3://bucket/file.nwb", bin_size=0.1)


def test_source_file_is_not_modified(made_file, tmp_path):
    copy = tmp_path / "copy.nwb"
    shutil.copy(made_file, copy)
    before = copy.read_bytes()
    read_nwb(copy, bin_size=0.1)
    assert copy.read_bytes() == before


def test_binning_edges_and_memory_refusal():
    t = np.array([0.0, 0.1, 0.1999, 0.2, 0.35])
    out = bin_spike_times([t], bin_size=0.1, starts=0.0, n_bins=4)[0, :, 0]
    np.testing.assert_array_equal(out, [1, 2, 1, 1])
    multi = bin_spike_times([t], bin_size=0.1, starts=np.array([0.0, 0.1]), n_bins=2)
    np.testing.assert_array_equal(multi[:, :, 0], [[1, 2], [2, 1]])
    with pytest.raises(MemoryError, match=r"would need .* GiB .*use a larger bin_size"):
        bin_spike_times([t] * 1000, bin_size=1e-4, starts=0.0, n_bins=10**9)


def test_one_reader_for_every_source(tmp_path):
    """nwb_lrnn.io.read dispatches by source (one suffix table), and fit("file") uses it."""
    from pathlib import Path

    from nwb_lrnn import LowRankRNN
    from nwb_lrnn.io import read, source_kind

    assert source_kind("DANDI:000128/0.220113.0408") == "dandi"
    assert source_kind("x.EDF") == "eeg" and source_kind("x.fif.gz") == "eeg"
    assert source_kind("https://host/sub-1.nwb") == "nwb"
    nwb = Path(__file__).parent / "data" / "A8604-211122.nwb"
    with pytest.raises(ValueError, match="needs a bin size"):
        read(nwb)
    data = read(nwb, bin_size=0.1, time_range=(0.0, 30.0))
    np.testing.assert_array_equal(
        data.values, read_nwb(nwb, bin_size=0.1, time_range=(0.0, 30.0)).values)
    edf = Path(__file__).parents[1] / "nwb_lrnn" / "sample_data" / "S001R01.edf"
    eeg = read(edf)
    assert eeg.n_channels == 64 and eeg.bin_size == pytest.approx(1 / 160)
    est = LowRankRNN(rank=1, n_units=4, max_epochs=1, n_particles=2, window=20,
                     steps_per_epoch=1, verbose=False, stability_check=0).fit(str(edf))
    assert est.n_features_in_ == 64
