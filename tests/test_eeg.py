"""EEG the MNE way: fit/transform/sample_raw on MNE objects, BAD_ segments, plots.

Uses the real PhysioNet recording ``tests/data/S001R01.edf`` (64 EEG channels, 160 Hz).
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

mne = pytest.importorskip("mne")
matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from nwb_lrnn import LowRankRNN  # noqa: E402
from nwb_lrnn.data import BinnedData  # noqa: E402
from nwb_lrnn.io.eeg import preprocess_eeg_paper  # noqa: E402
from nwb_lrnn.metrics import dstsp, hann_smooth, hellinger_spectrum  # noqa: E402
from nwb_lrnn.viz import plot_latents, plot_psd  # noqa: E402

EDF = pathlib.Path(__file__).parent / "data" / "S001R01.edf"
PICKS = ["Fc5.", "Fc3.", "Cz..", "Pz.."]


def _tiny(**kw) -> LowRankRNN:
    opts = dict(rank=2, n_units=16, max_epochs=2, window=50, batch_size=4, steps_per_epoch=3,
                n_particles=4, device="cpu", random_state=0, verbose=False)
    opts.update(kw)
    return LowRankRNN(**opts)


@pytest.fixture
def short(raw_orig):
    """The first 5 s (filtering the whole recording is slow for a test)."""
    return raw_orig.copy().crop(tmax=5.0)


@pytest.fixture(scope="module")
def fitted(raw_orig):
    return _tiny().fit(raw_orig.copy(), picks=PICKS)


def test_edf_to_metrics_end_to_end():
    data = preprocess_eeg_paper(EDF, verbose="error")
    small = data.replace(values=data.values[:, :2000, :8],
                         channel_names=data.channel_names[:8], channel_ids=np.arange(8),
                         provenance={**data.provenance,
                                     "zscore": {k: v[:8] for k, v in
                                                data.provenance["zscore"].items()}})
    est = _tiny().fit(small)
    gen = est.sample_raw(600, burn_in=100, random_state=0)
    assert gen.ch_names == small.channel_names
    x = gen.get_data().T
    x = (x - x.mean(0)) / x.std(0)
    x = hann_smooth(x, 15)
    ds = dstsp(small.values[0], x, n_samples=100, random_state=0)
    dh = hellinger_spectrum(small.values[0], x)
    assert np.isfinite(ds) and np.isfinite(dh) and 0 <= dh <= 1


def test_fit_raw_with_picks(fitted, raw_orig):
    assert fitted.channel_names_ == PICKS
    assert fitted.info_.ch_names == PICKS
    assert fitted.sfreq_ == 160.0
    assert fitted.info_["sfreq"] == 160.0
    assert fitted.info_ is not raw_orig.info
    assert len(fitted.zscore_["mean"]) == len(PICKS)
    assert fitted.window_starts_ is None


def test_fit_returns_self_and_info_not_shared(raw):
    est = _tiny()
    assert est.fit(raw, picks=PICKS[:2]) is est
    est.info_["bads"].append(PICKS[0])
    assert raw.info["bads"] == []


def test_transform_array_and_raw(fitted, short):
    raw = short
    lat = fitted.transform(raw)
    assert lat.shape == (1, raw.n_times, 2)
    lraw = fitted.transform(raw, return_raw=True)
    assert isinstance(lraw, mne.io.BaseRaw)
    assert lraw.ch_names == ["latent_0", "latent_1"]
    assert set(lraw.get_channel_types()) == {"misc"}
    assert lraw.info["sfreq"] == raw.info["sfreq"]
    assert lraw.info["meas_date"] == raw.info["meas_date"]
    assert lraw.n_times == raw.n_times
    np.testing.assert_allclose(lraw.get_data().T, lat[0], rtol=1e-6, atol=1e-6)
    m, s = fitted.transform(raw, return_raw=True, return_std=True)
    assert m.ch_names == s.ch_names and (s.get_data() >= 0).all()


def test_transform_uses_fit_zscore_and_channels(fitted, short):
    raw = short
    # the fit's channels are picked by default, and its z-scoring is applied
    expected = fitted.transform(raw, picks=PICKS)
    np.testing.assert_allclose(fitted.transform(raw), expected)
    assert np.isfinite(fitted.score(raw))


def test_sample_raw_info_matches_fit(fitted):
    gen = fitted.sample_raw(300, random_state=1)
    assert isinstance(gen, mne.io.BaseRaw)
    assert gen.ch_names == fitted.info_.ch_names
    assert gen.info["sfreq"] == fitted.info_["sfreq"]
    assert gen.info["meas_date"] == fitted.info_["meas_date"]
    assert gen.get_data().shape == (len(PICKS), 300)
    again = fitted.sample_raw(300, random_state=1, sfreq=160.0)
    np.testing.assert_array_equal(gen.get_data(), again.get_data())
    # back in volts: undoes the fit's z-scoring
    z = fitted.sample(1, 300, random_state=1).values[0]
    std = np.asarray(fitted.zscore_["std"])
    mean = np.asarray(fitted.zscore_["mean"])
    np.testing.assert_allclose(gen.get_data().T, z * std + mean, rtol=1e-5)


def test_sample_raw_sfreq_mismatch(fitted):
    with pytest.raises(ValueError, match=r"sfreq=100 Hz.*fitted at \(160 Hz\)"):
        fitted.sample_raw(10, sfreq=100.0)
    info = mne.create_info(PICKS, 250.0, "eeg")
    with pytest.raises(ValueError, match="250.*160"):
        fitted.sample_raw(10, info=info)


def test_sample_raw_without_mne_fit():
    est = _tiny(window=None).fit(np.random.default_rng(0).normal(size=(4, 60, 3)))
    assert est.info_ is None
    gen = est.sample_raw(20, random_state=0)
    assert gen.ch_names == est.channel_names_
    assert gen.info["sfreq"] == 1.0


def test_picks_select_nothing_through_fit(raw):
    with pytest.raises(ValueError, match="no channel left after picks"):
        _tiny().fit(raw, picks="mag")


def test_picks_with_non_mne_input():
    with pytest.raises(ValueError, match="picks"):
        _tiny(window=None).fit(np.zeros((2, 60, 3)) + np.arange(3), picks="eeg")


def test_bad_annotation_windows_skipped(raw):
    raw.pick(PICKS)
    sfreq = raw.info["sfreq"]
    # everything but [10 s, 15 s) is annotated bad
    raw.set_annotations(mne.Annotations([0.0, 15.0], [10.0, raw.times[-1] - 15.0],
                                        ["BAD_start", "BAD_end"],
                                        orig_time=raw.annotations.orig_time))
    est = _tiny().fit(raw)
    starts = est.window_starts_
    assert starts is not None and len(starts) > 0
    lo, hi = int(10 * sfreq), int(15 * sfreq)
    assert starts[:, 1].min() >= lo and starts[:, 1].max() + 50 <= hi
    assert np.isfinite(est.history_.train_bound).all()


def test_bad_annotations_leave_no_clean_window(raw):
    raw.pick(PICKS)
    onsets = np.arange(0.0, raw.times[-1], 0.25)  # 0.1 s bad every 0.25 s: runs of 24 bins
    raw.set_annotations(mne.Annotations(onsets, 0.1, "BAD_blink",
                                        orig_time=raw.annotations.orig_time))
    with pytest.raises(ValueError, match="no window of 50 bins is free of NaN"):
        _tiny().fit(raw)


def test_nan_without_window_raises():
    v = np.random.default_rng(0).normal(size=(1, 100, 2))
    v[0, 10:20] = np.nan
    data = BinnedData(v, 0.01, "continuous", nan_policy="allow")
    with pytest.raises(ValueError, match="set window"):
        _tiny(window=None).fit(data)


def test_plot_helpers_return_figures(fitted, short):
    raw = short
    from matplotlib.figure import Figure

    gen = fitted.sample_raw(500, random_state=0)
    fig = plot_psd(raw.copy().pick(PICKS), gen, picks=PICKS[:2])
    assert isinstance(fig, Figure)
    rng = np.random.default_rng(0)
    assert isinstance(plot_psd(rng.normal(size=(400, 3)), rng.normal(size=(2, 300, 3)),
                               sfreq=160.0), Figure)
    mean, std = fitted.transform(raw, return_std=True)
    assert isinstance(plot_latents(mean, std, bin_size=1 / 160.0), Figure)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_binned_windows_skip_nan(raw):
    from nwb_lrnn.io import from_mne

    raw.pick(PICKS)
    raw.set_annotations(mne.Annotations([2.0], [50.0], ["BAD_move"],
                                        orig_time=raw.annotations.orig_time))
    data = from_mne(raw)
    assert data.nan_mask is not None
    regular = data.windows(80, skip_nan=True)
    assert np.isfinite(regular.values).all() and regular.n_trials > 0
    drawn = data.windows(80, n_windows=30, skip_nan=True, random_state=0)
    assert np.isfinite(drawn.values).all() and drawn.n_trials == 30
    with pytest.raises(ValueError, match="no window of 5000 bins is free of NaN"):
        data.windows(5000, skip_nan=True)


def test_reloaded_eeg_fit_generates_volts(tmp_path):
    """write_nwb -> read_fit keeps the z-scoring, so sample_raw gives EEG channels in volts."""
    from nwb_lrnn import read_fit, write_nwb

    raw = mne.io.read_raw_edf(EDF, preload=True, verbose="error").crop(0, 20)
    est = _tiny().fit(raw, picks="eeg")
    path = write_nwb(est, tmp_path / "eeg_fit.nwb", include=("model",))
    back = read_fit(path)
    assert getattr(back, "zscore_", None) is not None
    a = est.sample_raw(200, random_state=3)
    b = back.sample_raw(200, random_state=3)
    assert set(b.get_channel_types()) == {"eeg"}
    assert np.allclose(a.get_data(), b.get_data(), rtol=1e-5, atol=1e-12)


def test_transform_epochs_gives_epochs_array(fitted, short):
    epochs = mne.make_fixed_length_epochs(short, duration=1.0, verbose="error").load_data()
    lat = fitted.transform(epochs)
    ep = fitted.transform(epochs, return_raw=True)
    assert isinstance(ep, mne.BaseEpochs) and len(ep) == len(epochs)
    assert ep.ch_names == ["latent_0", "latent_1"] and ep.info["sfreq"] == epochs.info["sfreq"]
    np.testing.assert_allclose(ep.get_data(), np.transpose(lat, (0, 2, 1)), rtol=1e-6,
                               atol=1e-6)


def test_epochs_in_give_epochs_out_with_events_tmin_event_id_and_metadata(fitted, short):
    """transform(epochs, return_raw=True) keeps what MNE users select and plot by."""
    import pandas as pd

    from nwb_lrnn.conditions import condition_inputs
    from nwb_lrnn.io import from_mne

    sf = short.info["sfreq"]
    onsets = np.arange(1, 9) * int(sf / 2)  # every 0.5 s in the 5-s recording
    events = np.column_stack([onsets, np.zeros(8, int), np.tile([1, 2], 4)])
    meta = pd.DataFrame({"rt": np.linspace(0.3, 1.0, 8), "hand": ["left", "right"] * 4})
    epochs = mne.Epochs(short, events, event_id={"left": 1, "right": 2}, tmin=-0.2,
                        tmax=0.4, baseline=None, metadata=meta, preload=True,
                        verbose="error")
    ep = fitted.transform(epochs, return_raw=True)
    assert ep.tmin == pytest.approx(epochs.tmin)
    assert ep.event_id == epochs.event_id
    np.testing.assert_array_equal(ep.events, epochs.events)
    pd.testing.assert_frame_equal(ep.metadata.reset_index(drop=True),
                                  epochs.metadata.reset_index(drop=True), check_dtype=False)
    assert len(ep["left"]) == 4 and len(ep["rt > 0.5"]) == len(epochs["rt > 0.5"])
    # event names become condition inputs by name
    data = from_mne(epochs, verbose="error")
    assert list(data.trials["event"][:2]) == ["left", "right"]
    cued = condition_inputs(data, "event", kind="onehot", onset=0, duration=5)
    assert cued.inputs.shape == (8, data.n_time, 2)


def test_picks_none_means_the_data_channels(short):
    """An MEG-only-like recording (here EEG plus a stimulus and a misc channel): picks=None
    takes the data channels, never stim or misc."""
    from nwb_lrnn.io import from_mne

    raw = short.copy().pick(short.ch_names[:3])
    info = mne.create_info(["STI", "MISC"], raw.info["sfreq"], ["stim", "misc"])
    extra = mne.io.RawArray(np.random.default_rng(0).normal(size=(2, raw.n_times)), info,
                            verbose="error")
    raw.add_channels([extra], force_update_info=True)
    assert from_mne(raw, verbose="error").channel_names == raw.ch_names[:3]
    assert from_mne(raw, picks="misc", verbose="error").channel_names == ["MISC"]
    assert from_mne(raw, picks="all", verbose="error").n_channels == 5
