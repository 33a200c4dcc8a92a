"""Trial conditions as model inputs, for fits conditioned on the task and for generation.

- :func:`condition_inputs`: a new :class:`~nwb_lrnn.data.BinnedData` whose ``inputs`` encode
  a trial-table column: one-hot per category, or (cos, sin) of an angle, during a window of
  bins of every trial.
- :func:`inputs_for`: the same inputs for conditions given directly (new ones included, such
  as an angle never seen in training), to pass to ``LowRankRNN.sample(..., inputs=...)``.

Example
-------
>>> import numpy as np
>>> from nwb_lrnn.data import BinnedData
>>> data = BinnedData(np.zeros((4, 50, 3)), 0.01, "counts",
...                   trials={"target": np.array([0.0, 90.0, 180.0, 270.0])})
>>> cued = condition_inputs(data, "target", kind="angle", degrees=True, onset=5, duration=10)
>>> cued.inputs.shape
(4, 50, 2)
>>> inputs_for([45.0], 50, kind="angle", degrees=True, onset=5, duration=10).shape
(1, 50, 2)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validate import check_float, check_int, check_option

__all__ = ["condition_inputs", "inputs_for"]

logger = logging.getLogger(__name__)

KINDS = ("onehot", "angle")


def _window_mask(n_trials: int, n_time: int, onset, duration) -> np.ndarray:
    """(n_trials, n_time) boolean mask of the bins [onset, onset + duration)."""
    on = np.asarray(onset)
    if on.ndim == 0:
        on = np.full(n_trials, check_int("onset", int(on) if float(on).is_integer() else on,
                                         min_value=0))
    else:
        if on.shape != (n_trials,):
            raise ValueError(f"onset must be an int or one int per trial (shape "
                             f"({n_trials},)), got shape {on.shape}.")
        if not np.all(np.isfinite(on)) or np.any(on < 0) or np.any(on != np.round(on)):
            raise ValueError("onset must hold non-negative whole numbers of bins.")
        on = on.astype(np.int64)
    if duration is None:
        end = np.full(n_trials, n_time)
    else:
        duration = check_int("duration", duration, min_value=1)
        end = on + duration
    if np.any(on >= n_time):
        raise ValueError(f"onset ({int(on.max())}) must be smaller than n_time ({n_time}).")
    t = np.arange(n_time)
    return (t[None, :] >= on[:, None]) & (t[None, :] < end[:, None])


def inputs_for(conditions: Sequence[Any] | np.ndarray, n_time: int, *, kind: str = "onehot",
               categories: Sequence[Any] | None = None, onset: int | Sequence[int] = 0,
               duration: int | None = None, degrees: bool = False,
               scale: float = 1.0) -> np.ndarray:
    """Inputs encoding one condition per trial, for fitting or for conditional generation.

    ``kind='onehot'``: input k is ``scale`` when the trial's condition is ``categories[k]``;
    ``kind='angle'``: two inputs, ``scale · (cos θ, sin θ)`` of the trial's angle θ (any
    angle: new ones interpolate between those seen in training). Inputs are non-zero only in
    the bins [onset, onset + duration) of each trial (default: the whole trial).

    Parameters
    ----------
    conditions : sequence, shape (n_trials,)
        One condition per trial: category labels (onehot) or angles (angle).
    n_time : int
        Bins per trial.
    kind : {'onehot', 'angle'}
    categories : sequence, optional
        onehot: the categories, in input order (use those of the fit, stored in
        ``data.provenance['condition_inputs']['categories']`` by :func:`condition_inputs`);
        default: the sorted unique conditions (logged). A condition not in ``categories``
        raises a ValueError.
    onset : int or sequence of int (n_trials,)
        First bin of the input window.
    duration : int, optional
        Bins in the window (default: to the end of the trial).
    degrees : bool
        angle: the angles are in degrees (default radians).
    scale : float
        Input amplitude.

    Returns
    -------
    ndarray of float32, shape (n_trials, n_time, n_inputs)
        n_inputs = len(categories) (onehot) or 2 (angle).

    Examples
    --------
    >>> u = inputs_for(["left", "right", "left"], 20, kind="onehot",
    ...                categories=["left", "right"], onset=2, duration=3)
    >>> u.shape, u[1, 2:5, 1].tolist(), u[1, 5, 1].item()
    ((3, 20, 2), [1.0, 1.0, 1.0], 0.0)
    >>> inputs_for([np.pi / 2], 4, kind="angle")[0, 0].round(6).tolist()
    [0.0, 1.0]
    """
    kind = check_option("kind", kind, KINDS)
    n_time = check_int("n_time", n_time, min_value=1)
    scale = check_float("scale", scale)
    cond = np.asarray(conditions)
    if cond.ndim != 1 or cond.size == 0:
        raise ValueError(f"conditions must be a non-empty 1-D sequence (one per trial), got "
                         f"shape {cond.shape}.")
    mask = _window_mask(cond.size, n_time, onset, duration).astype(np.float32)
    if kind == "angle":
        if categories is not None:
            raise ValueError("categories is for kind='onehot', not kind='angle'.")
        try:
            theta = cond.astype(float)
        except (TypeError, ValueError):
            raise ValueError(f"kind='angle' needs numeric angles, got values such as "
                             f"{cond[:3].tolist()}.") from None
        if not np.all(np.isfinite(theta)):
            raise ValueError("angles must be finite (a trial without angle has no input).")
        if degrees:
            theta = np.deg2rad(theta)
        code = scale * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    else:
        if categories is None:
            categories = sorted(set(cond.tolist()), key=lambda v: (str(type(v)), v))
            logger.info("inputs_for: categories (input order) = %s", categories)
        cats = list(categories)
        if len(set(cats)) != len(cats):
            raise ValueError(f"categories must be unique, got {cats}.")
        pos = {c: i for i, c in enumerate(cats)}
        unknown = sorted({c for c in cond.tolist() if c not in pos}, key=str)
        if unknown:
            raise ValueError(f"condition(s) {unknown} not in categories {cats}; a one-hot "
                             f"input cannot encode a new category (use kind='angle' for "
                             f"angles).")
        code = np.zeros((cond.size, len(cats)))
        code[np.arange(cond.size), [pos[c] for c in cond.tolist()]] = scale
    return (mask[:, :, None] * code[:, None, :].astype(np.float32)).astype(np.float32)


def condition_inputs(data, column: str, *, kind: str = "onehot",
                     categories: Sequence[Any] | None = None, onset: int | str = 0,
                     duration: int | None = None, degrees: bool = False, scale: float = 1.0,
                     append: bool = False):
    """Encode a trial-table column as model inputs.

    Parameters
    ----------
    data : BinnedData
        Trials with a trial table (e.g. from :func:`~nwb_lrnn.io.read_nwb` with
        ``align_to``, or :func:`~nwb_lrnn.io.nlb.read_nlb`).
    column : str
        The trial-table column holding the condition (e.g. ``"target"``, ``"cue_angle"``).
    kind : {'onehot', 'angle'}
        See :func:`inputs_for`.
    categories : sequence, optional
        onehot: the categories in input order (default: sorted unique values).
    onset : int or str
        First bin of the input window: a bin index, or the name of a trial-table column of
        times in seconds (converted to bins with the trials' ``start_times``).
    duration : int, optional
        Bins in the window (default: to the end of every trial).
    degrees, scale
        See :func:`inputs_for`.
    append : bool
        Add these inputs after the existing ones (default: replace them).

    Returns
    -------
    BinnedData
        A copy with ``inputs`` of shape (trials, time, n_inputs); the encoding (kind,
        categories, onset, duration...) is stored in ``provenance['condition_inputs']`` so
        that :func:`inputs_for` can build inputs for new conditions the same way.

    Raises
    ------
    ValueError
        Unknown column (the message lists the available columns), bad onset/duration.

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_lrnn.data import BinnedData
    >>> d = BinnedData(np.zeros((3, 30, 2)), 0.01, "counts",
    ...                trials={"side": np.array(["L", "R", "L"], dtype=object)})
    >>> condition_inputs(d, "side").inputs.shape
    (3, 30, 2)
    """
    if not isinstance(column, str):
        raise TypeError(f"column must be the name of a trial-table column, got "
                        f"{type(column).__name__}.")
    if column not in data.trials:
        cols = ", ".join(sorted(data.trials)) or "(none: the data have no trial table)"
        raise ValueError(f"column {column!r} is not in the trial table; its columns are: "
                         f"{cols}.")
    kind = check_option("kind", kind, KINDS)
    values = np.asarray(data.trials[column])
    if values.dtype == object or values.dtype.kind in "SU":
        values = np.asarray([v.decode() if isinstance(v, bytes) else v for v in values],
                            dtype=object)
    if isinstance(onset, str):
        if onset not in data.trials:
            cols = ", ".join(sorted(data.trials)) or "(none)"
            raise ValueError(f"onset column {onset!r} is not in the trial table; its columns "
                             f"are: {cols}.")
        times = np.asarray(data.trials[onset], dtype=float)
        onset_bins = np.floor((times - data.start_times) / data.bin_size + 1e-9)
        if not np.all(np.isfinite(onset_bins)):
            raise ValueError(f"onset column {onset!r} has missing times.")
        onset_arr: Any = onset_bins.astype(np.int64)
    else:
        onset_arr = onset
    if kind == "onehot" and categories is None:
        categories = sorted(set(values.tolist()), key=lambda v: (str(type(v)), v))
    u = inputs_for(values, data.n_time, kind=kind, categories=categories, onset=onset_arr,
                   duration=duration, degrees=degrees, scale=scale)
    if append and data.inputs is not None:
        u = np.concatenate([data.inputs, u], axis=-1)
    elif data.inputs is not None:
        logger.info("condition_inputs: replacing the data's %d existing inputs",
                    data.n_inputs)
    info = {"column": column, "kind": kind, "degrees": bool(degrees), "scale": float(scale),
            "onset": onset if isinstance(onset, str) else np.asarray(onset).tolist(),
            "duration": duration, "append": bool(append)}
    if kind == "onehot":
        info["categories"] = [v.item() if hasattr(v, "item") else v for v in categories]
    prov = dict(data.provenance)
    prov["condition_inputs"] = info
    return data.replace(inputs=u, provenance=prov)
