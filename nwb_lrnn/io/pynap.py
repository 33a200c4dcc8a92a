"""pynapple in and out: a ``TsGroup`` of spike trains to binned counts, and any array shaped
like the data (latents, rates, predictions) back to a ``TsdFrame``.

Counts are pynapple's own (``TsGroup.count``), so they are identical to what a pynapple user
gets; several intervals of equal length become trials.

>>> import pynapple as nap                                          # doctest: +SKIP
>>> data = from_pynapple(units, bin_size=0.02, ep=nap.IntervalSet(0, 600))  # doctest: +SKIP
>>> z = to_pynapple(est.transform(data), data)                      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validate import check_float
from ..data import BinnedData

__all__ = ["from_pynapple", "to_pynapple"]


def _import_pynapple():
    try:
        import pynapple as nap
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the pynapple bridge needs pynapple: pip install "
                          "'nwb-lrnn[pynapple]' (or pip install pynapple).") from err
    return nap


def from_pynapple(tsgroup: Any, *, bin_size: float, ep: Any = None) -> BinnedData:
    """Bin a pynapple ``TsGroup`` into counts (one trial per interval of ``ep``).

    Parameters
    ----------
    tsgroup : pynapple.TsGroup
        Spike trains (one Ts per unit; the group's index becomes ``channel_ids``).
    bin_size : float
        Seconds.
    ep : pynapple.IntervalSet, optional
        The intervals to bin (default: the group's ``time_support``). Several intervals become
        several trials and must hold the same number of bins.

    Returns
    -------
    BinnedData
        kind "counts", values (intervals, bins, units) equal to ``tsgroup.count(bin_size,
        ep=interval)`` for each interval; ``start_times`` the intervals' starts; the group's
        numeric metadata columns (e.g. ``rate``) in ``provenance["unit_metadata"]``.

    Raises
    ------
    TypeError
        ``tsgroup`` is not a TsGroup.
    ValueError
        Intervals of different lengths in bins, or an interval shorter than one bin.
    """
    nap = _import_pynapple()
    bin_size = check_float("bin_size", bin_size, min_value=0.0, strict_min=True)
    if not isinstance(tsgroup, nap.TsGroup):
        raise TypeError(f"tsgroup must be a pynapple.TsGroup, got {type(tsgroup).__name__}.")
    ep = tsgroup.time_support if ep is None else ep
    if not isinstance(ep, nap.IntervalSet):
        raise TypeError(f"ep must be a pynapple.IntervalSet, got {type(ep).__name__}.")
    starts, ends = np.asarray(ep.start, float), np.asarray(ep.end, float)
    counts = [np.asarray(tsgroup.count(bin_size, ep=nap.IntervalSet(s, e)).values)
              for s, e in zip(starts, ends, strict=True)]
    lengths = sorted({c.shape[0] for c in counts})
    if lengths[0] == 0:
        raise ValueError(f"an interval of ep is shorter than one bin of {bin_size:g} s.")
    if len(lengths) > 1:
        raise ValueError(f"the intervals of ep hold different numbers of bins ({lengths}); "
                         "trials need one length: pass intervals of equal duration, or one "
                         "interval.")
    meta = {}
    frame = getattr(tsgroup, "metadata", None)
    if frame is not None:
        for col in frame.columns:
            vals = np.asarray(frame[col])
            if vals.dtype.kind in "biuf":
                meta[str(col)] = vals.astype(float).tolist()
    ids = np.asarray(list(tsgroup.keys()))
    return BinnedData(np.stack(counts).astype(np.float32), bin_size, "counts",
                      channel_ids=ids, start_times=starts,
                      provenance={"source": "pynapple", "reader": "nwb_lrnn.io.from_pynapple",
                                  "unit_metadata": meta})


def to_pynapple(values: np.ndarray, like: BinnedData, *,
                columns: Sequence[str] | None = None) -> Any:
    """An array shaped (trials, time, k), aligned with ``like``, as a pynapple ``TsdFrame``.

    Times are the bin centres (as pynapple's ``count``); trials are concatenated, and the
    ``time_support`` is one interval per trial.

    Parameters
    ----------
    values : ndarray, shape (trials, time, k)
        E.g. ``est.transform(data)`` (latents) or ``est.predict_ahead(data)`` (rates).
    like : BinnedData
        The data the values belong to (bin size, trial start times).
    columns : sequence of str, optional
        Column names (default: ``latent_0``, ``latent_1``, ...).
    """
    nap = _import_pynapple()
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 3 or arr.shape[:2] != (like.n_trials, like.n_time):
        raise ValueError(f"values must be shaped (trials, time, k) = ({like.n_trials}, "
                         f"{like.n_time}, k) like the data, got {arr.shape}.")
    bs = float(like.bin_size)
    starts = np.asarray(like.start_times, dtype=float)
    t = (starts[:, None] + (np.arange(like.n_time) + 0.5) * bs).ravel()
    cols = list(columns) if columns is not None else [f"latent_{i}" for i in
                                                      range(arr.shape[2])]
    support = nap.IntervalSet(starts, starts + like.n_time * bs)
    return nap.TsdFrame(t=t, d=arr.reshape(-1, arr.shape[2]), columns=cols,
                        time_support=support)
