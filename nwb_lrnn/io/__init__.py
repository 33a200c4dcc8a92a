"""Readers and writers: NWB, DANDI, MNE, spikeinterface, pynapple. Knows no torch.

The fit file's writer and reader here take and give plain records (:class:`FitRecord`,
:class:`FitResults`); :func:`nwb_lrnn.write_nwb` and :func:`nwb_lrnn.read_fit` turn an
estimator into them and back.

Names are imported lazily (PEP 562) so that ``import nwb_lrnn`` does not import MNE, dandi or
spikeinterface.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "read_nwb": ".nwb", "NWBReadError": ".nwb",
    "read_dandi": ".dandi",
    "open_url": ".remote", "download": ".remote", "RemoteReadError": ".remote",
    "from_sorting": ".sorting", "to_sorting": ".sorting",
    "from_mne": ".mne", "to_mne": ".mne", "read_eeg": ".mne", "EEGReadError": ".mne",
    "preprocess_eeg_paper": ".eeg",
    "bin_spike_times": ".binning",
    "read_nlb": ".nlb", "read_behavior": ".behavior",
    "write_fit": ".fit_nwb", "read_fit_record": ".fit_nwb", "FitFileError": ".fit_nwb",
    "check_fit_target": ".fit_nwb", "store_fixed_points": ".fit_nwb",
    "read_fit_source": ".fit_nwb", "summarize_fit": ".fit_nwb",
    "FitRecord": ".records", "FitResults": ".records",
    "from_pynapple": ".pynap", "to_pynapple": ".pynap",
    "read": ".sources", "source_kind": ".sources", "EEG_SUFFIXES": ".sources",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
