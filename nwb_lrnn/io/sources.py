"""One way in: ``nwb_lrnn.io.read(source, ...)`` for every source the package reads, with one
suffix table.

A source is a dandiset (``DANDI:000128[/version]``, ``000128`` or a dandiset URL), an EEG file
MNE reads (by suffix, as ``mne.io.read_raw`` decides), or an NWB file (a path or an http(s)
URL). The command line, sweeps and ``LowRankRNN.fit("file")`` all read through it.

>>> kind = source_kind("S001R01.edf")
>>> kind
'eeg'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["EEG_SUFFIXES", "read", "source_kind"]

EEG_SUFFIXES = (".edf", ".bdf", ".fif", ".fif.gz", ".vhdr", ".set", ".gdf", ".cnt")
"""File suffixes read as EEG through MNE (``mne.io.read_raw``)."""
_DANDI_RE = re.compile(r"^(DANDI:)?\d{6}(/[\w.]+)?$|dandiarchive\.org/dandiset/", re.I)
EEG_PREPROCESSING = ("zscore", "paper")


def source_kind(source: str | os.PathLike) -> str:
    """'dandi', 'eeg' or 'nwb' for a source."""
    text = os.fspath(source)
    low = text.lower()
    if _DANDI_RE.search(text) and not low.endswith(".nwb"):
        return "dandi"
    if low.endswith(EEG_SUFFIXES):
        return "eeg"
    return "nwb"


def read(source: str | os.PathLike, *, bin_size: float | None = None,
         asset: str | None = None, eeg_preprocessing: str = "zscore",
         api_url: str | None = None, cache_dir: str | os.PathLike | None = None,
         **kwargs: Any):
    """Read any source into :class:`~nwb_lrnn.BinnedData`.

    Parameters
    ----------
    source : str | PathLike
        A dandiset, an EEG file (``EEG_SUFFIXES``) or an NWB file / URL.
    bin_size : float, optional
        Seconds. Required for spikes (NWB, DANDI); for EEG it resamples to ``1 / bin_size``
        (default: the recording's rate).
    asset : str, optional
        DANDI only: an asset path or glob.
    eeg_preprocessing : {'zscore', 'paper'}
        EEG only: z-score each EEG channel (:func:`~nwb_lrnn.io.from_mne`), or the papers'
        preprocessing (:func:`~nwb_lrnn.io.preprocess_eeg_paper`).
    api_url, cache_dir : optional
        DANDI only (another archive; the block cache).
    **kwargs
        Passed on to :func:`~nwb_lrnn.io.read_nwb` or :func:`~nwb_lrnn.io.read_dandi` (e.g.
        ``units``, ``align_to``, ``window``), or to ``from_mne`` for EEG (e.g. ``picks``).

    Returns
    -------
    BinnedData, or a list of them (a dandiset with several sessions).

    Raises
    ------
    FileNotFoundError, ValueError (including NWBReadError and EEGReadError)
    """
    kind = source_kind(source)
    if kind == "eeg":
        return _read_eeg(source, bin_size=bin_size, preprocessing=eeg_preprocessing, **kwargs)
    if bin_size is None:
        raise ValueError(f"reading {os.fspath(source)!r} needs a bin size for its spikes: pass "
                         "bin_size=0.02 (seconds), or read it with nwb_lrnn.io.read(..., "
                         "bin_size=...).")
    if kind == "dandi":
        from .dandi import read_dandi

        return read_dandi(os.fspath(source), asset=asset, bin_size=bin_size, api_url=api_url,
                          cache_dir=cache_dir, **kwargs)
    from .nwb import read_nwb

    return read_nwb(source, bin_size=bin_size, cache_dir=cache_dir, **kwargs)


def _read_eeg(path, *, bin_size: float | None, preprocessing: str, picks: Any = "eeg",
              **kwargs: Any):
    from .._validate import check_option
    from .mne import read_eeg

    check_option("eeg_preprocessing", preprocessing, EEG_PREPROCESSING)
    raw = read_eeg(Path(path).expanduser(), preload=True, verbose="error")
    if bin_size:
        raw.resample(1.0 / bin_size, verbose="error")
    if preprocessing == "paper":
        from .eeg import preprocess_eeg_paper

        data = preprocess_eeg_paper(raw, verbose="error")
    else:
        from .mne import from_mne

        data = from_mne(raw, picks=picks, verbose="error", **kwargs)
    data.provenance.setdefault("filename", str(path))
    return data
