"""ndx-lrnn: the NWB extension for stochastic low-rank RNN fits.

``import ndx_lrnn`` loads the namespace into pynwb and gives the Python classes of its types,
generated from the spec (every field documented there, shown by ``help(ndx_lrnn.X)``):

- :class:`LowRankRNNModel`: the fitted network (U, V, h, decay, noise, readout), its settings
  as JSON attributes, the training bound per epoch and the exact trainable state.
- :class:`PosteriorLatents`, :class:`GeneratedData`: TimeSeries of latents and surrogate data
  (trials concatenated in time, ``trial_index`` per sample).
- :class:`FixedPointTable`, :class:`FitMetrics`: DynamicTables.

Reading a fit needs nothing else::

    from pynwb import NWBHDF5IO
    import ndx_lrnn  # noqa: F401
    with NWBHDF5IO("fit.nwb", "r") as io:
        model = io.read().processing["lrnn"]["model"]
        U, V = model.U[:], model.V[:]

:mod:`ndx_lrnn.testing` has ``mock_*`` constructors for tests.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pynwb import get_class, load_namespaces

NAMESPACE = "ndx-lrnn"


def _spec_dir() -> Path:
    """The installed spec (inside the package), or the repository's spec/ folder."""
    packaged = Path(str(resources.files(__name__))) / "spec"
    if (packaged / f"{NAMESPACE}.namespace.yaml").is_file():
        return packaged
    return Path(__file__).resolve().parents[3] / "spec"  # an uninstalled checkout


def _version(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.strip().startswith("version:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    raise RuntimeError(f"{path} names no version")  # pragma: no cover


NAMESPACE_PATH = _spec_dir() / f"{NAMESPACE}.namespace.yaml"
__version__ = _version(NAMESPACE_PATH)
load_namespaces(str(NAMESPACE_PATH))

LowRankRNNModel = get_class("LowRankRNNModel", NAMESPACE)
PosteriorLatents = get_class("PosteriorLatents", NAMESPACE)
GeneratedData = get_class("GeneratedData", NAMESPACE)
FixedPointTable = get_class("FixedPointTable", NAMESPACE)
FitMetrics = get_class("FitMetrics", NAMESPACE)

__all__ = [
    "NAMESPACE",
    "FitMetrics",
    "FixedPointTable",
    "GeneratedData",
    "LowRankRNNModel",
    "PosteriorLatents",
    "__version__",
]
