"""Tests of the MNE bridge (nwb_lrnn.io.mne) and the paper's EEG preprocessing (nwb_lrnn.io.eeg).

Uses the real PhysioNet recording ``tests/data/S001R01.edf`` and the paper's preprocessed
``tests/data/EEG_data_smoothed.npy`` (see tests/data/README.md for attribution).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nwb_lrnn.data import BinnedData
from nwb_lrnn.io.eeg import preprocess_eeg_paper
from nwb_lrnn.io.mne import from_mne, to_mne

mne = pytest.importorskip("mne")

DATA = Path(__file__).parent / "data"
EDF = DATA / "S001R01.edf"
SMOOTHED = DATA / "EEG_data_smoothed.npy"
SFREQ = 160.0
N_TIMES = 9760
N_CH = 64

# Measured: per-channel correlation with EEG_data_smoothed.npy is 1 - 2e-15 on every channel
# (max absolute difference 1.0e-5, float32 precision). Floors leave a margin.
CORR_FLOOR = 0.9999
MAXABS_FLOOR = 1e-3
# 'standard_1005' is deprecated in MNE 1.13 in favour of 'colin27_1005' (same positions)
MONTAGE = ("colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages()
           else "standard_1005")


def _set_channel(raw, name, value):
    raw.apply_function(lambda x: np.full_like(x, value), picks=[name], verbose="error")
    return raw


# ----------------------------------------------------------------------------- from_mne, Raw
def test_from_mne_raw_shape_names_zscore(raw):
    before = raw.get_data()
    data = from_mne(raw, verbose="error")
    assert isinstance(data, BinnedData)
    assert data.shape == (1, N_TIMES, N_CH)
    assert data.kind == "continuous"
    assert data.bin_size == pytest.approx(1 / SFREQ)
    assert data.channel_names == raw.ch_names
    assert data.channel_names[0] == "Fc5."
    assert data.channel_locations is None  # no montage in the EDF
    assert data.nan_policy == "raise" and data.nan_mask is None
    v = data.values[0].astype(np.float64)
    np.testing.assert_allclose(v.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(v.std(axis=0), 1.0, atol=1e-5)
    prov = data.provenance
    assert prov["source"] == "mne"
    assert prov["filename"].endswith("S001R01.edf")
    assert prov["sfreq"] == SFREQ
    assert prov["picks"] == "data"  # picks=None: the data channels, as in MNE
    assert prov["meas_date"].startswith("2009-08-12")
    assert len(prov["zscore"]["mean"]) == N_CH and len(prov["zscore"]["std"]) == N_CH
    np.testing.assert_allclose(prov["zscore"]["std"], before.std(axis=1), rtol=1e-10)
    np.testing.assert_array_equal(raw.get_data(), before)  # input untouched


def test_from_mne_no_zscore_keeps_volts(raw):
    data = from_mne(raw, zscore=False, verbose="error")
    assert data.provenance["zscore"] is None
    np.testing.assert_allclose(data.values[0], raw.get_data().T.astype(np.float32))


def test_from_mne_picks_list(raw):
    data = from_mne(raw, picks=["Cz..", "C3.."], verbose="error")
    assert data.channel_names == ["Cz..", "C3.."]


def test_from_mne_not_mne():
    with pytest.raises(TypeError, match="BaseRaw or mne.BaseEpochs"):
        from_mne(np.zeros((10, 3)))


def test_from_mne_picks_nothing(raw):
    with pytest.raises(ValueError, match=r"no channel left after picks='meg'"):
        from_mne(raw, picks="meg", verbose="error")
    raw.info["bads"] = ["Cz.."]
    with pytest.raises(ValueError, match=r"bads excluded: \['Cz..'\]"):
        from_mne(raw, picks=["Cz.."], verbose="error")


def test_from_mne_flat_channel(raw):
    _set_channel(raw, "Fc3.", 1e-6)
    with pytest.raises(ValueError, match=r"'Fc3\.'.*flat"):
        from_mne(raw, verbose="error")
    raw.info["bads"] = ["Fc3."]  # excluding it fixes it
    assert from_mne(raw, verbose="error").n_channels == N_CH - 1


def test_from_mne_nan_channel(raw):
    _set_channel(raw, "Oz..", np.nan)
    with pytest.raises(ValueError, match=r"'Oz\.\.'.*all NaN"):
        from_mne(raw, verbose="error")


def test_from_mne_unannotated_nan(raw):
    raw._data[5, 100:110] = np.nan
    with pytest.raises(ValueError, match=r"10 NaN value\(s\) not covered by a BAD_ annotation"):
        from_mne(raw, verbose="error")


def test_from_mne_bads_excluded(raw):
    raw.info["bads"] = ["Fc5.", "Oz.."]
    data = from_mne(raw, verbose="error")
    assert data.n_channels == N_CH - 2
    assert "Fc5." not in data.channel_names and "Oz.." not in data.channel_names
    assert data.provenance["bads_excluded"] == ["Fc5.", "Oz.."]
    assert from_mne(raw, exclude_bads=False, verbose="error").n_channels == N_CH


def test_from_mne_bad_annotation_gives_nan(raw):
    raw.annotations.append(10.0, 1.0, "BAD_blink")
    data = from_mne(raw, verbose="error")
    assert data.nan_policy == "allow"
    nan_t = np.flatnonzero(np.isnan(data.values[0]).any(axis=1))
    assert nan_t[0] == 1600 and nan_t[-1] == 1759 and nan_t.size == 160
    assert np.isnan(data.values[0, nan_t]).all()  # every channel
    assert data.provenance["n_bad_samples"] == 160
    v = data.values[0].astype(np.float64)
    np.testing.assert_allclose(np.nanstd(v, axis=0), 1.0, atol=1e-5)
    # without rejection: finite values, default nan_policy
    kept = from_mne(raw, reject_by_annotation=False, verbose="error")
    assert kept.nan_mask is None and kept.nan_policy == "raise"
    # NaN inside the annotation is covered, so accepted; not without rejection
    raw._data[3, 1650:1660] = np.nan
    assert from_mne(raw, verbose="error").nan_policy == "allow"
    with pytest.raises(ValueError, match="'Fcz.' contain 10 NaN"):
        from_mne(raw, reject_by_annotation=False, verbose="error")


# ----------------------------------------------------------------------------- Epochs
def test_from_mne_epochs(raw):
    epochs = mne.make_fixed_length_epochs(raw, duration=2.0, preload=True, verbose="error")
    data = from_mne(epochs, verbose="error")
    n_ep = len(epochs)
    assert data.shape == (n_ep, 320, N_CH)
    np.testing.assert_allclose(data.start_times, epochs.events[:, 0] / SFREQ + epochs.tmin)
    np.testing.assert_array_equal(data.trials["event_code"], epochs.events[:, 2])
    v = data.values.astype(np.float64)
    np.testing.assert_allclose(v.mean(axis=(0, 1)), 0.0, atol=1e-5)
    np.testing.assert_allclose(v.std(axis=(0, 1)), 1.0, atol=1e-5)
    back = to_mne(data, epochs.info, verbose="error")
    assert isinstance(back, mne.EpochsArray)
    x = epochs.get_data()
    np.testing.assert_allclose(back.get_data(), x, rtol=0, atol=1e-6 * np.abs(x).max())


# ----------------------------------------------------------------------------- to_mne
def test_to_mne_round_trip_volts(raw):
    data = from_mne(raw, verbose="error")
    back = to_mne(data, raw.info, verbose="error")
    assert isinstance(back, mne.io.RawArray)
    assert back.ch_names == raw.ch_names
    assert back.info["sfreq"] == SFREQ
    x = raw.get_data()
    np.testing.assert_allclose(back.get_data(), x, rtol=0, atol=1e-6 * np.abs(x).max())
    assert back.info is not raw.info
    # scale=False keeps the z-scores; plain (time, ch) arrays work too
    z = to_mne(data, raw.info, scale=False, verbose="error").get_data()
    np.testing.assert_allclose(z, data.values[0].T, rtol=1e-6)
    arr = to_mne(data.values[0], raw.info, verbose="error")
    assert isinstance(arr, mne.io.RawArray) and arr.get_data().shape == (N_CH, N_TIMES)
    with pytest.raises(ValueError, match="scale=True"):
        to_mne(data.values[0], raw.info, scale=True)


def test_to_mne_keeps_montage(raw):
    raw.rename_channels(lambda n: n.strip("."))
    montage = mne.channels.make_standard_montage(MONTAGE)
    names = {n.lower(): n for n in montage.ch_names}
    raw.rename_channels({n: names[n.lower()] for n in raw.ch_names if n.lower() in names})
    assert all(n in montage.ch_names for n in raw.ch_names)
    raw.set_montage(montage, verbose="error")
    data = from_mne(raw, verbose="error")
    pos = np.array([raw.info["chs"][i]["loc"][:3] for i in range(N_CH)])
    np.testing.assert_allclose(data.channel_locations, pos)
    assert np.isfinite(data.channel_locations).all()
    back = to_mne(data, raw.info, verbose="error")
    got = back.get_montage().get_positions()["ch_pos"]
    want = raw.get_montage().get_positions()["ch_pos"]
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name])


def test_to_mne_sfreq_mismatch(raw):
    data = from_mne(raw, verbose="error")
    info = mne.create_info(raw.ch_names, 100.0, "eeg")
    with pytest.raises(ValueError, match="generated at 160 Hz but info says 100 Hz"):
        to_mne(data, info)


def test_to_mne_channel_count_mismatch(raw):
    data = from_mne(raw, verbose="error")
    info = mne.create_info(raw.ch_names[:10], SFREQ, "eeg")
    with pytest.raises(ValueError, match="data has 64 channels but info has 10"):
        to_mne(data, info)
    with pytest.raises(TypeError, match="mne.Info"):
        to_mne(data, {"sfreq": SFREQ})


# ----------------------------------------------------------------------------- paper recipe
def test_preprocess_eeg_paper_matches_reference(raw):
    ref = np.load(SMOOTHED)
    assert ref.shape == (9640, N_CH)
    data = preprocess_eeg_paper(raw, verbose="error")
    assert data.shape == (1, 9640, N_CH)
    assert data.bin_size == pytest.approx(1 / SFREQ)
    got = data.values[0].astype(np.float64)
    corr = np.array([np.corrcoef(got[:, k], ref[:, k])[0, 1] for k in range(N_CH)])
    maxabs = float(np.abs(got - ref).max())
    print(f"\npreprocess_eeg_paper vs EEG_data_smoothed.npy: per-channel correlation "
          f"min {corr.min():.10f} median {np.median(corr):.10f} max {corr.max():.10f}; "
          f"max |diff| {maxabs:.3g}")
    assert corr.min() >= CORR_FLOOR
    assert maxabs <= MAXABS_FLOOR
    # from a path, same result; the Raw is not modified
    np.testing.assert_array_equal(preprocess_eeg_paper(EDF, verbose="error").values,
                                  data.values)
    back = to_mne(data, raw.info, verbose="error")  # smoothed signal back in volts
    assert back.get_data().shape == (N_CH, 9640)


def test_preprocess_eeg_paper_errors(tmp_path):
    with pytest.raises(TypeError, match="BaseRaw or a path"):
        preprocess_eeg_paper(3)
    with pytest.raises(FileNotFoundError, match="nope.edf"):
        preprocess_eeg_paper(tmp_path / "nope.edf")


def test_the_recordings_subject_goes_into_the_fit_file(raw, tmp_path, caplog):
    import datetime

    from pynwb import NWBHDF5IO

    from nwb_lrnn import LowRankRNN, write_nwb

    raw.pick(raw.ch_names[:4]).crop(0, 5)
    # EDF+ "X" means not known: S001R01 names no subject
    assert from_mne(raw).provenance["subject_info"] is None
    raw.info["subject_info"] = {"his_id": "S7", "sex": 2,
                                "birthday": datetime.date(1990, 1, 2)}
    data = from_mne(raw)
    assert data.provenance["subject_info"] == {"subject_id": "S7", "sex": "F",
                                               "birthday": "1990-01-02"}
    est = LowRankRNN(rank=1, n_units=4, n_particles=2, max_epochs=1, window=20,
                     steps_per_epoch=1, stability_check=0, random_state=0, verbose=False)
    est.fit(data)
    with caplog.at_level("WARNING", logger="nwb_lrnn"):
        write_nwb(est, tmp_path / "a.nwb", data=data, include=("model",))
    assert "has no species" in caplog.text
    write_nwb(est, tmp_path / "b.nwb", data=data, include=("model",),
              subject={"species": "Homo sapiens"})  # the given fields over the recording's
    start = raw.info["meas_date"]
    days = (start - datetime.datetime(1990, 1, 2, tzinfo=datetime.timezone.utc)).days
    for name, species in (("a.nwb", None), ("b.nwb", "Homo sapiens")):
        with NWBHDF5IO(tmp_path / name, "r") as io:
            s = io.read().subject
            assert (s.subject_id, s.sex, s.species) == ("S7", "F", species)
            assert s.age == f"P{days}D"
