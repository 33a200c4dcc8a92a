"""Decoding behaviour from latents (or rates), and reading behaviour from NWB files.

- :func:`decode_behavior`: cross-validated ridge regression from latents (trials, time, R)
  to behaviour (trials, time, D), folds split by trials; R² per behaviour dimension.
- :func:`read_behavior` (from :mod:`nwb_lrnn.io.behavior`, re-exported here): a TimeSeries /
  SpatialSeries of an NWB file resampled to the bins of a :class:`~nwb_lrnn.data.BinnedData`,
  so that latents of data read with :func:`~nwb_lrnn.io.read_nwb` can be decoded against e.g.
  hand position or velocity.

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

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validate import check_array, check_float, check_int
from ..io.behavior import read_behavior  # it lived here before; reading belongs to io

__all__ = ["decode_behavior", "read_behavior"]


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

