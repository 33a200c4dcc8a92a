"""Validation helpers used at the public boundary.

Every message names the parameter, states what was expected and shows what was given
(in the spirit of MNE's ``_check_option``). Bad values raise :class:`ValueError`, bad
types :class:`TypeError`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "check_array",
    "check_float",
    "check_int",
    "check_option",
    "check_random_state",
]


def check_option(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError naming it.

    Examples
    --------
    >>> check_option("kind", "counts", ("counts", "continuous"))
    'counts'
    """
    allowed = tuple(allowed)
    if isinstance(value, str) and value in allowed:
        return value
    if not isinstance(value, str) and any(value is a or value == a for a in allowed):
        return value
    opts = ", ".join(repr(a) for a in allowed)
    raise ValueError(f"Invalid value for the {name!r} parameter. Allowed values are {opts}, "
                     f"but got {value!r} instead.")


def check_int(name: str, value: Any, *, min_value: int | None = None,
              max_value: int | None = None, allow_none: bool = False) -> int | None:
    """Return ``value`` as ``int`` after checking its type and range."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r}).")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}.")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}.")
    return value


def check_float(name: str, value: Any, *, min_value: float | None = None,
                max_value: float | None = None, strict_min: bool = False,
                strict_max: bool = False, allow_none: bool = False) -> float | None:
    """Return ``value`` as a finite ``float`` after checking its type and range."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r}).")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if min_value is not None and (value <= min_value if strict_min else value < min_value):
        op = ">" if strict_min else ">="
        raise ValueError(f"{name} must be {op} {min_value}, got {value}.")
    if max_value is not None and (value >= max_value if strict_max else value > max_value):
        op = "<" if strict_max else "<="
        raise ValueError(f"{name} must be {op} {max_value}, got {value}.")
    return value


def check_array(name: str, value: Any, *, ndim: int | tuple[int, ...] | None = None,
                shape: tuple[int | None, ...] | None = None, allow_nan: bool = False,
                dtype: Any = np.float64) -> np.ndarray:
    """Convert ``value`` to a numpy array and check its dimensions, shape and finiteness.

    ``shape`` entries that are ``None`` are not checked.
    """
    if isinstance(value, str) or value is None:
        raise TypeError(f"{name} must be array-like, got {type(value).__name__} ({value!r}).")
    if hasattr(value, "toarray") and hasattr(value, "nnz"):  # scipy.sparse
        raise TypeError(f"{name} is a sparse matrix; sparse input is not supported: pass a "
                        "dense array (value.toarray()).")
    try:
        if hasattr(value, "detach"):  # torch tensor
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
    except Exception as err:  # pragma: no cover - numpy raises many types here
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}.") from err
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} holds complex numbers: Complex data not supported.")
    if arr.dtype == object:  # numbers stored as objects convert; anything else is a TypeError
        arr = arr.astype(np.float64)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got an array of dtype {arr.dtype}.")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if ndim is not None:
        ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in ndims:
            want = " or ".join(str(n) for n in ndims)
            hint = (" Reshape your data: one channel's time series is x[:, None], one "
                    "trial of several channels is (time, channels)." if arr.ndim == 1 else "")
            raise ValueError(f"{name} must have {want} dimension(s), got shape "
                             f"{arr.shape}.{hint}")
    if shape is not None:
        if arr.ndim != len(shape) or any(s is not None and s != a
                                         for s, a in zip(shape, arr.shape, strict=True)):
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}, got {arr.shape}.")
    if not allow_nan and np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s); "
                         "remove or interpolate them first.")
    return arr


def check_random_state(seed: Any) -> np.random.Generator:
    """Turn ``None``, an int or a Generator into a :class:`numpy.random.Generator`."""
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.Generator):
        return seed
    raise TypeError(f"random_state must be None, an int or a numpy Generator, "
                    f"got {type(seed).__name__} ({seed!r}).")
