"""The paper's measures of a fit (DESIGN §5), under their usual names.

- :func:`dstsp`: D_stsp, the KL divergence between the state-space distributions of data and
  generated data (Gaussian mixtures placed on the points, Monte Carlo; or histograms in low
  dimension).
- :func:`hellinger_spectrum`: D_H, the Hellinger distance between smoothed, normalised power
  spectra, averaged over channels.
- :func:`bits_per_spike`: co-bps of the Neural Latents Benchmark (nlb_tools' definition).

All take arrays shaped (time, channels) or (trials, time, channels) (trials are concatenated
in time for D_stsp, and the spectra are averaged over trials for D_H), and work in chunks so
that memory stays bounded.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import gammaln, logsumexp

from ._validate import check_array, check_float, check_int, check_option, check_random_state

__all__ = ["bits_per_spike", "dstsp", "hann_smooth", "hellinger_spectrum", "poisson_nll"]


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


def dstsp(x_true, x_gen, *, method: str = "gmm", sigma: float = 1.0, n_samples: int = 1000,
          max_time: int = 10000, n_bins: int = 30, random_state=None,
          chunk_size: int = 128) -> float:
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

    Returns
    -------
    float (nats; 0 for identical distributions)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 3))
    >>> dstsp(x, x + 3.0, random_state=0) > dstsp(x, rng.normal(size=(2000, 3)), random_state=0)
    True
    """
    a, b = _as_2d("x_true", x_true), _as_2d("x_gen", x_gen)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x_true and x_gen must have the same number of channels, got "
                         f"{a.shape[1]} and {b.shape[1]}.")
    method = check_option("method", method, ("gmm", "binned"))
    if method == "binned":
        return _dstsp_binned(a, b, check_int("n_bins", n_bins, min_value=2))
    sigma = check_float("sigma", sigma, min_value=0.0, strict_min=True)
    n_samples = check_int("n_samples", n_samples, min_value=1)
    max_time = check_int("max_time", max_time, min_value=1)
    chunk = check_int("chunk_size", chunk_size, min_value=1)
    rng = check_random_state(random_state)
    a, b = a[:max_time].astype(np.float64), b[:max_time].astype(np.float64)
    idx = rng.integers(len(a), size=n_samples)
    draws = a[idx] + sigma * rng.standard_normal((n_samples, a.shape[1]))
    return float(np.mean(_gmm_logpdf(draws, a, sigma, chunk)
                         - _gmm_logpdf(draws, b, sigma, chunk)))


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
