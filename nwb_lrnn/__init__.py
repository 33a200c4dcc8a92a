"""nwb_lrnn: stochastic low-rank RNNs fitted to neural data with variational SMC.

Public names (DESIGN §8): :class:`BinnedData`, :class:`LowRankRNN`, the readers
(:func:`read_nwb`, :func:`read_dandi`, :func:`from_mne`, :func:`from_sorting`) and their
inverses (:func:`to_mne`, :func:`to_sorting`), the exact fixed points of a fitted network
(:func:`find_fixed_points`, :func:`find_cycles`). Importing the package has no side effects; the
readers (and MNE, dandi, spikeinterface behind them) load on first use.
"""

from __future__ import annotations

from ._version import __version__
from .analysis.fixed_points import FixedPoints, find_cycles, find_fixed_points
from .data import BinnedData
from .estimator import LowRankRNN, NotFittedError
from .inference.training import FitDivergedError

_IO_NAMES = ("read_nwb", "read_dandi", "from_mne", "to_mne", "from_sorting", "to_sorting",
             "write_nwb", "read_fit")

__all__ = ["BinnedData", "FitDivergedError", "FixedPoints", "LowRankRNN", "NotFittedError",
           "__version__", "find_cycles", "find_fixed_points", "sweep", *_IO_NAMES]


def __getattr__(name: str):
    if name in _IO_NAMES:
        from . import io

        return getattr(io, name)
    if name == "sweep":  # the module is callable: nwb_lrnn.sweep(...) runs sweep.sweep(...)
        import importlib

        return importlib.import_module(".sweep", __name__)
    raise AttributeError(f"module 'nwb_lrnn' has no attribute {name!r}")
