"""The paper's measures of a fit, under their usual names.

- :func:`dstsp`: D_stsp, the KL divergence between the state-space distributions of data and
  generated data (Gaussian mixtures placed on the points, Monte Carlo; or histograms in low
  dimension).
- :func:`hellinger_spectrum`: D_H, the Hellinger distance between smoothed, normalised power
  spectra, averaged over channels.
- :func:`bits_per_spike`: co-bps of the Neural Latents Benchmark (nlb_tools' definition).
- :func:`co_bps`, :func:`fp_bps`, :func:`psth_r2`, :func:`velocity_r2`: the Neural Latents
  Benchmark's metrics under nlb_tools' names.
- :func:`spike_statistics`, :func:`compare_spike_statistics`: rates, Fano factors, pairwise
  correlations, population rates and ISIs of recorded vs generated spikes.

All take arrays shaped (time, channels) or (trials, time, channels) (trials are concatenated
in time for D_stsp, and the spectra are averaged over trials for D_H), and work in chunks so
that memory stays bounded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import gammaln, logsumexp

from ._validate import check_array, check_float, check_int, check_option, check_random_state

logger = logging.getLogger(__name__)

__all__ = ["bits_per_spike", "co_bps", "compare_spike_statistics", "dstsp", "eeg_scores",
           "fp_bps", "hann_smooth", "hellinger_spectrum", "poisson_nll", "psth_r2",
           "spike_statistics", "velocity_r2"]


def _as_2d(name: str, x) -> np.ndarray:
    arr = check_array(name, x, ndim=(1, 2, 3))
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim == 3:
        arr = arr.reshape(-1, arr.shape[-1])
    return arr


def _gmm_logpdf(points: np.ndarray, centres: np.ndarray, sigma: float,
                chunk: int) -> np.ndarray:
    """log of the equal-weight mixture of N(centre, σ² I) at each point, (n_points,)."""
    n, d = points.shape
    c2 = (centres * centres).sum(1)
    out = np.empty(n)
    for s in range(0, n, chunk):
        p = points[s:s + chunk]
        d2 = (p * p).sum(1)[:, None] + c2[None, :] - 2.0 * p @ centres.T
        np.maximum(d2, 0.0, out=d2)
        out[s:s + chunk] = logsumexp(-0.5 * d2 / sigma**2, axis=1)
    return out - math.log(len(centres)) - 0.5 * d * math.log(2 * math.pi * sigma**2)


def _underflows_float32(points: np.ndarray, centres: np.ndarray, sigma: float,
                        chunk: int) -> np.ndarray:
    """Whether the mixture density at each point is exactly 0 when computed in float32.

    The density is formed as in the paper's evaluation code: the mean over centres of
    exp(-d²/2σ²) / σ^D, all in single precision, so it is 0 once every centre is further than
    about sqrt(2·94) σ away (the sum of denormals divided by the number of centres rounds to 0).
    """
    p32, c32 = points.astype(np.float32), centres.astype(np.float32)
    c2 = (c32 * c32).sum(1)
    scale = np.float32(sigma) ** np.float32(points.shape[1])
    out = np.empty(len(points), dtype=bool)
    with np.errstate(under="ignore", over="ignore"):
        for s in range(0, len(points), chunk):
            p = p32[s:s + chunk]
            d2 = (p * p).sum(1)[:, None] + c2[None, :] - np.float32(2.0) * (p @ c32.T)
            np.maximum(d2, np.float32(0.0), out=d2)
            dens = np.exp(np.float32(-0.5) * d2 / np.float32(sigma**2)) / scale
            out[s:s + chunk] = dens.sum(1, dtype=np.float32) / np.float32(len(centres)) == 0
    return out


# the paper's D_stsp evaluation uses at most this many time steps; draws are scored in chunks
_DSTSP_MAX_TIME = 10_000
_DSTSP_CHUNK = 128


def dstsp(x_true, x_gen, *, method: str = "gmm", sigma: float = 1.0, n_samples: int = 1000,
          max_time: int = _DSTSP_MAX_TIME, n_bins: int = 30, random_state=None,
          chunk_size: int = _DSTSP_CHUNK, drop_underflow: bool = False) -> float:
    """D_stsp: KL(p_true ‖ p_gen) between the state-space distributions of two data sets.

    Parameters
    ----------
    x_true, x_gen : ndarray, shape (time, channels) or (trials, time, channels)
        Recorded and generated data (same channels).
    method : {'gmm', 'binned'}
        'gmm' (the paper's for EEG): a Gaussian of SD ``sigma`` on each of the first
        ``max_time`` points of each set; KL estimated from ``n_samples`` draws of p_true.
        'binned': histograms with ``n_bins`` per dimension over the range of ``x_true``
        (for 1–3 channels), with add-one smoothing.
    sigma : float
        Kernel SD (the paper: 1, on z-scored data).
    n_samples : int
        Monte Carlo draws (the paper: 1000).
    max_time : int
        Points used from each set (the paper: 10 000).
    random_state : int | Generator | None
    chunk_size : int
        Draws evaluated at a time (bounds memory to chunk_size × max_time floats).
    drop_underflow : bool
        False (default): every draw counts; densities are computed exactly (log-sum-exp in
        float64). True: compute the estimate the way the paper's evaluation code does
        (mackelab/smc_rnns ``evaluation/kl_Gauss.py``), which forms the two densities in
        float32 and leaves out the draws where either one is exactly 0 — draws further than
        about 13.7 σ from every generated point. Those draws carry the largest log ratios,
        so the estimate is lower whenever the generated data miss part of the recorded
        state space. Use True to compare with the published figures (Table 1), False
        otherwise. 'gmm' only.

    Returns
    -------
    float (nats; 0 for identical distributions; NaN if ``drop_underflow`` leaves no draw)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 3))
    >>> dstsp(x, x + 3.0, random_state=0) > dstsp(x, rng.normal(size=(2000, 3)), random_state=0)
    True
    """
    a, b = _paired_2d(x_true, x_gen)
    method = check_option("method", method, ("gmm", "binned"))
    if method == "binned":
        return _dstsp_binned(a, b, check_int("n_bins", n_bins, min_value=2))
    sigma = check_float("sigma", sigma, min_value=0.0, strict_min=True)
    n_samples = check_int("n_samples", n_samples, min_value=1)
    max_time = check_int("max_time", max_time, min_value=1)
    chunk = check_int("chunk_size", chunk_size, min_value=1)
    log_ratio, keep = _gmm_log_ratios(a, b, sigma=sigma, n_samples=n_samples,
                                      max_time=max_time, rng=check_random_state(random_state),
                                      chunk=chunk, underflow=bool(drop_underflow))
    return _mean_kept(log_ratio, keep)


def _paired_2d(x_true, x_gen) -> tuple[np.ndarray, np.ndarray]:
    """Both data sets as (time, channels) arrays with the same number of channels."""
    a, b = _as_2d("x_true", x_true), _as_2d("x_gen", x_gen)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x_true and x_gen must have the same number of channels, got "
                         f"{a.shape[1]} and {b.shape[1]}.")
    return a, b


def _gmm_log_ratios(a: np.ndarray, b: np.ndarray, *, sigma: float, n_samples: int,
                    max_time: int, rng: np.random.Generator, chunk: int,
                    underflow: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """log p_true − log p_gen at ``n_samples`` draws of p_true (the 'gmm' D_stsp), and, with
    ``underflow``, which draws the paper's float32 evaluation keeps (else None)."""
    a, b = a[:max_time].astype(np.float64), b[:max_time].astype(np.float64)
    idx = rng.integers(len(a), size=n_samples)
    draws = a[idx] + sigma * rng.standard_normal((n_samples, a.shape[1]))
    log_ratio = _gmm_logpdf(draws, a, sigma, chunk) - _gmm_logpdf(draws, b, sigma, chunk)
    keep = None
    if underflow:
        keep = ~(_underflows_float32(draws, a, sigma, chunk)
                 | _underflows_float32(draws, b, sigma, chunk))
    return log_ratio, keep


def _mean_kept(log_ratio: np.ndarray, keep: np.ndarray | None) -> float:
    """Mean log ratio over all draws (``keep`` None) or the kept ones (NaN if none is)."""
    if keep is None:
        return float(np.mean(log_ratio))
    return float(np.mean(log_ratio[keep])) if keep.any() else float("nan")


def _dstsp_binned(a: np.ndarray, b: np.ndarray, n_bins: int) -> float:
    d = a.shape[1]
    if d > 3:
        raise ValueError(f"method='binned' is for 1–3 channels (histograms of n_bins^d "
                         f"cells); got {d} channels: use method='gmm'.")
    lo, hi = a.min(0), a.max(0)
    pad = 0.1 * (hi - lo + 1e-12)
    edges = [np.linspace(lo[i] - pad[i], hi[i] + pad[i], n_bins + 1) for i in range(d)]
    p, _ = np.histogramdd(a, bins=edges)
    q, _ = np.histogramdd(np.clip(b, lo - pad, hi + pad), bins=edges)
    p = (p.ravel() + 1.0) / (p.sum() + p.size)
    q = (q.ravel() + 1.0) / (q.sum() + q.size)
    return float(np.sum(p * np.log(p / q)))


def _spectra(x: np.ndarray, smoothing: float, freq_cutoff: int | None) -> np.ndarray:
    """Normalised, smoothed power spectrum per channel: (n_freq, channels)."""
    xs = (x - x.mean(0)) / (x.std(0) + 1e-12)
    ps = np.abs(np.fft.rfft(xs, axis=0)) ** 2
    if smoothing > 0:
        ps = gaussian_filter1d(ps, smoothing, axis=0)
    if freq_cutoff is not None:
        ps = ps[:freq_cutoff]
    return ps / ps.sum(0, keepdims=True)


def hellinger_spectrum(x_true, x_gen, *, smoothing: float = 20.0,
                       freq_cutoff: int | None = None, per_channel: bool = False):
    """D_H: Hellinger distance between smoothed power spectra, averaged over channels.

    Each channel is z-scored, its power spectrum |rfft|² smoothed with a Gaussian of SD
    ``smoothing`` frequency bins, cut to the first ``freq_cutoff`` bins, and normalised to sum
    to one; D_H = mean over channels of sqrt(1 − Σ sqrt(p q)) (in [0, 1]).

    Parameters
    ----------
    x_true, x_gen : ndarray, shape (time, channels) or (trials, time, channels)
        Spectra of several trials are averaged before the comparison. Lengths may differ;
        the longer set is cut to the shorter length so the frequency bins match.
    smoothing : float
        Gaussian SD in frequency bins (the paper: 20 for EEG).
    freq_cutoff : int, optional
        Number of frequency bins kept.
    per_channel : bool
        Return the distance of every channel instead of the mean.

    Returns
    -------
    float, or ndarray (channels,)
    """
    smoothing = check_float("smoothing", smoothing, min_value=0.0)
    check_int("freq_cutoff", freq_cutoff, min_value=1, allow_none=True)
    a = check_array("x_true", x_true, ndim=(1, 2, 3))
    b = check_array("x_gen", x_gen, ndim=(1, 2, 3))
    a = a[None, :, None] if a.ndim == 1 else (a[None] if a.ndim == 2 else a)
    b = b[None, :, None] if b.ndim == 1 else (b[None] if b.ndim == 2 else b)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"x_true and x_gen must have the same number of channels, got "
                         f"{a.shape[-1]} and {b.shape[-1]}.")
    n = min(a.shape[1], b.shape[1])
    p = np.mean([_spectra(t[:n], smoothing, freq_cutoff) for t in a], axis=0)
    q = np.mean([_spectra(t[:n], smoothing, freq_cutoff) for t in b], axis=0)
    bc = np.sqrt(p * q).sum(0)
    h = np.sqrt(np.clip(1.0 - bc, 0.0, None))
    return h if per_channel else float(h.mean())


def hann_smooth(x, width: int = 15) -> np.ndarray:
    """Smooth along time with a normalised Hann window of ``width`` samples (same length).

    Parameters
    ----------
    x : ndarray, shape (time, channels) or (time,)
    width : int
    """
    arr = check_array("x", x, ndim=(1, 2))
    width = check_int("width", width, min_value=1)
    w = np.hanning(width + 2)[1:-1]
    w /= w.sum()
    from scipy.ndimage import convolve1d

    return convolve1d(arr, w, axis=0, mode="nearest")


def poisson_nll(rates, spikes) -> float:
    """Σ rates − spikes·log(rates) + log(spikes!) (NaN entries ignored)."""
    r = np.asarray(rates, dtype=float)
    s = np.asarray(spikes, dtype=float)
    if r.shape != s.shape:
        raise ValueError(f"rates and spikes must have the same shape, got {r.shape} and "
                         f"{s.shape}.")
    if np.any(r[np.isfinite(r)] < 0):
        raise ValueError("rates must be non-negative (expected counts per bin).")
    r = np.clip(r, 1e-9, None)
    return float(np.nansum(r - s * np.log(r) + gammaln(s + 1.0)))


def bits_per_spike(rates, spikes) -> float:
    """co-bps (nlb_tools): log-likelihood gain over a per-neuron mean-rate model, in bits
    per spike.

    Parameters
    ----------
    rates : ndarray, shape (trials, time, neurons)
        Predicted expected counts per bin.
    spikes : ndarray, same shape
        Observed counts.

    Returns
    -------
    float
    """
    s = np.asarray(spikes, dtype=float)
    null = np.broadcast_to(np.nanmean(s, axis=tuple(range(s.ndim - 1)), keepdims=True),
                           s.shape)
    total = np.nansum(s)
    if total == 0:
        raise ValueError("spikes holds no spike: bits per spike is undefined.")
    return (poisson_nll(null, s) - poisson_nll(rates, s)) / total / math.log(2)


# ------------------------------------------------------------------------------ NLB metrics
def _expected_counts(rates, bin_size: float | None) -> np.ndarray:
    r = np.asarray(rates, dtype=float)
    if bin_size is None:
        return r
    return r * check_float("bin_size", bin_size, min_value=0.0, strict_min=True)


def _as_3d_pair(rates, spikes, names=("rates", "spikes")) -> tuple[np.ndarray, np.ndarray]:
    r = check_array(names[0], rates, ndim=(2, 3), allow_nan=True)
    s = check_array(names[1], spikes, ndim=(2, 3), allow_nan=True)
    if r.shape != s.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {r.shape} "
                         f"and {s.shape}.")
    return (r[None], s[None]) if r.ndim == 2 else (r, s)


def co_bps(rates_heldout, spikes_heldout, *, bin_size: float | None = None) -> float:
    """co-bps: bits per spike of the held-out neurons (Neural Latents Benchmark).

    The Poisson log-likelihood of the held-out spikes under the predicted rates, minus that
    under each neuron's own mean rate (the null model, the mean over trials and time of its
    counts), divided by the total number of held-out spikes and by log 2:

        co-bps = [log L(λ̂) − log L(λ̄)] / (n_spikes · ln 2),
        log L(λ) = Σ_{trial, t, n} y log λ − λ − log y!

    0 for the mean-rate predictor, > 0 for a better one (the true rates give the largest
    value on average), unbounded below. Same as :func:`bits_per_spike` (nlb_tools'
    ``bits_per_spike``), with a check of the shapes.

    Parameters
    ----------
    rates_heldout : ndarray, shape (trials, time, heldout_neurons) or (time, neurons)
        Predicted expected counts per bin (or rates in Hz when ``bin_size`` is given).
    spikes_heldout : ndarray, same shape
        Observed held-out spike counts (NaN entries ignored, as in nlb_tools).
    bin_size : float, optional
        When given, ``rates_heldout`` are in spikes/s and are multiplied by ``bin_size``.

    Returns
    -------
    float (bits per spike)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lam = rng.uniform(0.05, 1.0, size=(1, 200, 5)).repeat(50, axis=0)
    >>> y = rng.poisson(lam)
    >>> co_bps(lam, y) > 0.1
    True
    >>> round(co_bps(np.broadcast_to(y.mean((0, 1)), y.shape), y), 12)
    0.0
    """
    r, s = _as_3d_pair(_expected_counts(rates_heldout, bin_size),
                       spikes_heldout, ("rates_heldout", "spikes_heldout"))
    return float(bits_per_spike(r, s))


def fp_bps(rates_forward, spikes_forward, *, bin_size: float | None = None) -> float:
    """fp-bps: forward-prediction bits per spike (Neural Latents Benchmark).

    The :func:`co_bps` formula applied to the bins that follow the observed window: the
    model's predicted rates for those future bins (of all neurons, held-in and held-out, as
    in nlb_tools) against the spikes recorded there; the null model is each neuron's mean
    count over these forward bins.

    Parameters
    ----------
    rates_forward : ndarray, shape (trials, forward_time, neurons)
        Predicted expected counts per bin for the forward bins.
    spikes_forward : ndarray, same shape
        Observed counts in the forward bins.
    bin_size : float, optional
        When given, ``rates_forward`` are in spikes/s.

    Returns
    -------
    float (bits per spike)

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> lam = rng.uniform(0.05, 1.0, size=(1, 40, 8)).repeat(100, axis=0)
    >>> fp_bps(lam, rng.poisson(lam)) > 0
    True
    """
    r, s = _as_3d_pair(_expected_counts(rates_forward, bin_size),
                       spikes_forward, ("rates_forward", "spikes_forward"))
    return float(bits_per_spike(r, s))


def _condition_groups(conditions, n_trials: int) -> list[np.ndarray]:
    """Trial indices per condition, in sorted order of the condition labels."""
    if isinstance(conditions, (list, tuple)) and conditions and all(
            isinstance(c, (list, tuple, np.ndarray)) for c in conditions):
        groups = [np.asarray(c, dtype=np.int64).ravel() for c in conditions]
        for g in groups:
            if g.size and (g.min() < 0 or g.max() >= n_trials):
                raise ValueError(f"conditions: trial index out of range for {n_trials} "
                                 "trials.")
        return [g for g in groups if g.size]
    labels = np.asarray(conditions)
    if labels.shape != (n_trials,):
        raise ValueError(f"conditions must be one label per trial (shape ({n_trials},)) or a "
                         f"list of trial-index arrays, got shape {labels.shape}.")
    _, inv = np.unique(labels.astype(str) if labels.dtype == object else labels,
                       return_inverse=True)
    return [np.flatnonzero(inv == k) for k in range(inv.max() + 1)]


def _r2_per_column(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R² = 1 − SS_res / SS_tot per column (scikit-learn's convention for constant columns:
    1 when predicted exactly, else 0)."""
    ss_res = ((true - pred) ** 2).sum(0)
    ss_tot = ((true - true.mean(0)) ** 2).sum(0)
    out = np.ones(true.shape[1])
    ok = ss_tot > 0
    out[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    out[~ok & (ss_res > 0)] = 0.0
    return out


def psth_r2(rates, spikes, conditions, *, smooth_sd: float | None = None,
            bin_size: float | None = None, per_neuron: bool = False):
    """psth R² (Neural Latents Benchmark): how well predicted rates give the condition PSTHs.

    For every condition c, the empirical PSTH is the trial average of the (optionally
    Gaussian-smoothed) spike counts of the trials in c, and the predicted PSTH the trial
    average of ``rates`` over the same trials. The PSTHs of all conditions are concatenated
    in time, giving (n_conditions·time, neurons) arrays P (empirical) and P̂ (predicted); then

        R²_n = 1 − Σ_k (P_kn − P̂_kn)² / Σ_k (P_kn − mean_k P_kn)²,   psth R² = mean_n R²_n

    (scikit-learn's ``r2_score(P, P̂)`` with uniform averaging over neurons, as nlb_tools).

    Parameters
    ----------
    rates : ndarray, shape (trials, time, neurons)
        Predicted expected counts per bin (spikes/s when ``bin_size`` is given).
    spikes : ndarray, same shape
        Observed counts.
    conditions : array-like, shape (trials,), or list of arrays of trial indices
        The condition label of every trial (any hashable values), or the trials of every
        condition.
    smooth_sd : float, optional
        SD in bins of a Gaussian kernel applied to the spikes along time before averaging
        (nlb_tools smooths the spikes that define the true PSTH; e.g. 50 ms / bin size).
    bin_size : float, optional
        When given, ``rates`` are in spikes/s.
    per_neuron : bool
        Return R²_n of every neuron instead of the mean.

    Returns
    -------
    float, or ndarray (neurons,)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> cond = np.repeat([0, 1], 20)
    >>> lam = np.where(cond[:, None, None] == 0, 0.2, 0.8) * np.ones((40, 30, 4))
    >>> psth_r2(lam, lam, cond)
    1.0
    """
    r, s = _as_3d_pair(_expected_counts(rates, bin_size), spikes)
    if smooth_sd is not None:
        sd = check_float("smooth_sd", smooth_sd, min_value=0.0)
        if sd > 0:
            s = gaussian_filter1d(s, sd, axis=1, mode="nearest")
    groups = _condition_groups(conditions, r.shape[0])
    true = np.concatenate([np.nanmean(s[g], axis=0) for g in groups], axis=0)
    pred = np.concatenate([np.nanmean(r[g], axis=0) for g in groups], axis=0)
    r2 = _r2_per_column(true, pred)
    return r2 if per_neuron else float(r2.mean())


def velocity_r2(rates, velocity, *, alpha: float | Sequence[float] = 1.0, cv: int = 5,
                lag: int = 0, random_state=None) -> float:
    """vel R² (Neural Latents Benchmark): ridge decoding of hand velocity from rates.

    A ridge regression v_t ≈ W r_{t−lag} + b is fitted on the trials of ``cv − 1`` folds and
    predicts the held-out fold (folds split by trials, so no trial is in both); R² is computed
    per velocity dimension on the pooled out-of-fold predictions and averaged over the
    dimensions (``r2_score`` with uniform averaging, as nlb_tools). nlb_tools fits on the
    training split and scores the test split; cross-validation does the same within one set.

    Parameters
    ----------
    rates : ndarray, shape (trials, time, neurons) or (time, neurons)
        Predicted rates (or any features: latents, smoothed spikes).
    velocity : ndarray, shape (trials, time, D) or (trials, time)
        Behaviour to decode (e.g. hand velocity, D = 2).
    alpha : float or sequence of floats
        Ridge penalty; a sequence picks the best value by an inner cross-validation on each
        training fold (as nlb_tools' grid search).
    cv : int
        Number of folds (≤ trials; with a single trial, contiguous blocks of time).
    lag : int
        Bins by which the behaviour lags the rates.
    random_state : int, optional
        Shuffles the trials before splitting (default: no shuffling).

    Returns
    -------
    float

    Raises
    ------
    ImportError
        scikit-learn is not installed.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = rng.poisson(2.0, size=(20, 50, 10)).astype(float)
    >>> v = r @ rng.normal(size=(10, 2))
    >>> velocity_r2(r, v) > 0.99
    True
    """
    from .analysis.decoding import decode_behavior

    return decode_behavior(rates, velocity, alpha=alpha, cv=cv, lag=lag,
                           random_state=random_state)["mean_r2"]


# ------------------------------------------------------------------------ spike statistics
def _counts_3d(name: str, counts) -> np.ndarray:
    c = getattr(counts, "values", counts)
    arr = check_array(name, c, ndim=(2, 3))
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative spike counts.")
    return arr[None] if arr.ndim == 2 else arr


def _isi_runs(counts: np.ndarray, bin_size: float):
    """Approximate inter-spike intervals per neuron as (values, multiplicities), in time order.

    The k spikes of a bin are placed evenly inside it, at t_bin + (j + 1/2)/k · Δ; intervals are
    taken within trials only. A bin with k spikes holds k − 1 intervals of Δ/k; between two
    non-empty bins i < j lies one interval of (j − i − 1 + 1/(2 k_i) + 1/(2 k_j)) · Δ. Memory
    is O(non-empty bins) whatever the counts (a diverged model's 10⁹ spikes per bin included).
    """
    n_trials, _, n_neurons = counts.shape
    out = []
    for n in range(n_neurons):
        vals, mult = [], []
        for tr in range(n_trials):
            k = np.rint(counts[tr, :, n])
            nz = np.flatnonzero(k)
            if nz.size == 0:
                continue
            kk = k[nz]
            v = np.empty(2 * nz.size - 1)
            m = np.empty(2 * nz.size - 1)
            v[0::2] = bin_size / kk
            m[0::2] = kk - 1
            v[1::2] = (np.diff(nz) - 1 + 0.5 / kk[:-1] + 0.5 / kk[1:]) * bin_size
            m[1::2] = 1
            keep = m > 0
            vals.append(v[keep])
            mult.append(m[keep])
        out.append((np.concatenate(vals), np.concatenate(mult)) if vals
                   else (np.empty(0), np.empty(0)))
    return out


def _expand_runs(values: np.ndarray, mult: np.ndarray, max_n: int) -> tuple[np.ndarray, bool]:
    """The intervals themselves, in time order; at most ``max_n`` of them, evenly spaced."""
    total = float(mult.sum())
    if total <= max_n:
        return np.repeat(values, mult.astype(np.int64)), False
    pos = np.linspace(0.0, total - 1.0, max_n)
    return values[np.searchsorted(np.cumsum(mult), pos, side="right")], True


MAX_ISIS = 100_000
"""Intervals per neuron that ``spike_statistics`` returns at most (an even subsample beyond);
the ISI CV and histogram are computed from all of them."""


def spike_statistics(counts, bin_size: float, *, n_hist_bins: int = 30,
                     max_isis: int = MAX_ISIS) -> dict:
    """Single-neuron and population statistics of binned spike counts.

    Parameters
    ----------
    counts : ndarray, shape (trials, time, neurons) or (time, neurons), or BinnedData
        Spike counts per bin.
    bin_size : float
        Bin width in seconds.
    n_hist_bins : int
        Bins of the population-rate and ISI histograms.
    max_isis : int
        At most this many ISIs per neuron are returned under ``isi`` (evenly spaced in time
        beyond; ``isi_subsampled`` says for which neurons). ``isi_cv`` and ``isi_hist`` always
        use every interval, in memory that does not grow with the counts.

    Returns
    -------
    dict with
        ``mean_rate`` (neurons,)
            Mean count per bin / bin_size, in spikes/s.
        ``fano`` (neurons,)
            Fano factor of the counts per bin, Var(y) / E(y) (NaN for a silent neuron).
        ``correlation`` (neurons, neurons)
            Pearson correlation of the counts per bin over trials and time (NaN rows and
            columns for neurons with constant counts; diagonal 1 otherwise).
        ``population_rate`` (trials·time,)
            Σ_n y_n / (neurons · bin_size): mean rate of the population per bin, spikes/s.
        ``population_rate_hist`` (density (n_hist_bins,), edges (n_hist_bins + 1,))
            Histogram (density) of ``population_rate``.
        ``isi`` list of ndarray
            Approximate ISIs per neuron in s: from binned counts, the k spikes of a bin are
            placed evenly inside it (at t + (j + ½)/k · Δ), intervals within trials only,
            so ISIs below one bin are only resolved as Δ/k.
        ``isi_subsampled`` (neurons,) bool
            True where ``isi`` holds a subsample (more than ``max_isis`` intervals).
        ``isi_cv`` (neurons,)
            Coefficient of variation of each neuron's ISIs (NaN with < 2 ISIs).
        ``isi_hist`` (density (n_hist_bins,), edges)
            Histogram (density) of all ISIs pooled, log-spaced edges from Δ/10 to the longest.

    Examples
    --------
    >>> y = np.random.default_rng(0).poisson(0.5, size=(10, 400, 3))
    >>> st = spike_statistics(y, 0.01)
    >>> np.round(st["mean_rate"] / 50, 1).tolist(), np.round(st["fano"], 1).tolist()
    ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    """
    return _spike_statistics(counts, bin_size, n_hist_bins=n_hist_bins, max_isis=max_isis)


def _spike_statistics(counts, bin_size: float, *, n_hist_bins: int = 30,
                      max_isis: int = MAX_ISIS, say_subsampled: bool = True) -> dict:
    bin_size = check_float("bin_size", bin_size, min_value=0.0, strict_min=True)
    n_hist_bins = check_int("n_hist_bins", n_hist_bins, min_value=1)
    max_isis = check_int("max_isis", max_isis, min_value=1)
    c = _counts_3d("counts", counts)
    flat = c.reshape(-1, c.shape[-1])
    mean = flat.mean(0)
    var = flat.var(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fano = np.where(mean > 0, var / np.where(mean > 0, mean, 1.0), np.nan)
        sd = np.sqrt(var)
        z = (flat - mean) / np.where(sd > 0, sd, 1.0)
        corr = z.T @ z / len(flat)
    const = sd == 0
    corr[const, :] = np.nan
    corr[:, const] = np.nan
    np.fill_diagonal(corr, np.where(const, np.nan, 1.0))
    pop = flat.sum(1) / (c.shape[-1] * bin_size)
    hist = np.histogram(pop, bins=n_hist_bins, density=pop.max() > pop.min())
    runs = _isi_runs(c, bin_size)
    isi_cv = np.full(len(runs), np.nan)
    for i, (v, m) in enumerate(runs):
        w = m.sum()
        if w > 1:
            mu = (v * m).sum() / w
            if mu > 0:
                isi_cv[i] = np.sqrt((m * (v - mu) ** 2).sum() / w) / mu
    expanded = [_expand_runs(v, m, max_isis) for v, m in runs]
    isi = [e[0] for e in expanded]
    isi_sub = np.array([e[1] for e in expanded], dtype=bool)
    if say_subsampled and isi_sub.any():
        logger.warning("spike_statistics: %d of %d neurons have more than max_isis=%d ISIs; "
                       "'isi' holds an even subsample of those (the ISI CV and histogram use "
                       "all of them)", int(isi_sub.sum()), isi_sub.size, max_isis)
    vals = np.concatenate([v for v, _ in runs]) if runs else np.empty(0)
    mults = np.concatenate([m for _, m in runs]) if runs else np.empty(0)
    if vals.size:
        edges = np.geomspace(bin_size / 10, max(vals.max(), bin_size) * 1.0001,
                             n_hist_bins + 1)
        isi_hist = np.histogram(vals, bins=edges, weights=mults, density=True)
    else:
        isi_hist = (np.zeros(n_hist_bins), np.geomspace(bin_size / 10, bin_size,
                                                        n_hist_bins + 1))
    return {"mean_rate": mean / bin_size, "fano": fano, "correlation": corr,
            "population_rate": pop, "population_rate_hist": hist, "isi": isi,
            "isi_subsampled": isi_sub, "isi_cv": isi_cv, "isi_hist": isi_hist}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def compare_spike_statistics(data, generated, *, bin_size: float | None = None) -> dict:
    """Summary numbers comparing the spike statistics of recorded and generated data.

    Parameters
    ----------
    data, generated : BinnedData or ndarray, shape (trials, time, neurons)
        Counts with the same neurons (the number of trials and bins may differ).
    bin_size : float, optional
        Required for arrays; default the ``bin_size`` of ``data`` (BinnedData).

    Returns
    -------
    dict of float
        ``rate_correlation``: Pearson r of the neurons' mean rates (data vs generated);
        ``rate_ratio``: mean generated rate / mean data rate;
        ``correlation_similarity``: Pearson r of the off-diagonal pairwise correlations;
        ``fano_ratio``: mean Fano factor of generated / data (1 is a match);
        ``population_rate_ks``: two-sample Kolmogorov–Smirnov statistic between the
        population-rate distributions (0 is a match, 1 disjoint);
        ``isi_cv_ratio``: mean ISI CV of generated / data.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lam = rng.uniform(0.1, 1.0, size=5)
    >>> out = compare_spike_statistics(rng.poisson(lam, size=(20, 300, 5)),
    ...                                rng.poisson(lam, size=(20, 300, 5)), bin_size=0.01)
    >>> out["rate_correlation"] > 0.95, abs(out["fano_ratio"] - 1) < 0.1
    (True, True)
    """
    from scipy.stats import ks_2samp

    if bin_size is None:
        bin_size = getattr(data, "bin_size", None)
        if bin_size is None:
            raise ValueError("bin_size is required when data is an array (not BinnedData).")
    # the ISIs themselves are not needed, only their CV: none expanded, nothing to say
    a = _spike_statistics(data, bin_size, max_isis=1, say_subsampled=False)
    b = _spike_statistics(generated, bin_size, max_isis=1, say_subsampled=False)
    if a["mean_rate"].shape != b["mean_rate"].shape:
        raise ValueError(f"data and generated must have the same neurons, got "
                         f"{a['mean_rate'].size} and {b['mean_rate'].size}.")
    iu = np.triu_indices(a["mean_rate"].size, k=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "rate_correlation": _pearson(a["mean_rate"], b["mean_rate"]),
            "rate_ratio": float(b["mean_rate"].mean() / a["mean_rate"].mean()),
            "correlation_similarity": _pearson(a["correlation"][iu], b["correlation"][iu]),
            "fano_ratio": float(np.nanmean(b["fano"]) / np.nanmean(a["fano"])),
            "population_rate_ks": float(ks_2samp(a["population_rate"],
                                                 b["population_rate"]).statistic),
            "isi_cv_ratio": float(np.nanmean(b["isi_cv"]) / np.nanmean(a["isi_cv"])),
        }


def eeg_scores(estimator, data, *, n_steps: int = 10_000, burn_in: int = 2400,
               n_samples: int = 1000, hann_width: int = 15, smoothing: float = 20.0,
               random_state: int = 0) -> dict:
    """D_stsp and D_H of a fitted EEG model with the paper's evaluation settings.

    Generates ``burn_in + n_steps`` steps and drops the first ``burn_in`` (the stationary
    process), smooths the generated data with a ``hann_width``-sample Hann window and z-scores
    each channel (as the recorded data were preprocessed), then computes :func:`dstsp`
    (σ = 1, ``n_samples`` Monte Carlo samples, up to 10 000 steps) and
    :func:`hellinger_spectrum` (spectra smoothed with σ = ``smoothing``) against ``data``.

    Parameters
    ----------
    estimator : LowRankRNN
        Fitted on continuous data.
    data : BinnedData | ndarray, shape (time, channels) or (1, time, channels)
        The recorded (preprocessed) data.
    n_steps, burn_in, n_samples, hann_width, smoothing, random_state
        The paper's settings by default (Pals et al. 2024, Table 1).

    Returns
    -------
    dict with ``dstsp``, ``dstsp_published`` (the same draws scored as the paper's evaluation
    code does, ``dstsp(..., drop_underflow=True)``: compare this one with published figures),
    ``dh`` and ``finite`` (False when the generated data diverged; the scores are then NaN).

    Examples
    --------
    >>> scores = eeg_scores(est, eeg)          # doctest: +SKIP
    >>> round(scores["dstsp"], 2), round(scores["dh"], 3)   # doctest: +SKIP
    (2.3, 0.12)
    """
    values = getattr(data, "values", data)
    ref = _as_2d("data", values)
    try:
        gen = estimator.sample(1, int(n_steps), burn_in=int(burn_in),
                               random_state=random_state).values[0]
    except ValueError as err:  # the generated latents diverged
        if "diverged" not in str(err):
            raise
        return {"dstsp": float("nan"), "dstsp_published": float("nan"), "dh": float("nan"),
                "finite": False}
    gen = hann_smooth(gen, hann_width)
    sd = gen.std(0)
    gen = (gen - gen.mean(0)) / np.where(sd > 0, sd, 1.0)
    # one set of draws scored both ways (= dstsp(..., drop_underflow=False / True))
    ref, gen = _paired_2d(ref, gen)
    log_ratio, keep = _gmm_log_ratios(ref, gen, sigma=1.0,
                                      n_samples=check_int("n_samples", n_samples, min_value=1),
                                      max_time=_DSTSP_MAX_TIME,
                                      rng=check_random_state(random_state),
                                      chunk=_DSTSP_CHUNK, underflow=True)
    return {"dstsp": _mean_kept(log_ratio, None), "dstsp_published": _mean_kept(log_ratio, keep),
            "dh": float(hellinger_spectrum(ref, gen, smoothing=smoothing)), "finite": True}
