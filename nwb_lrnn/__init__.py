"""nwb_lrnn: stochastic low-rank RNNs fitted to neural data with variational SMC.

Public names: :class:`BinnedData`, :class:`LowRankRNN`, the readers (:func:`read_nwb`,
:func:`read_dandi`, :func:`from_mne`, :func:`from_sorting`) and their inverses (:func:`to_mne`,
:func:`to_sorting`), the fit file's writer and reader (:func:`write_nwb`, :func:`read_fit`), the
exact fixed points of a fitted network (:func:`find_fixed_points`, :func:`find_cycles`), Ray
sweeps (:func:`sweep`) and the CPU thread policy (:func:`set_num_threads`,
:func:`get_num_threads`). Importing the package has no side effects and imports neither torch
nor the readers' libraries (MNE, pynwb, dandi, spikeinterface): each loads on first use, so
``nwb-lrnn --help`` starts in a fraction of torch's import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._threads import get_num_threads, set_num_threads
from ._version import __version__

_IO_NAMES = ("read_nwb", "read_dandi", "from_mne", "to_mne", "from_sorting", "to_sorting")
_LAZY = {  # name -> module that defines it (imported on first access)
    "BinnedData": ".data", "LowRankRNN": ".estimator", "NotFittedError": ".estimator",
    "FitDivergedError": ".inference.training", "FixedPoints": ".analysis.fixed_points",
    "find_fixed_points": ".analysis.fixed_points", "find_cycles": ".analysis.fixed_points",
    "write_nwb": ".results", "read_fit": ".results",
    **{name: ".io" for name in _IO_NAMES},
}

__all__ = ["BinnedData", "FitDivergedError", "FixedPoints", "LowRankRNN", "NotFittedError",
           "__version__", "find_cycles", "find_fixed_points", "from_mne", "from_sorting",
           "get_num_threads", "read_dandi", "read_fit", "read_nwb", "set_num_threads", "sweep",
           "to_mne", "to_sorting", "write_nwb"]

if TYPE_CHECKING:  # pragma: no cover
    from .analysis.fixed_points import FixedPoints, find_cycles, find_fixed_points
    from .data import BinnedData
    from .estimator import LowRankRNN, NotFittedError
    from .inference.training import FitDivergedError
    from .io import from_mne, from_sorting, read_dandi, read_nwb, to_mne, to_sorting
    from .results import read_fit, write_nwb


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name == "sweep":  # the module is callable: nwb_lrnn.sweep(...) runs sweep.sweep(...)
        return importlib.import_module(".sweep", __name__)
    raise AttributeError(f"module 'nwb_lrnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
