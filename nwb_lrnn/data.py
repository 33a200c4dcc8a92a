"""Binned neural data: the one container between the I/O readers and the model.

:class:`BinnedData` holds a (trials, time, channels) array of either spike counts or a
continuous signal (EEG, LFP, calcium), optional external inputs of shape
(trials, time, n_inputs), per-channel metadata, per-trial start times, a trial table and a
provenance record. It is treated as immutable: every method returns a new object.

Example
-------
>>> import numpy as np
>>> from nwb_lrnn.data import BinnedData
>>> counts = np.random.default_rng(0).poisson(2.0, size=(10, 200, 40))
>>> data = BinnedData(counts, bin_size=0.02, kind="counts")
>>> data
<BinnedData | counts, 10 trials × 200 bins × 40 channels, bin 20.0 ms>
>>> train, test = data.split_trials(0.2, random_state=0)
>>> len(train), len(test)
(8, 2)
"""

from __future__ import annotations

import copy
import json
import logging
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ._validate import (
    check_array,
    check_float,
    check_int,
    check_option,
    check_random_state,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["KINDS", "NAN_POLICIES", "BinnedData"]

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("counts", "continuous")
NAN_POLICIES: tuple[str, ...] = ("raise", "allow")

_MAX_LISTED = 10  # channels listed by name in error messages


# --------------------------------------------------------------------------------------
# private helpers
# --------------------------------------------------------------------------------------
def _clean_starts(values: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Trial and start indices of the windows of ``length`` bins holding no NaN.

    values : ndarray, shape (trials, time, channels) -> two int64 arrays of the same length
    """
    bad = ~np.isfinite(values).all(axis=2)  # (trials, time)
    n_trials, n_time = bad.shape
    n_starts = n_time - length + 1
    if n_starts <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cs = np.concatenate([np.zeros((n_trials, 1), dtype=np.int64),
                         np.cumsum(bad, axis=1)], axis=1)
    n_bad = cs[:, length:length + n_starts] - cs[:, :n_starts]
    trial, start = np.nonzero(n_bad == 0)
    return trial.astype(np.int64), start.astype(np.int64)


def _first_index(mask: np.ndarray) -> tuple[int, ...]:
    """Index (as a tuple of ints) of the first True entry of ``mask``."""
    flat = int(np.flatnonzero(mask)[0])
    return tuple(int(i) for i in np.unravel_index(flat, mask.shape))


def _list_channels(chans: np.ndarray, names: Sequence[str]) -> str:
    """Human-readable list of channel indices with their names, truncated."""
    shown = [f"{int(c)} ({names[int(c)]!r})" for c in chans[:_MAX_LISTED]]
    more = len(chans) - len(shown)
    text = ", ".join(shown)
    if more > 0:
        text += f", ... and {more} more"
    return text


def _is_nonneg_integral(arr: np.ndarray) -> np.ndarray:
    """Boolean array, True where ``arr`` is a finite, non-negative integer value."""
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        return arr >= 0
    with np.errstate(invalid="ignore"):
        return np.isfinite(arr) & (arr >= 0) & (arr == np.round(arr))


def _jsonable(obj: Any, name: str) -> Any:
    """Recursively turn numpy scalars/arrays and tuples into plain JSON types."""
    if isinstance(obj, Mapping):
        out = {}
        for key, val in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"{name} keys must be str, got {type(key).__name__} ({key!r}).")
            out[key] = _jsonable(val, f"{name}[{key!r}]")
        return out
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), name)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, name) for v in obj]
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{name} must be JSON-serialisable, got {type(obj).__name__} ({obj!r}).")


def _array_to_list(arr: np.ndarray) -> list:
    """``arr.tolist()`` with NaN replaced by None (so the result is strict JSON)."""
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        obj = arr.astype(object)
        obj[np.isnan(arr)] = None
        return obj.tolist()
    return arr.tolist()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --------------------------------------------------------------------------------------
# BinnedData
# --------------------------------------------------------------------------------------
class BinnedData:
    """Binned neural data of shape (trials, time, channels), with metadata.

    Treat instances as immutable: methods such as :meth:`select_trials`, :meth:`windows`
    or :meth:`split_time` return new objects. Arrays are stored as numpy arrays and may
    share memory with the arrays passed in when no conversion was needed.

    Parameters
    ----------
    values : array-like, shape (n_trials, n_time, n_channels) or (n_time, n_channels)
        The binned data. A 2-D array is treated as a single trial and stored with shape
        (1, n_time, n_channels). Stored as float32 whatever the ``kind``.
    bin_size : float
        Bin width in seconds, > 0.
    kind : {'counts', 'continuous'}
        ``'counts'``: spike counts, which must be finite non-negative integers (stored as
        float32). ``'continuous'``: any real-valued signal.
    inputs : array-like, shape (n_trials, n_time, n_inputs) or (n_time, n_inputs), optional
        External inputs, aligned bin by bin with ``values``; must be finite. The 2-D form
        is accepted only when ``values`` has a single trial. Inputs with ``n_inputs == 0``
        are stored as None.
    channel_ids : sequence, shape (n_channels,), optional
        Identifiers of the channels (unit ids, electrode ids...), unique. Defaults to
        ``np.arange(n_channels)``.
    channel_names : list of str, length n_channels, optional
        Defaults to ``str(id)`` for each id when ``channel_ids`` is given, else
        ``f"ch{i}"``.
    channel_locations : array-like, shape (n_channels, 3), optional
        Channel positions (x, y, z); NaN marks an unknown coordinate.
    start_times : array-like, shape (n_trials,), optional
        Time in seconds of the start of each trial's first bin. Defaults to
        ``np.arange(n_trials) * n_time * bin_size`` (trials back to back).
    trials : mapping of str to array-like, optional
        Trial table: each column is a 1-D array of length ``n_trials``. A pandas DataFrame
        works too. Defaults to an empty table.
    provenance : mapping of str to JSON-serialisable, optional
        Where the data came from (file, dandiset id, version, asset path...). numpy
        scalars and arrays are converted to plain Python types.
    nan_policy : {'raise', 'allow'}
        What to do with NaN in continuous data: ``'raise'`` raises a ValueError naming the
        affected channels; ``'allow'`` keeps them (see :attr:`nan_mask`). NaN is never
        allowed in counts, and infinite values are never allowed.

    Attributes
    ----------
    values : ndarray of float32, shape (n_trials, n_time, n_channels)
    inputs : ndarray of float32, shape (n_trials, n_time, n_inputs), or None
    bin_size : float
    kind : str
    channel_ids : ndarray, shape (n_channels,)
    channel_names : list of str
    channel_locations : ndarray of float64, shape (n_channels, 3), or None
    start_times : ndarray of float64, shape (n_trials,)
    trials : dict of str to ndarray, each of shape (n_trials,)
    provenance : dict
    nan_policy : str

    Examples
    --------
    >>> import numpy as np
    >>> eeg = np.random.default_rng(0).standard_normal((5000, 32))  # (time, channels)
    >>> data = BinnedData(eeg, bin_size=0.004, kind="continuous")
    >>> data.shape
    (1, 5000, 32)
    >>> data.windows(250, n_windows=64, random_state=0).shape
    (64, 250, 32)
    """

    def __init__(
        self,
        values: ArrayLike,
        bin_size: float,
        kind: str,
        *,
        inputs: ArrayLike | None = None,
        channel_ids: Sequence[Any] | np.ndarray | None = None,
        channel_names: Sequence[str] | None = None,
        channel_locations: ArrayLike | None = None,
        start_times: ArrayLike | None = None,
        trials: Mapping[str, ArrayLike] | None = None,
        provenance: Mapping[str, Any] | None = None,
        nan_policy: str = "raise",
    ) -> None:
        self.bin_size: float = check_float("bin_size", bin_size, min_value=0.0,
                                           strict_min=True)
        self.kind: str = check_option("kind", kind, KINDS)
        self.nan_policy: str = check_option("nan_policy", nan_policy, NAN_POLICIES)

        self.values: np.ndarray = self._check_values(values)
        n_trials, n_time, n_channels = self.values.shape

        self.channel_ids: np.ndarray = self._check_channel_ids(channel_ids, n_channels)
        self.channel_names: list[str] = self._check_channel_names(
            channel_names, channel_ids is not None, self.channel_ids)
        self.channel_locations: np.ndarray | None = None
        if channel_locations is not None:
            self.channel_locations = check_array(
                "channel_locations", channel_locations, shape=(n_channels, 3),
                allow_nan=True, dtype=np.float64)

        self._check_values_content()

        self.inputs: np.ndarray | None = self._check_inputs(inputs)

        if start_times is None:
            self.start_times: np.ndarray = np.arange(n_trials) * (n_time * self.bin_size)
        else:
            st = check_array("start_times", start_times, ndim=1, dtype=np.float64)
            if st.shape[0] != n_trials:
                raise ValueError(f"start_times must have one entry per trial "
                                 f"(n_trials={n_trials}), got shape {st.shape}.")
            self.start_times = st

        self.trials: dict[str, np.ndarray] = self._check_trials(trials, n_trials)

        if provenance is None:
            provenance = {}
        if not isinstance(provenance, Mapping):
            raise TypeError(f"provenance must be a dict, got {type(provenance).__name__} "
                            f"({provenance!r}).")
        self.provenance: dict[str, Any] = _jsonable(provenance, "provenance")

    # ---------------------------------------------------------------- validation helpers
    @staticmethod
    def _check_values(values: ArrayLike) -> np.ndarray:
        arr = check_array("values", values, allow_nan=True, dtype=None)
        if np.issubdtype(arr.dtype, np.complexfloating):
            raise TypeError(f"values must be real, got an array of dtype {arr.dtype}.")
        given = arr.shape
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        elif arr.ndim != 3:
            raise ValueError("values must be a 3-D array (trials, time, channels) or a 2-D "
                             f"array (time, channels), got shape {arr.shape}.")
        if 0 in arr.shape:
            # the counts in scikit-learn's wording too ("0 feature(s) ... minimum of 1")
            unit = "feature" if arr.shape[-1] == 0 else "sample"
            raise ValueError(f"values must have at least one trial, one time bin and one "
                             f"channel: 0 {unit}(s) (shape={given}) while a minimum of 1 is "
                             "required.")
        if arr.dtype != np.float32 and arr.size and np.issubdtype(arr.dtype, np.number):
            big = np.abs(arr[np.isfinite(arr)]) > np.finfo(np.float32).max
            if big.any():
                raise ValueError(f"values holds {int(big.sum())} finite value(s) beyond the "
                                 "float32 range (|x| > 3.4e38), which the model stores "
                                 "values in.")
        return arr.astype(np.float32, copy=False)

    def _check_values_content(self) -> None:
        """Check infinities, counts integrality and NaN policy on ``self.values``."""
        vals = self.values
        finite = np.isfinite(vals)
        if finite.all():
            if self.kind == "continuous":
                return
        else:
            inf = np.isinf(vals)
            if inf.any():
                idx = _first_index(inf)
                raise ValueError(
                    f"values contains {int(inf.sum())} infinite value(s) (e.g. {vals[idx]} at "
                    f"(trial, time, channel) = {idx}); infinite values are never allowed.")
        if self.kind == "counts":
            bad = ~_is_nonneg_integral(vals)
            if bad.any():
                idx = _first_index(bad)
                n_nan = int(np.isnan(vals).sum())
                note = (f" {n_nan} of them are NaN, which is never allowed for counts "
                        f"(whatever nan_policy)." if n_nan else "")
                raise ValueError(
                    f"values of kind 'counts' must be finite non-negative integers, but "
                    f"{int(bad.sum())} entries are not (e.g. {vals[idx]} at "
                    f"(trial, time, channel) = {idx}).{note} Use kind='continuous' for "
                    f"real-valued signals.")
            return
        # continuous with NaN
        if self.nan_policy == "raise":
            nan = ~finite
            chans = np.flatnonzero(nan.any(axis=(0, 1)))
            raise ValueError(
                f"values contains {int(nan.sum())} NaN value(s) in {len(chans)} channel(s): "
                f"{_list_channels(chans, self.channel_names)}. Interpolate or drop them, or "
                f"pass nan_policy='allow' to keep them (they are then masked).")
        logger.debug("Keeping %d NaN value(s) (nan_policy='allow').", int((~finite).sum()))

    def _check_inputs(self, inputs: ArrayLike | None) -> np.ndarray | None:
        if inputs is None:
            return None
        n_trials, n_time, _ = self.values.shape
        arr = check_array("inputs", inputs, dtype=np.float32)
        if arr.ndim == 2:
            if n_trials != 1:
                raise ValueError(
                    f"inputs of shape {arr.shape} is 2-D (time, n_inputs), which is only "
                    f"accepted when values has a single trial; values has shape "
                    f"{self.values.shape}. Pass inputs of shape (trials, time, n_inputs).")
            arr = arr[np.newaxis]
        elif arr.ndim != 3:
            raise ValueError("inputs must be a 3-D array (trials, time, n_inputs) or a 2-D "
                             f"array (time, n_inputs), got shape {arr.shape}.")
        if arr.shape[:2] != (n_trials, n_time):
            raise ValueError(
                f"inputs must have the same number of trials and time bins as values, but "
                f"inputs has shape {arr.shape} and values has shape {self.values.shape}.")
        if arr.shape[2] == 0:
            return None
        return arr

    @staticmethod
    def _check_channel_ids(channel_ids: Any, n_channels: int) -> np.ndarray:
        if channel_ids is None:
            return np.arange(n_channels)
        if isinstance(channel_ids, (str, bytes)) or not hasattr(channel_ids, "__len__"):
            raise TypeError(f"channel_ids must be a sequence of length {n_channels}, got "
                            f"{type(channel_ids).__name__} ({channel_ids!r}).")
        if hasattr(channel_ids, "detach"):  # torch tensor
            channel_ids = channel_ids.detach().cpu().numpy()
        ids = np.asarray(channel_ids)
        if ids.ndim != 1 or ids.shape[0] != n_channels:
            raise ValueError(f"channel_ids must have one entry per channel "
                             f"(n_channels={n_channels}), got shape {ids.shape}.")
        seen: set = set()
        for x in ids.tolist():
            if x in seen:
                raise ValueError(f"channel_ids must be unique, but {x!r} appears more than "
                                 f"once.")
            seen.add(x)
        return ids

    @staticmethod
    def _check_channel_names(channel_names: Any, have_ids: bool,
                             ids: np.ndarray) -> list[str]:
        n_channels = ids.shape[0]
        if channel_names is None:
            if have_ids:
                return [str(i) for i in ids.tolist()]
            return [f"ch{i}" for i in range(n_channels)]
        if isinstance(channel_names, (str, bytes)) or not hasattr(channel_names, "__len__"):
            raise TypeError(f"channel_names must be a list of {n_channels} str, got "
                            f"{type(channel_names).__name__} ({channel_names!r}).")
        names = list(channel_names)
        if len(names) != n_channels:
            raise ValueError(f"channel_names has {len(names)} entries but values has "
                             f"{n_channels} channels; give one name per channel.")
        for i, name in enumerate(names):
            if not isinstance(name, str):
                raise TypeError(f"channel_names must hold str, but channel_names[{i}] is "
                                f"{type(name).__name__} ({name!r}).")
        return [str(n) for n in names]

    @staticmethod
    def _check_trials(trials: Any, n_trials: int) -> dict[str, np.ndarray]:
        if trials is None:
            return {}
        if not hasattr(trials, "items"):
            raise TypeError(f"trials must be a mapping of column name to 1-D array (or a "
                            f"DataFrame), got {type(trials).__name__}.")
        table: dict[str, np.ndarray] = {}
        for key, col in trials.items():
            if not isinstance(key, str):
                raise TypeError(f"trials column names must be str, got "
                                f"{type(key).__name__} ({key!r}).")
            if hasattr(col, "detach"):
                col = col.detach().cpu().numpy()
            arr = np.asarray(col)
            if arr.ndim != 1 or arr.shape[0] != n_trials:
                raise ValueError(f"trials column {key!r} must be 1-D with one entry per trial "
                                 f"(n_trials={n_trials}), got shape {arr.shape}.")
            table[key] = arr
        return table

    # ---------------------------------------------------------------- properties
    @property
    def n_trials(self) -> int:
        """Number of trials."""
        return int(self.values.shape[0])

    @property
    def n_time(self) -> int:
        """Number of time bins per trial."""
        return int(self.values.shape[1])

    @property
    def n_channels(self) -> int:
        """Number of channels (units, electrodes...)."""
        return int(self.values.shape[2])

    @property
    def n_inputs(self) -> int:
        """Number of external inputs (0 if there are none)."""
        return 0 if self.inputs is None else int(self.inputs.shape[2])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_trials, n_time, n_channels)``."""
        return (self.n_trials, self.n_time, self.n_channels)

    @property
    def duration(self) -> float:
        """Duration of one trial in seconds, ``n_time * bin_size``."""
        return self.n_time * self.bin_size

    @property
    def times(self) -> np.ndarray:
        """Bin start times relative to the trial start, shape (n_time,), in seconds."""
        return np.arange(self.n_time) * self.bin_size

    @property
    def nan_mask(self) -> np.ndarray | None:
        """Boolean array (n_trials, n_time, n_channels), True where finite; None if no NaN."""
        mask = np.isfinite(self.values)
        return None if mask.all() else mask

    # ---------------------------------------------------------------- dunder methods
    def __repr__(self) -> str:
        ms = round(self.bin_size * 1000.0, 6)
        parts = [f"{self.kind}, {_plural(self.n_trials, 'trial')} × "
                 f"{_plural(self.n_time, 'bin')} × {_plural(self.n_channels, 'channel')}",
                 f"bin {ms} ms"]
        if self.n_inputs:
            parts.append(_plural(self.n_inputs, "input"))
        return f"<BinnedData | {', '.join(parts)}>"

    def __len__(self) -> int:
        return self.n_trials

    def __getitem__(self, idx: Any) -> BinnedData:
        return self.select_trials(idx)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_array(cls, values: ArrayLike, bin_size: float = 1.0, kind: str | None = None,
                   **kwargs: Any) -> BinnedData:
        """Build a :class:`BinnedData` from a plain array, inferring ``kind`` if needed.

        Parameters
        ----------
        values : array-like, shape (n_trials, n_time, n_channels) or (n_time, n_channels)
        bin_size : float
            Bin width in seconds (default 1.0, i.e. time in bins).
        kind : {'counts', 'continuous'} or None
            If None, ``'counts'`` when every value is a non-negative integer (integer dtype,
            or floats holding integral values), else ``'continuous'``. Note that
            non-negative integer-valued continuous data (e.g. raw ADC values) would be
            inferred as counts: pass ``kind`` explicitly in that case.
        **kwargs
            Any other keyword argument of :class:`BinnedData`.

        Returns
        -------
        BinnedData

        Examples
        --------
        >>> BinnedData.from_array(np.ones((3, 4), dtype=int)).kind
        'counts'
        >>> BinnedData.from_array([[0.5, 1.0]]).kind
        'continuous'
        """
        if kind is None:
            arr = check_array("values", values, allow_nan=True, dtype=None)
            if arr.size and np.all(_is_nonneg_integral(arr)):
                kind = "counts"
            else:
                kind = "continuous"
            logger.info("Inferred kind=%r for values of dtype %s.", kind, arr.dtype)
            values = arr
        return cls(values, bin_size, kind, **kwargs)

    def replace(self, **changes: Any) -> BinnedData:
        """Return a copy with some constructor arguments replaced (and re-validated).

        Parameters
        ----------
        **changes
            Constructor arguments (``values``, ``bin_size``, ``provenance``...) to replace.

        Returns
        -------
        BinnedData

        Examples
        --------
        >>> data = BinnedData(np.zeros((2, 5, 3)), 0.01, "counts")
        >>> data.replace(channel_names=["a", "b", "c"]).channel_names
        ['a', 'b', 'c']
        """
        kwargs: dict[str, Any] = {
            "values": self.values, "bin_size": self.bin_size, "kind": self.kind,
            "inputs": self.inputs, "channel_ids": self.channel_ids,
            "channel_names": self.channel_names, "channel_locations": self.channel_locations,
            "start_times": self.start_times, "trials": self.trials,
            "provenance": self.provenance, "nan_policy": self.nan_policy,
        }
        unknown = sorted(set(changes) - set(kwargs))
        if unknown:
            raise TypeError(f"replace() got unexpected argument(s) {unknown}; allowed are "
                            f"{sorted(kwargs)}.")
        kwargs.update(changes)
        values = kwargs.pop("values")
        bin_size = kwargs.pop("bin_size")
        kind = kwargs.pop("kind")
        return type(self)(values, bin_size, kind, **kwargs)

    # ---------------------------------------------------------------- trial selection
    def select_trials(self, idx: Any) -> BinnedData:
        """Subset of trials (the trial table and start times are subset too).

        Parameters
        ----------
        idx : int, slice, array-like of int or array-like of bool, shape (n_trials,)
            Trials to keep. An int keeps a single trial (the trial axis is kept).

        Returns
        -------
        BinnedData
            Shape (n_selected, n_time, n_channels).

        Examples
        --------
        >>> data = BinnedData(np.zeros((10, 5, 3)), 0.01, "counts")
        >>> data.select_trials([0, 2]).shape, data[1].shape, data[::2].shape
        ((2, 5, 3), (1, 5, 3), (5, 5, 3))
        """
        if isinstance(idx, tuple):
            raise TypeError("BinnedData is indexed by trial only (got a tuple); use "
                            "windows() or split_time() to cut along time.")
        if isinstance(idx, (list, np.ndarray)) or hasattr(idx, "detach"):
            idx = np.asarray(idx.detach().cpu().numpy() if hasattr(idx, "detach") else idx)
            if idx.size == 0:
                idx = idx.astype(np.intp)
        try:
            sel = np.atleast_1d(np.arange(self.n_trials)[idx])
        except (IndexError, TypeError, ValueError) as err:
            raise IndexError(f"Invalid trial index {idx!r} for BinnedData with "
                             f"{self.n_trials} trial(s): {err}") from None
        if sel.size == 0:
            raise ValueError(f"Trial selection {idx!r} is empty; a BinnedData needs at least "
                             f"one trial.")
        return self._take(sel)

    def _take(self, sel: np.ndarray) -> BinnedData:
        """New object with trials ``sel`` (1-D int array, may repeat)."""
        return self.replace(
            values=self.values[sel],
            inputs=None if self.inputs is None else self.inputs[sel],
            start_times=self.start_times[sel],
            trials={k: v[sel] for k, v in self.trials.items()},
        )

    def split_trials(self, test_size: float | int = 0.2, *, shuffle: bool = True,
                     random_state: int | np.random.Generator | None = None,
                     ) -> tuple[BinnedData, BinnedData]:
        """Split the trials into a training and a test set.

        Parameters
        ----------
        test_size : float in (0, 1) or int >= 1
            Fraction of the trials (rounded up) or number of trials in the test set.
        shuffle : bool
            If True, draw the test trials at random; otherwise the test set is the last
            trials. Within each part the trials keep their original order.
        random_state : None, int or numpy.random.Generator
            Seed of the shuffle.

        Returns
        -------
        train, test : BinnedData
            Disjoint subsets covering all trials; both are non-empty.

        Examples
        --------
        >>> data = BinnedData(np.zeros((10, 5, 3)), 0.01, "counts")
        >>> train, test = data.split_trials(3, random_state=0)
        >>> len(train), len(test)
        (7, 3)
        """
        n = self.n_trials
        if isinstance(test_size, numbers.Integral) and not isinstance(test_size, bool):
            n_test = check_int("test_size", test_size, min_value=1)
        elif isinstance(test_size, numbers.Real) and not isinstance(test_size, bool):
            frac = check_float("test_size", test_size, min_value=0.0, max_value=1.0,
                               strict_min=True, strict_max=True)
            n_test = math.ceil(frac * n - 1e-9)
        else:
            raise TypeError(f"test_size must be a float in (0, 1) or an int, got "
                            f"{type(test_size).__name__} ({test_size!r}).")
        n_train = n - n_test
        if n_test < 1 or n_train < 1:
            raise ValueError(f"test_size={test_size!r} with {n} trial(s) gives {n_train} "
                             f"training and {n_test} test trial(s); both must be >= 1.")
        if shuffle:
            perm = check_random_state(random_state).permutation(n)
            test_idx, train_idx = np.sort(perm[:n_test]), np.sort(perm[n_test:])
        else:
            train_idx, test_idx = np.arange(n_train), np.arange(n_train, n)
        return self._take(train_idx), self._take(test_idx)

    # ---------------------------------------------------------------- time cuts
    def windows(self, length: int, *, n_windows: int | None = None, step: int | None = None,
                random_state: int | np.random.Generator | None = None,
                skip_nan: bool = False) -> BinnedData:
        """Cut windows of ``length`` bins out of the trials.

        Useful to train on one long recording (e.g. EEG) as many shorter sequences.

        Parameters
        ----------
        length : int
            Window length in bins, ``1 <= length <= n_time``.
        n_windows : int, optional
            If given, draw this many windows at random (with replacement), uniformly over
            all valid (trial, start) pairs. Cannot be combined with ``step``.
        step : int, optional
            For regular windows (``n_windows`` None): the shift between consecutive window
            starts within each trial, in bins. Defaults to ``length`` (non-overlapping).
            Each trial gives ``(n_time - length) // step + 1`` windows.
        random_state : None, int or numpy.random.Generator
            Seed for the random windows.
        skip_nan : bool
            Leave out the windows that overlap NaN values (e.g. BAD_ annotated segments of
            an MNE recording): regular windows holding NaN are dropped, random windows are
            drawn among the clean ones only.

        Returns
        -------
        BinnedData
            Shape (n_windows, length, n_channels), windows ordered by trial then start (or
            in draw order for random windows). Inputs are windowed too; ``start_times``
            are the windows' start times (trial start + start * bin_size); trial-table
            columns are repeated per window; ``provenance['windowed_from']`` records the
            original shape.

        Examples
        --------
        >>> data = BinnedData(np.zeros((2, 100, 3)), 0.01, "continuous")
        >>> data.windows(30).shape
        (6, 30, 3)
        >>> data.windows(30, step=10).shape
        (16, 30, 3)
        """
        length = check_int("length", length, min_value=1)
        if length > self.n_time:
            raise ValueError(f"length={length} is longer than the trials: it must be <= "
                             f"n_time={self.n_time}.")
        n_starts = self.n_time - length + 1
        clean = None
        if skip_nan and self.nan_mask is not None:
            clean = _clean_starts(self.values, length)
            if len(clean[0]) == 0:
                raise ValueError(f"no window of {length} bins is free of NaN values; use "
                                 f"shorter windows or drop the bad segments.")
        if n_windows is not None:
            if step is not None:
                raise ValueError(f"Pass either n_windows (random windows) or step (regular "
                                 f"windows), not both; got n_windows={n_windows!r}, "
                                 f"step={step!r}.")
            n_windows = check_int("n_windows", n_windows, min_value=1)
            rng = check_random_state(random_state)
            if clean is None:
                flat = rng.integers(0, self.n_trials * n_starts, size=n_windows)
                trial_idx, start_idx = np.divmod(flat, n_starts)
            else:
                pick = rng.integers(0, len(clean[0]), size=n_windows)
                trial_idx, start_idx = clean[0][pick], clean[1][pick]
        else:
            step = check_int("step", step, min_value=1, allow_none=True)
            if step is None:
                step = length
            starts = np.arange(0, n_starts, step)
            trial_idx = np.repeat(np.arange(self.n_trials), len(starts))
            start_idx = np.tile(starts, self.n_trials)
            if clean is not None:
                ok = np.zeros((self.n_trials, n_starts), dtype=bool)
                ok[clean] = True
                keep = ok[trial_idx, start_idx]
                if not keep.any():
                    raise ValueError(f"every window of {length} bins (step {step}) overlaps "
                                     f"NaN values; use a smaller step or shorter windows.")
                trial_idx, start_idx = trial_idx[keep], start_idx[keep]
        time_idx = start_idx[:, None] + np.arange(length)[None, :]
        values = self.values[trial_idx[:, None], time_idx]
        inputs = None if self.inputs is None else self.inputs[trial_idx[:, None], time_idx]
        provenance = dict(self.provenance)
        provenance["windowed_from"] = str(self.shape)
        logger.debug("Cut %d window(s) of %d bins from data of shape %s.",
                     len(trial_idx), length, self.shape)
        return self.replace(
            values=values, inputs=inputs,
            start_times=self.start_times[trial_idx] + start_idx * self.bin_size,
            trials={k: v[trial_idx] for k, v in self.trials.items()},
            provenance=provenance,
        )

    def split_time(self, fraction: float = 0.8) -> tuple[BinnedData, BinnedData]:
        """Split every trial in time into a first and a last part.

        Parameters
        ----------
        fraction : float in (0, 1)
            Fraction of the bins (rounded to the nearest bin) in the first part.

        Returns
        -------
        first, last : BinnedData
            Shapes (n_trials, n_first, n_channels) and (n_trials, n_time - n_first,
            n_channels); ``last.start_times`` is shifted by ``n_first * bin_size``.

        Examples
        --------
        >>> data = BinnedData(np.zeros((2, 100, 3)), 0.01, "continuous")
        >>> first, last = data.split_time(0.8)
        >>> first.shape, last.shape
        ((2, 80, 3), (2, 20, 3))
        """
        fraction = check_float("fraction", fraction, min_value=0.0, max_value=1.0,
                               strict_min=True, strict_max=True)
        n_first = round(fraction * self.n_time)
        if n_first < 1 or n_first > self.n_time - 1:
            raise ValueError(f"fraction={fraction} of n_time={self.n_time} bins gives "
                             f"{n_first} and {self.n_time - n_first} bins; both parts must "
                             f"have at least one bin.")
        first = self.replace(
            values=self.values[:, :n_first],
            inputs=None if self.inputs is None else self.inputs[:, :n_first])
        last = self.replace(
            values=self.values[:, n_first:],
            inputs=None if self.inputs is None else self.inputs[:, n_first:],
            start_times=self.start_times + n_first * self.bin_size)
        return first, last

    # ---------------------------------------------------------------- conversion
    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        """Plain, JSON-serialisable description of the metadata.

        Parameters
        ----------
        include_arrays : bool
            Also include ``values`` and ``inputs`` as nested lists (NaN as None); handy
            for small data and tests, wasteful for real recordings.

        Returns
        -------
        dict
            Keys ``shape``, ``bin_size``, ``kind``, ``nan_policy``, ``n_inputs``,
            ``channel_ids``, ``channel_ids_dtype``, ``channel_names``,
            ``channel_locations`` (NaN as None, or None), ``start_times``, ``trials``
            (column -> list), ``trials_dtypes`` (column -> numpy dtype string),
            ``provenance`` and, if asked for, ``values`` and ``inputs``.

        Examples
        --------
        >>> data = BinnedData(np.zeros((2, 5, 3)), 0.01, "counts")
        >>> d = data.to_dict()
        >>> d["kind"], d["shape"]
        ('counts', [2, 5, 3])
        >>> BinnedData.from_dict(d, values=data.values).shape
        (2, 5, 3)
        """
        d: dict[str, Any] = {
            "shape": list(self.shape),
            "bin_size": self.bin_size,
            "kind": self.kind,
            "nan_policy": self.nan_policy,
            "n_inputs": self.n_inputs,
            "channel_ids": _array_to_list(self.channel_ids),
            "channel_ids_dtype": self.channel_ids.dtype.str,
            "channel_names": list(self.channel_names),
            "channel_locations": (None if self.channel_locations is None
                                  else _array_to_list(self.channel_locations)),
            "start_times": self.start_times.tolist(),
            "trials": {k: _array_to_list(v) for k, v in self.trials.items()},
            "trials_dtypes": {k: v.dtype.str for k, v in self.trials.items()},
            "provenance": copy.deepcopy(self.provenance),
        }
        if include_arrays:
            d["values"] = _array_to_list(self.values)
            d["inputs"] = None if self.inputs is None else self.inputs.tolist()
        # Fail here rather than in a writer if something is not serialisable.
        json.dumps(d)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], values: ArrayLike | None = None,
                  inputs: ArrayLike | None = None) -> BinnedData:
        """Rebuild a :class:`BinnedData` from :meth:`to_dict` output and the arrays.

        Parameters
        ----------
        d : mapping
            As returned by :meth:`to_dict` (possibly after a JSON round trip).
        values : array-like, shape (n_trials, n_time, n_channels), optional
            The data; if None, ``d['values']`` is used.
        inputs : array-like, shape (n_trials, n_time, n_inputs), optional
            The inputs; if None, ``d.get('inputs')`` is used.

        Returns
        -------
        BinnedData

        Examples
        --------
        >>> data = BinnedData(np.zeros((2, 5, 3)), 0.01, "counts")
        >>> BinnedData.from_dict(data.to_dict(include_arrays=True)).shape
        (2, 5, 3)
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"d must be a dict, got {type(d).__name__}.")
        missing = [k for k in ("bin_size", "kind") if k not in d]
        if missing:
            raise ValueError(f"d is missing the key(s) {missing}.")
        if values is None:
            if d.get("values") is None:
                raise ValueError("from_dict needs the data: pass values=..., or a dict made "
                                 "with to_dict(include_arrays=True).")
            values = np.asarray(d["values"], dtype=np.float32)
        if inputs is None and d.get("inputs") is not None:
            inputs = np.asarray(d["inputs"], dtype=np.float32)
        ids = d.get("channel_ids")
        if ids is not None:
            ids = np.asarray(ids, dtype=d.get("channel_ids_dtype"))
        locs = d.get("channel_locations")
        if locs is not None:
            locs = np.asarray(locs, dtype=np.float64)
        dtypes = d.get("trials_dtypes") or {}
        trials = {k: np.asarray(v, dtype=dtypes.get(k))
                  for k, v in (d.get("trials") or {}).items()}
        data = cls(values, d["bin_size"], d["kind"], inputs=inputs, channel_ids=ids,
                   channel_names=d.get("channel_names"), channel_locations=locs,
                   start_times=d.get("start_times"), trials=trials,
                   provenance=d.get("provenance"), nan_policy=d.get("nan_policy", "raise"))
        shape = d.get("shape")
        if shape is not None and tuple(shape) != data.shape:
            raise ValueError(f"values has shape {data.shape}, but the metadata describes "
                             f"shape {tuple(shape)}.")
        return data

    def astensor(self, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The values and inputs as (copied) torch tensors.

        Parameters
        ----------
        device : str or torch.device, optional
            Device of the tensors (default: CPU).
        dtype : torch.dtype, optional
            Floating dtype of the tensors (default: ``torch.float32``).

        Returns
        -------
        values : Tensor, shape (n_trials, n_time, n_channels)
            NaN entries are kept (see :attr:`nan_mask`).
        inputs : Tensor, shape (n_trials, n_time, n_inputs), or None

        Examples
        --------
        >>> y, u = BinnedData(np.zeros((2, 5, 3)), 0.01, "counts").astensor()
        >>> tuple(y.shape), u is None
        ((2, 5, 3), True)
        """
        import torch

        if dtype is None:
            dtype = torch.float32
        y = torch.tensor(self.values, dtype=dtype, device=device)
        u = None if self.inputs is None else torch.tensor(self.inputs, dtype=dtype,
                                                          device=device)
        return y, u
