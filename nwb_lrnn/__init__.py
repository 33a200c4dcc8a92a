"""nwb_lrnn: stochastic low-rank RNNs fitted to neural data with variational SMC.

Public names (DESIGN §8): :class:`BinnedData`, :class:`LowRankRNN`. Importing the package has no
side effects.
"""

from ._version import __version__
from .data import BinnedData
from .estimator import LowRankRNN, NotFittedError
from .inference.training import FitDivergedError

__all__ = ["BinnedData", "FitDivergedError", "LowRankRNN", "NotFittedError", "__version__"]
