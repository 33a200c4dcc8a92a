"""Figures of a fit: training curve, latents, flow field with fixed points, spectra, spikes.

Every function returns a :class:`matplotlib.figure.Figure` (nothing is shown), so it works in
scripts, notebooks and the ``nwb-lrnn report`` command alike. matplotlib is imported lazily.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_flow_field", "plot_latents", "plot_psd", "plot_spectra",
           "plot_spike_statistics", "plot_training"]

_STABILITY_STYLE = {"stable": ("o", "k", "k"), "unstable": ("o", "white", "k"),
                    "saddle": ("X", "tab:red", "k"), "marginal": ("D", "tab:orange", "k")}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_training(history, *, ax=None):
    """The VSMC bound per time step after each epoch (training and validation)."""
    plt = _plt()
    fig, ax = (plt.subplots(figsize=(5, 3.2)) if ax is None else (ax.figure, ax))
    ax.plot(np.arange(1, len(history.train_bound) + 1), history.train_bound, label="training")
    if history.val_bound:
        ax.plot(np.arange(1, len(history.val_bound) + 1), history.val_bound,
                label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("bound per time step (nats)")
    ax.set_title("Training curve")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def plot_generation_check(report: dict, *, bin_size: float = 1.0, ax=None):
    """The largest |z| of a long simulation over time, against the data's latent range.

    Parameters
    ----------
    report : dict
        From ``LowRankRNN.check_generation(..., return_trace=True)``: ``trace`` (n_time,) is
        the largest |z| over runs at each step.
    """
    plt = _plt()
    fig, ax = (plt.subplots(figsize=(8.5, 2.8)) if ax is None else (ax.figure, ax))
    trace = np.asarray(report["trace"], dtype=float)
    t = np.arange(len(trace)) * bin_size
    block = max(1, len(trace) // 2000)  # long runs: the maximum of each block of steps
    if block > 1:
        n = len(trace) // block * block
        trace = np.nanmax(trace[:n].reshape(-1, block), axis=1)
        t = t[:n:block]
    finite = np.isfinite(trace)
    ax.semilogy(t[finite], np.maximum(trace[finite], 1e-12), lw=0.7, color="C0",
                label=f"simulated, max over {report['n_trials']} runs"
                      + (f" and {block} steps" if block > 1 else ""))
    ref = report["data_max_abs_z"]
    ax.axhline(ref, color="k", lw=1, label="data (largest posterior |z|)")
    ax.axhline(report["bound_factor"] * ref, color="C3", ls="--", lw=1,
               label=f"bound ({report['bound_factor']:g}x data)")
    if report["first_step_out"] is not None:
        ax.axvline(report["first_step_out"] * bin_size, color="C3", lw=0.8)
    ax.set_xlabel("time (s)" if bin_size != 1.0 else "step")
    ax.set_ylabel("max |z|")
    ax.set_title("Long simulation: " + ("bounded" if report["stable"] else "NOT bounded"))
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def plot_latents(mean: np.ndarray, std: np.ndarray | None = None, *, bin_size: float = 1.0,
                 trial: int = 0, max_time: int | None = 2000):
    """Posterior latents of one trial with ±2 SD bands.

    Parameters
    ----------
    mean, std : ndarray, shape (trials, time, rank)
    """
    plt = _plt()
    m = mean[trial][:max_time]
    s = None if std is None else std[trial][:max_time]
    t = np.arange(len(m)) * bin_size
    R = m.shape[1]
    fig, axes = plt.subplots(R, 1, figsize=(7, 1.4 * R + 0.6), sharex=True, squeeze=False)
    for r in range(R):
        ax = axes[r, 0]
        ax.plot(t, m[:, r], color=f"C{r}", lw=1)
        if s is not None:
            ax.fill_between(t, m[:, r] - 2 * s[:, r], m[:, r] + 2 * s[:, r], color=f"C{r}",
                            alpha=0.25, lw=0)
        ax.set_ylabel(f"z{r + 1}")
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title(f"Posterior latents, trial {trial} (mean ± 2 SD)")
    fig.tight_layout()
    return fig


def plot_flow_field(estimator, *, latents: np.ndarray | None = None, fixed_points=None,
                    dims: tuple[int, int] = (0, 1), grid: int = 25,
                    limits: tuple[float, float, float, float] | None = None):
    """Phase portrait of the latent map's mean drift F(z) − z in two latent dimensions.

    Other dimensions are held at their mean over ``latents`` (or 0); with fixed points and
    rank > 2, at the coordinates of one of them (a stable one first), so the fixed points on
    the plane are zeros of the field drawn; those off the plane are drawn faint, projected.
    Fixed points are marked by stability (filled: stable, open: unstable, cross: saddle).

    Parameters
    ----------
    estimator : fitted LowRankRNN
    latents : ndarray, shape (trials, time, rank), optional
        Drawn as a trajectory and used for the plot limits.
    fixed_points : object with ``z`` (n, R) and ``stability`` (n,), optional
    """
    import torch

    plt = _plt()
    tr = estimator.model_.transition
    R = tr.rank
    i, j = dims
    ref = np.zeros(R) if latents is None else latents.reshape(-1, R).mean(0)
    fp_z = (np.asarray(fixed_points.z, dtype=float) if fixed_points is not None
            and len(fixed_points.z) else None)
    on_slice, through = None, None
    if R > 2 and fp_z is not None:
        # slice through a fixed point (a stable one first), so that the fixed points drawn
        # filled are zeros of the field shown; the others are off this plane
        kinds = [str(k) for k in fixed_points.stability]
        through = next((n for n, k in enumerate(kinds) if k == "stable"), 0)
        others_ = [k for k in range(R) if k not in (i, j)]
        ref = fp_z[through].copy()
        scale = max(1.0, float(np.abs(fp_z).max()))
        on_slice = np.all(np.abs(fp_z[:, others_] - ref[others_]) <= 1e-6 * scale, axis=1)
    if limits is None:
        if latents is not None:
            flat = latents.reshape(-1, R)
            lo, hi = np.percentile(flat, [0.5, 99.5], axis=0)
            pad = 0.2 * (hi - lo + 1e-9)
            limits = (lo[i] - pad[i], hi[i] + pad[i], lo[j] - pad[j], hi[j] + pad[j])
        else:
            limits = (-3.0, 3.0, -3.0, 3.0)
    xs = np.linspace(limits[0], limits[1], grid)
    ys = np.linspace(limits[2], limits[3], grid)
    X, Y = np.meshgrid(xs, ys)
    Z = np.tile(ref, (X.size, 1))
    Z[:, i], Z[:, j] = X.ravel(), Y.ravel()
    with torch.no_grad():
        zt = torch.as_tensor(Z, dtype=tr.U_t.dtype, device=tr.U_t.device)
        F = tr.mean(zt).cpu().numpy() - Z
    U, V = F[:, i].reshape(X.shape), F[:, j].reshape(X.shape)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    speed = np.hypot(U, V)
    ax.streamplot(xs, ys, U, V, color=speed, cmap="Greys", density=1.1, linewidth=0.8)
    if latents is not None:
        traj = latents[0][:300]
        ax.plot(traj[:, i], traj[:, j], color="C0", lw=0.8, alpha=0.8,
                label=f"posterior latents (trial 0, {len(traj)} bins)")
    if fp_z is not None:
        for n, (z, kind) in enumerate(zip(fp_z, fixed_points.stability, strict=True)):
            marker, face, edge = _STABILITY_STYLE.get(str(kind), ("s", "grey", "k"))
            off = on_slice is not None and not on_slice[n]
            ax.plot(z[i], z[j], marker=marker, mfc=face, mec=edge, ms=9, ls="none",
                    alpha=0.3 if off else 1.0,
                    label=f"{kind} (off this plane, projected)" if off else str(kind))
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        uniq = dict(zip(labels, handles, strict=True))
        ax.legend(uniq.values(), uniq.keys(), frameon=False, fontsize=8, loc="upper right")
    ax.set_xlim(limits[0], limits[1])
    ax.set_ylim(limits[2], limits[3])
    ax.set_xlabel(f"z{i + 1}")
    ax.set_ylabel(f"z{j + 1}")
    if R > 2:
        others = [k for k in range(R) if k not in (i, j)]
        held = ", ".join(f"z{k + 1} = {ref[k]:.2g}" for k in others)
        if through is not None:
            kind = str(fixed_points.stability[through])
            ax.set_title(f"Flow field in the (z{i + 1}, z{j + 1}) plane through a {kind} "
                         f"fixed point ({held});\n{int(on_slice.sum())} of {len(fp_z)} fixed "
                         "points lie on it (the others faint, projected)", fontsize=9)
        else:
            ax.set_title(f"Flow field in the (z{i + 1}, z{j + 1}) plane ({held})",
                         fontsize=10)
    else:
        ax.set_title("Flow field of the latent dynamics")
    fig.tight_layout()
    return fig


def plot_traces(x_true: np.ndarray, x_gen: np.ndarray, *, bin_size: float,
                kind: str = "continuous", channel_names=None, n_channels: int = 3,
                max_bins: int = 500, smooth_bins: int = 5):
    """Recorded against generated activity, channel by channel, on the same axes.

    The ``n_channels`` most variable channels, the first ``max_bins`` bins of the first trial
    of each; counts are shown as rates (a ``smooth_bins`` moving average, in Hz).

    Parameters
    ----------
    x_true, x_gen : ndarray, shape (trials, time, channels)
    bin_size : float
    kind : {'continuous', 'counts'}
    channel_names : sequence of str, optional
    """
    plt = _plt()
    a = np.asarray(x_true, dtype=float)
    b = np.asarray(x_gen, dtype=float)
    a = a[None] if a.ndim == 2 else a
    b = b[None] if b.ndim == 2 else b
    n_t = min(max_bins, a.shape[1], b.shape[1])
    var = np.nanvar(a.reshape(-1, a.shape[-1]), axis=0)
    chans = list(np.argsort(-var)[:max(1, min(n_channels, a.shape[-1]))])
    t = np.arange(n_t) * bin_size

    def shown(x):
        x = x[:n_t]
        if kind == "counts":
            w = np.ones(smooth_bins) / smooth_bins
            return np.convolve(x, w, mode="same") / bin_size
        return x

    fig, axes = plt.subplots(len(chans), 1, figsize=(7.5, 1.7 * len(chans) + 0.6),
                             sharex=True, squeeze=False)
    for ax, c in zip(axes[:, 0], chans, strict=True):
        ax.plot(t, shown(a[0, :, c]), color="k", lw=0.8, label="recorded")
        ax.plot(t, shown(b[0, :, c]), color="C1", lw=0.8, alpha=0.85, label="generated")
        name = channel_names[c] if channel_names is not None else f"channel {c}"
        ax.set_ylabel(f"{name}\n" + ("rate (Hz)" if kind == "counts" else "value"),
                      fontsize=8)
    axes[0, 0].legend(frameon=False, fontsize=8, loc="upper right", ncol=2)
    axes[-1, 0].set_xlabel("time in the trial (s)")
    fig.suptitle("Recorded and generated activity (the most variable channels)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_spectra(x_true: np.ndarray, x_gen: np.ndarray, *, bin_size: float,
                 channels: Any = None, smoothing: float = 20.0):
    """Power spectra (mean over channels) of data and generated data, with D_H.

    Parameters
    ----------
    x_true, x_gen : ndarray, shape (time, channels) or (trials, time, channels)
    """
    from .metrics import _spectra, hellinger_spectrum

    plt = _plt()
    a = x_true.reshape(-1, x_true.shape[-1])
    b = x_gen.reshape(-1, x_gen.shape[-1])
    n = min(len(a), len(b))
    p = _spectra(a[:n], smoothing, None).mean(1)
    q = _spectra(b[:n], smoothing, None).mean(1)
    f = np.fft.rfftfreq(n, d=bin_size)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.semilogy(f, p, label="data")
    ax.semilogy(f, q, label="generated")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("normalised power")
    ax.set_title(f"Power spectra (D_H = {hellinger_spectrum(a[:n], b[:n]):.3f})")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def plot_spike_statistics(counts_true: np.ndarray, counts_gen: np.ndarray, *,
                          bin_size: float):
    """Mean rates, pairwise correlations and population-count distributions, data vs
    generated. Arrays shaped (trials, time, neurons)."""
    plt = _plt()
    a = counts_true.reshape(-1, counts_true.shape[-1])
    b = counts_gen.reshape(-1, counts_gen.shape[-1])
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    ra, rb = a.mean(0) / bin_size, b.mean(0) / bin_size
    lim = max(ra.max(), rb.max()) * 1.05 + 1e-9
    axes[0].plot([0, lim], [0, lim], color="grey", lw=0.8)
    axes[0].plot(ra, rb, "o", ms=4)
    axes[0].set_xlabel("data rate (Hz)")
    axes[0].set_ylabel("generated rate (Hz)")
    axes[0].set_title("Mean rates")
    if a.shape[1] > 1:
        iu = np.triu_indices(a.shape[1], 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ca, cb = np.corrcoef(a.T)[iu], np.corrcoef(b.T)[iu]
        axes[1].plot([-1, 1], [-1, 1], color="grey", lw=0.8)
        axes[1].plot(ca, cb, "o", ms=3, alpha=0.6)
        m = np.nanmax(np.abs(np.concatenate([ca, cb]))) * 1.1 + 1e-3
        axes[1].set_xlim(-m, m)
        axes[1].set_ylim(-m, m)
    axes[1].set_xlabel("data correlation")
    axes[1].set_ylabel("generated correlation")
    axes[1].set_title("Pairwise correlations")
    pa, pb = a.sum(1), b.sum(1)
    bins = np.arange(0, max(pa.max(), pb.max()) + 2) - 0.5
    axes[2].hist(pa, bins=bins, density=True, alpha=0.5, label="data")
    axes[2].hist(pb, bins=bins, density=True, alpha=0.5, label="generated")
    axes[2].set_xlabel("population count per bin")
    axes[2].set_title("Population activity")
    axes[2].legend(frameon=False)
    fig.tight_layout()
    return fig


def _psd_input(x: Any, picks: Any, name: str) -> tuple[np.ndarray, list[str], float | None]:
    """(time, channels) array, channel names and sampling rate (or None) of ``x``."""
    from .data import BinnedData

    sfreq = None
    if hasattr(x, "info") and hasattr(x, "get_data"):  # MNE Raw / Epochs
        sfreq = float(x.info["sfreq"])
        names = list(x.ch_names)
        arr = np.asarray(x.get_data())  # (ch, time) or (epochs, ch, time)
        arr = arr.T if arr.ndim == 2 else np.transpose(arr, (0, 2, 1))
    elif isinstance(x, BinnedData):
        sfreq = 1.0 / x.bin_size
        names = list(x.channel_names)
        arr = x.values
    else:
        arr = np.asarray(x, dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim not in (2, 3):
            raise ValueError(f"{name} must be shaped (time, channels) or (trials, time, "
                             f"channels), got shape {arr.shape}.")
        names = [str(i) for i in range(arr.shape[-1])]
    arr = arr.reshape(-1, arr.shape[-1]) if arr.ndim == 3 else arr
    if picks is not None:
        sel = [picks] if isinstance(picks, (str, int, np.integer)) else list(picks)
        idx = []
        for p in sel:
            if isinstance(p, str):
                if p not in names:
                    raise ValueError(f"picks: channel {p!r} is not in {name} (channels: "
                                     f"{names[:10]}{' ...' if len(names) > 10 else ''}).")
                idx.append(names.index(p))
            else:
                idx.append(int(p))
        arr, names = arr[:, idx], [names[i] for i in idx]
    return arr, names, sfreq


def plot_psd(data: Any, generated: Any, *, sfreq: float | None = None, picks: Any = None,
             ax: Any = None, nperseg: int | None = None):
    """Welch power spectral density of recorded vs generated data (mean ± SD over channels).

    Parameters
    ----------
    data, generated : ndarray, shape (time, channels) or (trials, time, channels) |
            BinnedData | mne.io.Raw | mne.Epochs
        The same channels in both (trials are concatenated in time; NaN samples dropped).
    sfreq : float, optional
        Sampling rate in Hz; default: from a BinnedData/MNE input, else 1.
    picks : list of int or str, optional
        Channels to show (indices, or names for BinnedData/MNE input); default all.
    ax : matplotlib Axes, optional
        Axes to draw into (default: a new figure).
    nperseg : int, optional
        Welch segment length (default: ``min(256, n_times)``).

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> fig = plot_psd(rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4)), sfreq=160.0)
    >>> type(fig).__name__
    'Figure'
    """
    from scipy.signal import welch

    plt = _plt()
    a, names_a, sf_a = _psd_input(data, picks, "data")
    b, _, sf_b = _psd_input(generated, picks, "generated")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"data and generated must have the same channels, got "
                         f"{a.shape[1]} and {b.shape[1]}.")
    fs = float(sfreq if sfreq is not None else (sf_a or sf_b or 1.0))
    a = a[np.isfinite(a).all(axis=1)]
    b = b[np.isfinite(b).all(axis=1)]
    n = min(len(a), len(b))
    seg = min(256, n) if nperseg is None else min(int(nperseg), n)
    fig, ax = (plt.subplots(figsize=(5.2, 3.4)) if ax is None else (ax.figure, ax))
    for x, label in ((a, "data"), (b, "generated")):
        f, p = welch(x, fs=fs, nperseg=seg, axis=0)
        logp = np.log10(np.maximum(p, 1e-300))
        m, s = logp.mean(1), logp.std(1)
        line, = ax.plot(f, 10 ** m, label=label)
        ax.fill_between(f, 10 ** (m - s), 10 ** (m + s), color=line.get_color(), alpha=0.2,
                        lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("frequency (Hz)" if sfreq is not None or sf_a or sf_b
                  else "frequency (cycles / bin)")
    ax.set_ylabel("power spectral density")
    n_ch = a.shape[1]
    ax.set_title(f"Welch PSD, {n_ch} channel{'s' if n_ch > 1 else ''}"
                 + (f" ({names_a[0]})" if n_ch == 1 else ""))
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig
