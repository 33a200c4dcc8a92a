"""Decoding behaviour from latents (or rates), and reading behaviour from NWB files.

- :func:`decode_behavior`: cross-validated ridge regression from latents (trials, time, R)
  to behaviour (trials, time, D), folds split by trials; R² per behaviour dimension.
- :func:`read_behavior`: a TimeSeries / SpatialSeries of an NWB file (``processing/behavior``
  or ``acquisition``) resampled to the bins of a :class:`~nwb_lrnn.data.BinnedData` (mean
  per bin), so that latents of data read with :func:`~nwb_lrnn.io.read_nwb` can be decoded
  against e.g. hand position or velocity.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> z = rng.normal(size=(30, 50, 3))
>>> out = decode_behavior(z, z @ rng.normal(size=(3, 2)))
>>> round(out["mean_r2"], 3)
1.0
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validate import check_array, check_float, check_int, check_option

__all__ = ["decode_behavior", "read_behavior"]

logger = logging.getLogger(__name__)


def _import_sklearn():
    try:
        import sklearn  # noqa: F401
        from sklearn.linear_model import Ridge, RidgeCV
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("decoding needs scikit-learn: pip install scikit-learn "
                          "(a dependency of nwb_lrnn: reinstall it).") from err
    return Ridge, RidgeCV


def _as_trials(name: str, x) -> np.ndarray:
    arr = check_array(name, x, ndim=(1, 2, 3))
    if arr.ndim == 1:          # (time,) -> one trial, one dimension
        arr = arr[None, :, None]
    elif arr.ndim == 2:        # (time, dims) -> one trial
        arr = arr[None]
    return arr


def decode_behavior(latents, behavior, *, alpha: float | Sequence[float] = 1.0, cv: int = 5,
                    lag: int = 0, random_state: Any = None) -> dict[str, Any]:
    """Cross-validated ridge decoding of behaviour from latents, folds split by trials.

    For each of ``cv`` folds of trials, a ridge regression b_t ≈ W z_{t−lag} + c (features
    standardised with the training fold's mean and SD) is fitted on the other folds and
    predicts the held-out trials. R² = 1 − Σ(b − b̂)² / Σ(b − b̄)² is computed per behaviour
    dimension on all out-of-fold predictions pooled.

    Parameters
    ----------
    latents : ndarray, shape (trials, time, R) or (time, R)
        Features: posterior latents, predicted rates, smoothed spikes...
    behavior : ndarray, shape (trials, time, D), (trials, time) with D = 1, or (time, D)
        Behaviour on the same bins (e.g. from :func:`read_behavior`). Bins with NaN
        behaviour are left out of fitting and scoring.
    alpha : float or sequence of floats
        Ridge penalty (on standardised features); a sequence picks the best value on each
        training fold by scikit-learn's efficient leave-one-out ``RidgeCV``.
    cv : int
        Number of folds, 2 ≤ cv ≤ trials. With one trial, the time axis is cut into ``cv``
        contiguous blocks instead.
    lag : int
        The behaviour at bin t is decoded from the latents at bin t − lag (lag ≥ 0: the
        latents lead); the first ``lag`` bins of every trial are dropped.
    random_state : int, optional
        Shuffle the trials before assigning folds (default: contiguous folds, no shuffle).

    Returns
    -------
    dict
        ``r2`` ndarray (D,): R² per behaviour dimension; ``mean_r2`` float: their mean;
        ``prediction`` ndarray (trials, time − lag, D): out-of-fold predictions;
        ``folds`` list of arrays of trial indices; ``alpha`` list: penalty used per fold.

    Raises
    ------
    ValueError
        Shapes that do not match, cv out of range, lag too long.
    ImportError
        scikit-learn is not installed.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> z = rng.normal(size=(20, 40, 2))
    >>> b = np.stack([z[..., 0] + 0.1 * rng.normal(size=(20, 40)), rng.normal(size=(20, 40))],
    ...              -1)
    >>> r2 = decode_behavior(z, b, alpha=[0.1, 1.0, 10.0])["r2"]
    >>> bool(r2[0] > 0.9), bool(r2[1] < 0.1)
    (True, True)
    """
    Ridge, RidgeCV = _import_sklearn()
    z = _as_trials("latents", latents)
    b = check_array("behavior", behavior, ndim=(1, 2, 3), allow_nan=True)
    if b.ndim == 1:
        b = b[None, :, None]
    elif b.ndim == 2:
        b = b[..., None] if b.shape == z.shape[:2] else b[None]
    if b.shape[:2] != z.shape[:2]:
        raise ValueError(f"latents and behavior must have the same trials and time bins, got "
                         f"latents {z.shape} and behavior {b.shape}.")
    lag = check_int("lag", lag, min_value=0)
    if lag >= z.shape[1]:
        raise ValueError(f"lag ({lag}) must be shorter than the trials ({z.shape[1]} bins).")
    if lag:
        z, b = z[:, :-lag], b[:, lag:]
    single = z.shape[0] == 1
    n_groups = z.shape[1] if single else z.shape[0]
    cv = check_int("cv", cv, min_value=2)
    if cv > n_groups:
        raise ValueError(f"cv ({cv}) is larger than the number of "
                         f"{'time bins' if single else 'trials'} ({n_groups}).")
    if isinstance(alpha, (int, float, np.number)):
        alphas = None
        alpha = check_float("alpha", alpha, min_value=0.0)
    else:
        alphas = np.asarray(check_array("alpha", alpha, ndim=1), dtype=float)
        if alphas.size == 0 or np.any(alphas <= 0):
            raise ValueError(f"alpha as a grid must hold positive values, got {alpha!r}.")
    order = np.arange(n_groups)
    if random_state is not None:
        order = np.random.default_rng(random_state).permutation(n_groups)
    folds = [np.sort(f) for f in np.array_split(order, cv)]
    pred = np.full(b.shape, np.nan)
    used = []
    for f in folds:
        test = np.zeros(n_groups, dtype=bool)
        test[f] = True
        if single:
            ztr, btr = z[0, ~test], b[0, ~test]
            zte = z[0, test]
        else:
            ztr, btr = z[~test].reshape(-1, z.shape[-1]), b[~test].reshape(-1, b.shape[-1])
            zte = z[test].reshape(-1, z.shape[-1])
        ok = np.all(np.isfinite(btr), axis=1)
        ztr, btr = ztr[ok], btr[ok]
        mu, sd = ztr.mean(0), ztr.std(0)
        sd[sd == 0] = 1.0
        if alphas is None:
            reg = Ridge(alpha=alpha)
        else:
            reg = RidgeCV(alphas=alphas)
        reg.fit((ztr - mu) / sd, btr)
        used.append(float(getattr(reg, "alpha_", alpha)))
        p = reg.predict((zte - mu) / sd).reshape(-1, b.shape[-1])
        if single:
            pred[0, test] = p
        else:
            pred[test] = p.reshape(len(f), b.shape[1], b.shape[-1])
    bt, pt = b.reshape(-1, b.shape[-1]), pred.reshape(-1, b.shape[-1])
    r2 = np.empty(b.shape[-1])
    for d in range(b.shape[-1]):
        ok = np.isfinite(bt[:, d])
        ss_tot = ((bt[ok, d] - bt[ok, d].mean()) ** 2).sum()
        ss_res = ((bt[ok, d] - pt[ok, d]) ** 2).sum()
        r2[d] = (1.0 - ss_res / ss_tot) if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return {"r2": r2, "mean_r2": float(r2.mean()), "prediction": pred, "folds": folds,
            "alpha": used}


# ------------------------------------------------------------------------------ reading
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

    from ..io.nwb import _is_nwbfile, check_self_contained

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
    from ..io.binning import n_bins_for
    from ..io.nwb import _check_range, _pynwb_table, _Source, _Table, _trial_starts

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
