"""Behaviour from an NWB file, resampled to the bins of binned spikes (for decoding).

:func:`read_behavior` finds a ``TimeSeries`` (hand velocity, position...) in the processing
modules or acquisition of a local, self-contained NWB file and gives the mean of its samples in
each bin of a :class:`~nwb_lrnn.data.BinnedData` (or of bins given here).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validate import check_float, check_option

__all__ = ["read_behavior"]

logger = logging.getLogger(__name__)


def _find_series(nwbfile, name: str):
    """A TimeSeries named ``name`` in processing modules (behavior first) or acquisition;
    ``name`` may be a path such as 'behavior/Position/hand_pos'."""
    from pynwb import TimeSeries

    found: dict[str, Any] = {}

    def visit(prefix: str, obj):
        if isinstance(obj, TimeSeries):
            found[f"{prefix}{obj.name}"] = obj
            return
        for attr in ("spatial_series", "time_series"):
            sub = getattr(obj, attr, None)
            if isinstance(sub, Mapping):
                for k, v in sub.items():
                    found[f"{prefix}{obj.name}/{k}"] = v

    modules = dict(nwbfile.processing)
    for mod_name in sorted(modules, key=lambda m: (m != "behavior", m)):
        for obj in modules[mod_name].data_interfaces.values():
            visit(f"processing/{mod_name}/", obj)
    for obj in nwbfile.acquisition.values():
        visit("acquisition/", obj)
    key = name.strip("/")
    for path, series in found.items():
        if path == key or path.endswith("/" + key):
            return series, path
    shown = ", ".join(found) or "(none)"
    raise ValueError(f"no TimeSeries named {name!r} in the NWB file's processing modules or "
                     f"acquisition; the series there are: {shown}.")


def _series_times(series) -> np.ndarray:
    n = series.data.shape[0]
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:], dtype=float)
    rate = series.rate
    if rate is None or not rate > 0:
        raise ValueError(f"TimeSeries {series.name!r} has neither timestamps nor a rate.")
    t0 = series.starting_time or 0.0
    return t0 + np.arange(n) / float(rate)


def _bin_means(t: np.ndarray, x: np.ndarray, starts: np.ndarray, n_bins: int,
               bin_size: float) -> np.ndarray:
    """Mean of the samples in each bin [s + kΔ, s + (k+1)Δ); bins without a sample are
    linearly interpolated at their centre (NaN outside the series' time span)."""
    out = np.full((len(starts), n_bins, x.shape[1]), np.nan)
    order = np.argsort(t, kind="stable")
    t, x = t[order], x[order]
    for i, s in enumerate(starts):
        edges = s + bin_size * np.arange(n_bins + 1)
        lo = np.searchsorted(t, edges[:-1], side="left")
        hi = np.searchsorted(t, edges[1:], side="left")
        csum = np.vstack([np.zeros((1, x.shape[1])), np.nancumsum(x, axis=0)])
        cnt = hi - lo
        has = cnt > 0
        out[i, has] = (csum[hi[has]] - csum[lo[has]]) / cnt[has, None]
        if not has.all():
            centres = edges[:-1][~has] + bin_size / 2
            for d in range(x.shape[1]):
                out[i, ~has, d] = np.interp(centres, t, x[:, d], left=np.nan, right=np.nan)
    return out


def read_behavior(nwb_path: Any, name: str, *, like: Any = None,
                  bin_size: float | None = None,
                  time_range: tuple[float, float] | None = None,
                  align_to: str | Sequence[float] | np.ndarray | None = None,
                  window: tuple[float, float] | None = None,
                  trial_filter: Mapping | Callable | None = None,
                  intervals: str = "trials") -> np.ndarray:
    """Read a behavioural TimeSeries and resample it to time bins (mean per bin).

    The series (a ``SpatialSeries`` in ``Position``, a ``TimeSeries`` in
    ``BehavioralTimeSeries``, or a bare TimeSeries) is looked up in the processing modules
    (``behavior`` first) and then in ``acquisition``. Each bin gets the mean of the samples
    whose timestamps fall in it; bins without samples (series slower than the bins) are
    linearly interpolated; bins outside the series are NaN.

    The bins are either those of ``like`` (a BinnedData from :func:`~nwb_lrnn.io.read_nwb`,
    :func:`~nwb_lrnn.io.nlb.read_nlb`: its ``start_times``, ``n_time`` and ``bin_size``), or
    given here with the same meaning as in :func:`~nwb_lrnn.io.read_nwb` (``time_range``,
    or ``align_to`` + ``window`` + ``trial_filter``).

    Parameters
    ----------
    nwb_path : str | PathLike | pynwb.NWBFile
        A local NWB file or an NWBFile object.
    name : str
        Series name (e.g. ``"hand_vel"``) or a path ending in it
        (``"behavior/Position/hand_pos"``).
    like : BinnedData, optional
        Use its bins (recommended: the bins of the latents to decode).
    bin_size : float, optional
        Bin width in seconds (required without ``like``).
    time_range : (start, stop), optional
        One continuous trial (default without ``align_to``: the series' time span).
    align_to, window, trial_filter, intervals
        Trial alignment as in :func:`~nwb_lrnn.io.read_nwb` (``window=(before, after)``).
        Note that read_nwb may also drop trials outside units' ``obs_intervals``; pass
        ``like`` to be sure to get the same trials.

    Returns
    -------
    ndarray, shape (trials, time, D)
        D = 1 for a 1-D series.

    Raises
    ------
    ValueError
        No series of that name (the message lists the series in the file), missing bin
        size, bad ranges.
    FileNotFoundError
        The file does not exist.

    Examples
    --------
    >>> data = read_nwb("sub-Jenkins.nwb", bin_size=0.005, align_to="move_onset_time",
    ...                 window=(0.25, 0.45))                      # doctest: +SKIP
    >>> vel = read_behavior("sub-Jenkins.nwb", "hand_vel", like=data)  # doctest: +SKIP
    >>> vel.shape                                                     # doctest: +SKIP
    (2295, 140, 2)
    """
    from pynwb import NWBHDF5IO

    from .nwb import _is_nwbfile, check_self_contained

    check_option("intervals", intervals, ("trials", "epochs"))
    io = None
    if _is_nwbfile(nwb_path):
        nwbfile, label = nwb_path, f"NWBFile {getattr(nwb_path, 'identifier', '')!r}"
    else:
        path = os.fspath(nwb_path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"NWB file not found: {path}")
        check_self_contained(path)
        io = NWBHDF5IO(path, "r", load_namespaces=True)
        nwbfile, label = io.read(), path
    try:
        series, where = _find_series(nwbfile, name)
        t = _series_times(series)
        x = np.asarray(series.data[:], dtype=float)
        x = x.reshape(len(x), -1)
        if like is not None:
            if any(v is not None for v in (bin_size, time_range, align_to, window,
                                           trial_filter)):
                raise ValueError("pass either like=BinnedData or bin_size/time_range/align_to"
                                 "/window/trial_filter, not both.")
            bin_size = float(like.bin_size)
            starts = np.asarray(like.start_times, dtype=float)
            n_bins = int(like.n_time)
        else:
            if bin_size is None:
                raise ValueError("bin_size is required when like is not given.")
            bin_size = check_float("bin_size", bin_size, min_value=0.0, strict_min=True)
            starts, n_bins = _bins_from_file(nwbfile, t, bin_size, time_range, align_to,
                                             window, trial_filter, intervals)
        logger.info("%s: resampling %s (%d samples, %d dims) to %d x %d bins of %g s",
                    label, where, len(t), x.shape[1], len(starts), n_bins, bin_size)
        return _bin_means(t, x, starts, n_bins, bin_size)
    finally:
        if io is not None:
            io.close()


def _bins_from_file(nwbfile, t, bin_size, time_range, align_to, window, trial_filter,
                    intervals) -> tuple[np.ndarray, int]:
    from .binning import n_bins_for
    from .nwb import _check_range, _pynwb_table, _Source, _Table, _trial_starts

    if align_to is None:
        if window is not None or trial_filter is not None:
            raise ValueError("window and trial_filter need align_to (a trials column or "
                             "event times).")
        t0, t1 = (float(t.min()), float(t.max()) + 1e-12) if time_range is None \
            else _check_range(time_range)
        n = n_bins_for(t1 - t0, bin_size)
        if n < 1:
            raise ValueError(f"bin_size ({bin_size} s) is longer than the time range.")
        return np.array([t0]), n
    table = getattr(nwbfile, intervals)
    src = _Source(label=f"NWBFile {nwbfile.identifier!r}",
                  units=_Table("Units", np.zeros(0)),
                  trials=_pynwb_table(table, intervals) if table is not None else None,
                  epochs=None, meta={}, spike_resolution=None, trials_name=intervals)
    starts, before, after, _ = _trial_starts(src, align_to, window, trial_filter)
    n = n_bins_for(before + after, bin_size)
    if n < 1:
        raise ValueError(f"bin_size ({bin_size} s) is longer than the trial window.")
    return starts, n
