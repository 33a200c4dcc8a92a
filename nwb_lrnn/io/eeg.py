"""The EEG preprocessing of the paper's benchmark data (Hess et al. 2023; Pals et al. 2024).

:func:`preprocess_eeg_paper` turns the raw PhysioNet EEG Motor Movement/Imagery recording
``S001R01.edf`` (64 channels, 160 Hz, 9760 samples) into the array ``EEG_data_smoothed.npy``
(9640 x 64, float32) used for evaluation in those papers. The steps were found by comparing the
two files (see the function's docstring); on that file the result matches the published array
to float32 precision.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data import BinnedData

if TYPE_CHECKING:  # pragma: no cover - typing only
    import mne

__all__ = ["PAPER_DROP_END", "PAPER_WINDOW", "preprocess_eeg_paper"]

logger = logging.getLogger(__name__)

PAPER_WINDOW: int = 15
"""Length of the Hann window (``np.hanning(15)``: 13 non-zero taps)."""

PAPER_DROP_END: int = 120
"""Number of samples left out at the end (9760 - 9640)."""


def _hann_smooth_causal(x: np.ndarray, window_len: int) -> np.ndarray:
    """SciPy-cookbook ``smooth`` along axis 0, keeping the first ``len(x)`` output samples.

    The signal is extended at both ends by reflection (``x[window_len-1:0:-1]`` before,
    ``x[-2:-window_len-1:-1]`` after), convolved in ``'valid'`` mode with the normalised Hann
    window, and the first ``n_times`` samples of the ``n_times + window_len - 1`` outputs are
    kept. Output sample ``t`` is thus the window-weighted mean of ``x[t - window_len + 1 : t + 1]``
    (reflected before the start): a causal filter with a delay of ``(window_len - 1) / 2``.

    x : ndarray, shape (n_times, n_channels) -> ndarray, shape (n_times, n_channels)
    """
    w = np.hanning(window_len)
    w = w / w.sum()
    padded = np.pad(x, ((window_len - 1, window_len - 1), (0, 0)), mode="reflect")
    out = np.empty_like(x)
    n = x.shape[0]
    for k in range(x.shape[1]):
        out[:, k] = np.convolve(w, padded[:, k], mode="valid")[:n]
    return out


def preprocess_eeg_paper(
    raw_or_path: mne.io.BaseRaw | str | os.PathLike,
    *,
    verbose: bool | str | int | None = None,
) -> BinnedData:
    """Preprocess raw EEG exactly as for the paper's ``EEG_data_smoothed.npy``.

    Steps (found empirically by comparing ``S001R01.edf`` with ``EEG_data_smoothed.npy``;
    per-channel correlation 1.0000000 on all 64 channels, max absolute difference 1e-5,
    i.e. float32 precision):

    1. Take all EEG channels in file order, bad channels included, in volts (the unit does
       not matter because of step 4): ``x`` of shape (n_times, 64).
    2. Smooth each channel with the SciPy-cookbook ``smooth(x, window_len=15,
       window='hanning')``: extend the signal by reflection (``np.pad(..., mode='reflect')``,
       14 samples at each end), convolve in ``'valid'`` mode with ``np.hanning(15) /
       np.hanning(15).sum()``, which gives ``n_times + 14`` samples, and keep the first
       ``n_times`` of them. The result at sample ``t`` is a Hann-weighted mean of
       ``x[t-14 : t+1]``: causal, delayed by 7 samples (43.75 ms at 160 Hz), with reflected
       samples before the start.
    3. Drop the last 120 samples (keep ``smoothed[:n_times - 120]``; 9760 -> 9640).
    4. Z-score each channel over the kept samples (population standard deviation,
       ``ddof=0``), then cast to float32.

    No filtering, re-referencing or resampling is done. The whole function is deterministic
    and offline.

    Parameters
    ----------
    raw_or_path : mne.io.BaseRaw | path-like
        A Raw instance (not modified) or the path of a file that ``mne.io.read_raw`` reads
        (the paper used ``S001R01.edf`` of the PhysioNet EEG Motor Movement/Imagery Dataset).
    verbose : bool | str | int | None
        MNE verbosity (as in MNE).

    Returns
    -------
    data : BinnedData
        Continuous, values of shape (1, n_times - 120, n_channels), ``bin_size = 1 / sfreq``,
        channel names from the file. ``provenance["zscore"]`` holds the means and standard
        deviations (in volts, of the smoothed signal) so that
        :func:`~nwb_lrnn.io.mne.to_mne` can put generated data back in volts;
        ``provenance["preprocessing"]`` describes the steps.

    Raises
    ------
    TypeError
        If ``raw_or_path`` is neither an MNE Raw nor a path.
    ValueError
        If the recording has no EEG channel, is too short, or has a flat or non-finite
        channel.

    Examples
    --------
    >>> data = preprocess_eeg_paper("tests/data/S001R01.edf", verbose="error")
    >>> data.shape
    (1, 9640, 64)
    >>> ref = np.load("tests/data/EEG_data_smoothed.npy")
    >>> float(np.abs(data.values[0] - ref).max()) < 1e-4
    True
    """
    from .mne import _describe, _filename, _import_mne, _log_level, _meas_date, _subject_info

    mne = _import_mne()
    with _log_level(mne, verbose):
        if isinstance(raw_or_path, (str, os.PathLike)):
            from .mne import read_eeg

            raw = read_eeg(raw_or_path, verbose=verbose)
        elif isinstance(raw_or_path, mne.io.BaseRaw):
            raw = raw_or_path
        else:
            raise TypeError(f"raw_or_path must be an mne.io.BaseRaw or a path, got "
                            f"{type(raw_or_path).__name__}.")
        what = _describe(raw)
        picks = mne.pick_types(raw.info, eeg=True, exclude=[])
        if len(picks) == 0:
            raise ValueError(f"{what}: no EEG channel (channel types: "
                             f"{sorted(set(raw.get_channel_types()))}).")
        ch_names = [raw.ch_names[i] for i in picks]
        x = np.asarray(raw.get_data(picks=picks, reject_by_annotation=None),
                       dtype=np.float64).T  # (n_times, n_ch)
    n_times = x.shape[0]
    n_keep = n_times - PAPER_DROP_END
    if n_keep < PAPER_WINDOW:
        raise ValueError(f"{what}: {n_times} samples is too short; the paper's preprocessing "
                         f"drops {PAPER_DROP_END} samples and smooths over {PAPER_WINDOW}.")
    bad = ~np.isfinite(x).all(axis=0)
    if bad.any():
        raise ValueError(f"{what}: channel(s) {[ch_names[i] for i in np.flatnonzero(bad)]} "
                         f"hold NaN or infinite values.")
    sfreq = float(raw.info["sfreq"])
    if x.shape[1] != 64 or sfreq != 160.0:
        logger.warning("%s has %d EEG channels at %g Hz; the paper's data had 64 at 160 Hz. "
                       "Applying the same steps anyway.", what, x.shape[1], sfreq)

    smoothed = _hann_smooth_causal(x, PAPER_WINDOW)[:n_keep]
    mean = smoothed.mean(axis=0)
    std = smoothed.std(axis=0)
    flat = ~(std > 0.0) | (smoothed.max(axis=0) == smoothed.min(axis=0))
    if flat.any():
        raise ValueError(f"{what}: channel(s) {[ch_names[i] for i in np.flatnonzero(flat)]} "
                         f"are flat (standard deviation 0).")
    values = ((smoothed - mean) / std).astype(np.float32)

    provenance: dict[str, Any] = {
        "source": "mne",
        "mne_type": type(raw).__name__,
        "filename": _filename(raw),
        "sfreq": sfreq,
        "highpass": float(raw.info["highpass"]),
        "lowpass": float(raw.info["lowpass"]),
        "picks": "eeg",
        "bads_excluded": [],
        "meas_date": _meas_date(raw.info),
        "subject_info": _subject_info(raw.info),
        "n_bad_samples": 0,
        "zscore": {"mean": mean.tolist(), "std": std.tolist()},
        "preprocessing": {
            "recipe": "Hess et al. 2023 / Pals et al. 2024 EEG_data_smoothed.npy",
            "smoothing": f"causal Hann, np.hanning({PAPER_WINDOW}) normalised, reflect padding "
                         f"(SciPy cookbook smooth, first n_times outputs)",
            "dropped_end_samples": PAPER_DROP_END,
            "zscore": "per channel after smoothing and cropping, ddof=0",
        },
    }
    return BinnedData(values, 1.0 / sfreq, "continuous", channel_names=ch_names,
                      start_times=np.array([raw.first_samp / sfreq]), provenance=provenance)
