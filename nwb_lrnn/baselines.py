"""Simple models to judge a fit against, on the same split of the same data.

A low-rank RNN is worth its cost only when it beats these. All are fitted in closed form or with
scikit-learn (no torch), take the package's data layout (trials, time, channels) and share one
small interface: ``fit(data)``, ``log_likelihood(data)`` (held-out log-likelihood per time bin,
summed over channels: a measure of dynamics that an iid model cannot fake once the data are
autocorrelated), ``predict(data, k)`` (k-step-ahead prediction of the observations from the past)
and ``sample(n_trials, n_time, ...)`` (surrogate data for D_stsp, D_H and spike statistics).

- :class:`IIDGaussian`: every bin an independent draw from the data's mean and covariance (what
  D_stsp alone cannot tell from a good model).
- :class:`VAR`: a vector autoregression of order p, least squares (with a small ridge), Gaussian
  residuals with a full covariance.
- :class:`PoissonGLM`: spike counts, log-rate linear in the last p bins of every neuron's
  (log1p) counts, one scikit-learn ``PoissonRegressor`` per neuron; ``p=0`` is a constant
  rate per neuron.
- :func:`pca_latents`, :func:`fa_latents`: the latents of PCA and factor analysis of smoothed
  counts, the usual reference for decoding behaviour from latents; :func:`compare_decoding`
  decodes behaviour from them and from a fit's latents with the same decoder.

:func:`compare_to_baselines` puts a fitted :class:`~nwb_lrnn.LowRankRNN` and the baselines side by
side on held-out data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validate import check_int, check_random_state

__all__ = [
    "VAR",
    "IIDGaussian",
    "PoissonGLM",
    "compare_decoding",
    "compare_to_baselines",
    "decoding_metrics",
    "fa_latents",
    "format_comparison",
    "format_decoding",
    "pca_latents",
]


def _values(data: Any, name: str = "data") -> tuple[np.ndarray, float | None, str | None]:
    """(trials, time, channels) float array, bin size and kind of BinnedData or an array."""
    vals = getattr(data, "values", data)
    arr = np.asarray(vals, dtype=float)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{name} must be shaped (trials, time, channels) or (time, channels), "
                         f"got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (NaN bins are not supported by the baselines).")
    return arr, getattr(data, "bin_size", None), getattr(data, "kind", None)


def _lagged(x: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Design [x_{t-1}, ..., x_{t-p}, 1] and targets x_t over all trials, t >= p."""
    n, T, C = x.shape
    if T <= p:
        raise ValueError(f"sequences of {T} bins are too short for order p={p}.")
    cols = [x[:, p - j:T - j].reshape(-1, C) for j in range(1, p + 1)]
    X = np.concatenate([*cols, np.ones((n * (T - p), 1))], axis=1)
    return X, x[:, p:].reshape(-1, C)


class IIDGaussian:
    """Independent Gaussian bins with the data's mean and full covariance.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(2, 500, 3))
    >>> round(IIDGaussian().fit(x).log_likelihood(x) / 3, 1)
    -1.4
    """

    def fit(self, data: Any) -> IIDGaussian:
        x, _, _ = _values(data)
        flat = x.reshape(-1, x.shape[-1])
        self.mean_ = flat.mean(0)
        self.cov_ = _shrunk_cov(flat - self.mean_)
        return self

    def log_likelihood(self, data: Any) -> float:
        """Mean log density per time bin (summed over channels), nats."""
        x, _, _ = _values(data)
        return float(_gauss_logpdf(x.reshape(-1, x.shape[-1]) - self.mean_, self.cov_).mean())

    def predict(self, data: Any, k: int = 1) -> np.ndarray:
        x, _, _ = _values(data)
        return np.broadcast_to(self.mean_, x.shape).copy()

    def sample(self, n_trials: int, n_time: int, *, burn_in: int = 0,
               random_state: Any = None) -> np.ndarray:
        rng = check_random_state(random_state)
        return rng.multivariate_normal(self.mean_, self.cov_, size=(n_trials, n_time))


def _shrunk_cov(resid: np.ndarray) -> np.ndarray:
    """Covariance of zero-mean residuals: each channel's variance, and the Ledoit-Wolf
    (scikit-learn) shrinkage of their correlation matrix. The sample covariance of correlated
    channels (EEG against a common reference) can be near singular: on a held-out eegmat
    recording it gave VAR(1) a log-likelihood of -1.5e6 per bin, the shrunk one -2.9."""
    from sklearn.covariance import ledoit_wolf

    sd = np.sqrt((resid ** 2).mean(0))
    sd = np.where(sd > 0, sd, 1e-12)
    corr, _ = ledoit_wolf(resid / sd, assume_centered=True)
    return np.atleast_2d(corr) * np.outer(sd, sd)


def _gauss_logpdf(resid: np.ndarray, cov: np.ndarray) -> np.ndarray:
    L = np.linalg.cholesky(cov)
    sol = np.linalg.solve(L, resid.T)
    return (-0.5 * (sol ** 2).sum(0) - np.log(np.diag(L)).sum()
            - 0.5 * len(cov) * math.log(2 * math.pi))


class VAR:
    """Vector autoregression x_t = c + Σ_{j≤p} A_j x_{t−j} + e_t, e_t ~ N(0, Σ), least squares.

    Parameters
    ----------
    p : int
        Order (lags).
    ridge : float
        Ridge penalty relative to the mean diagonal of XᵀX (keeps ill-posed fits finite).

    Attributes
    ----------
    coef_ : ndarray, shape (p·C + 1, C)
        Stacked [A_1ᵀ; …; A_pᵀ; cᵀ].
    cov_ : ndarray, shape (C, C)
        Residual covariance.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros((1, 2000, 1))
    >>> for t in range(1, 2000):
    ...     x[0, t] = 0.9 * x[0, t - 1] + rng.normal()
    >>> round(float(VAR(1).fit(x).coef_[0, 0]), 2)
    0.9
    """

    def __init__(self, p: int = 1, *, ridge: float = 1e-6):
        self.p = p
        self.ridge = ridge

    def fit(self, data: Any) -> VAR:
        p = check_int("p", self.p, min_value=1)
        x, _, _ = _values(data)
        X, Y = _lagged(x, p)
        G = X.T @ X
        G[np.diag_indices_from(G)] += self.ridge * np.trace(G) / len(G)
        self.coef_ = np.linalg.solve(G, X.T @ Y)
        self.cov_ = _shrunk_cov(Y - X @ self.coef_)
        self.n_channels_ = x.shape[-1]
        return self

    def log_likelihood(self, data: Any) -> float:
        """Mean one-step predictive log density per time bin (t >= p), nats."""
        x, _, _ = _values(data)
        X, Y = _lagged(x, self.p)
        return float(_gauss_logpdf(Y - X @ self.coef_, self.cov_).mean())

    def predict(self, data: Any, k: int = 1) -> np.ndarray:
        """E[x_{t+k} | x_{≤t}] placed at index t + k; NaN where the past is too short.

        Returns
        -------
        ndarray, shape (trials, time, channels)
        """
        k = check_int("k", k, min_value=1)
        x, _, _ = _values(data)
        _n, T, _C = x.shape
        p = self.p
        out = np.full(x.shape, np.nan)
        if T < p + k:
            return out
        # the state at t: [x_t, ..., x_{t-p+1}] for t = p-1 .. T-1-k, iterated k times
        hist = [x[:, p - 1 - j:T - k - j] for j in range(p)]  # each (n, T-k-p+1, C)
        for _ in range(k):
            X = np.concatenate([*hist, np.ones((*hist[0].shape[:2], 1))], axis=-1)
            nxt = X @ self.coef_
            hist = [nxt, *hist[:-1]]
        out[:, p - 1 + k:] = hist[0]
        return out

    def sample(self, n_trials: int, n_time: int, *, burn_in: int = 0,
               random_state: Any = None) -> np.ndarray:
        """Simulated sequences, shape (n_trials, n_time, channels), after ``burn_in`` steps."""
        rng = check_random_state(random_state)
        p, C = self.p, self.n_channels_
        total = burn_in + n_time + p
        L = np.linalg.cholesky(self.cov_)
        x = np.zeros((n_trials, total, C))
        x[:, :p] = self.coef_[-1]
        noise = rng.standard_normal((n_trials, total, C)) @ L.T
        for t in range(p, total):
            X = np.concatenate([x[:, t - j] for j in range(1, p + 1)]
                               + [np.ones((n_trials, 1))], axis=1)
            x[:, t] = X @ self.coef_ + noise[:, t]
        return x[:, p + burn_in:]


class PoissonGLM:
    """Spike counts with log-rate linear in the last ``p`` bins' log1p counts of every neuron.

    One ``sklearn.linear_model.PoissonRegressor`` per neuron (L2 penalty ``alpha``). ``p=0``
    fits a constant rate per neuron (the "mean rate" baseline of bits per spike).

    Examples
    --------
    >>> y = np.random.default_rng(0).poisson(1.5, size=(4, 200, 3))
    >>> glm = PoissonGLM(p=0).fit(y)
    >>> np.round(glm.rates_(y)[0, 0], 1).tolist()
    [1.5, 1.5, 1.5]
    """

    def __init__(self, p: int = 1, *, alpha: float = 1e-3, max_rate: float = 1e4):
        self.p = p
        self.alpha = alpha
        self.max_rate = max_rate

    def fit(self, data: Any) -> PoissonGLM:
        from sklearn.linear_model import PoissonRegressor

        p = check_int("p", self.p, min_value=0)
        y, _, _ = _values(data)
        if np.any(y < 0):
            raise ValueError("PoissonGLM needs non-negative counts.")
        self.n_channels_ = y.shape[-1]
        if p == 0:
            self.intercept_ = np.log(np.maximum(y.reshape(-1, y.shape[-1]).mean(0), 1e-9))
            self.coef_ = np.zeros((0, y.shape[-1]))
            return self
        X, Y = _lagged(np.log1p(y), p)
        X, Y = X[:, :-1], np.expm1(Y)
        coefs, icpts = [], []
        for c in range(Y.shape[1]):
            m = PoissonRegressor(alpha=self.alpha, max_iter=300).fit(X, Y[:, c])
            coefs.append(m.coef_)
            icpts.append(m.intercept_)
        self.coef_ = np.stack(coefs, axis=1)  # (p·C, C)
        self.intercept_ = np.asarray(icpts)
        return self

    def rates_(self, data: Any) -> np.ndarray:
        """Predicted counts per bin E[y_t | y_{<t}], shape (trials, time, channels); the first p
        bins use the constant part only."""
        y, _, _ = _values(data)
        _n, T, C = y.shape
        eta = np.broadcast_to(self.intercept_, y.shape).copy()
        if self.p:
            ly = np.log1p(y)
            for j in range(1, self.p + 1):
                eta[:, j:] += ly[:, :T - j] @ self.coef_[(j - 1) * C:j * C]
        return np.minimum(np.exp(eta), self.max_rate)

    def log_likelihood(self, data: Any) -> float:
        """Mean Poisson log-likelihood per time bin (t >= p, summed over neurons), nats."""
        from scipy.special import gammaln

        y, _, _ = _values(data)
        lam = self.rates_(y)[:, self.p:]
        yy = y[:, self.p:]
        ll = yy * np.log(np.maximum(lam, 1e-300)) - lam - gammaln(yy + 1)
        return float(ll.sum(-1).mean())

    def predict(self, data: Any, k: int = 1) -> np.ndarray:
        """k-step-ahead expected counts: iterate the rate map with expected counts (plug-in)."""
        k = check_int("k", k, min_value=1)
        y, _, _ = _values(data)
        if k == 1 or self.p == 0:  # one step, or no history: the rates themselves
            return self.rates_(y)
        cur = y.copy()
        for _ in range(k - 1):  # replace the most recent observation by its expectation
            lam = self.rates_(cur)
            cur = np.concatenate([cur[:, :1], lam[:, 1:]], axis=1)
        out = np.full(y.shape, np.nan)
        out[:, k - 1:] = self.rates_(cur)[:, :y.shape[1] - k + 1]
        return out

    def sample(self, n_trials: int, n_time: int, *, burn_in: int = 0,
               random_state: Any = None) -> np.ndarray:
        """Simulated counts (n_trials, n_time, neurons); rates capped at ``max_rate``."""
        rng = check_random_state(random_state)
        C, p = self.n_channels_, self.p
        total = burn_in + n_time
        y = np.zeros((n_trials, total, C))
        for t in range(total):
            eta = np.broadcast_to(self.intercept_, (n_trials, C)).copy()
            for j in range(1, min(p, t) + 1):
                eta += np.log1p(y[:, t - j]) @ self.coef_[(j - 1) * C:j * C]
            y[:, t] = rng.poisson(np.minimum(np.exp(eta), self.max_rate))
        return y[:, burn_in:]


def _smooth(y: np.ndarray, bin_size: float, sigma_s: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    sd = sigma_s / bin_size
    return gaussian_filter1d(y, sd, axis=1, mode="nearest") if sd > 0 else y


def pca_latents(train: Any, test: Any | None = None, *, n_components: int,
                bin_size: float | None = None, smooth_s: float = 0.1) -> np.ndarray:
    """PCA latents of Gaussian-smoothed (σ = ``smooth_s``) square-root counts.

    Fitted on ``train``; returns the latents of ``test`` (default ``train``), shape
    (trials, time, n_components). Continuous data (BinnedData of kind 'continuous', or an
    array with negative values) are smoothed as they are, without the square root.
    """
    return _linear_latents("pca", train, test, n_components, bin_size, smooth_s)


def fa_latents(train: Any, test: Any | None = None, *, n_components: int,
               bin_size: float | None = None, smooth_s: float = 0.1) -> np.ndarray:
    """Factor-analysis latents of Gaussian-smoothed square-root counts (see :func:`pca_latents`)."""
    return _linear_latents("fa", train, test, n_components, bin_size, smooth_s)


def _linear_latents(method, train, test, n_components, bin_size, smooth_s):
    from sklearn.decomposition import PCA, FactorAnalysis

    n_components = check_int("n_components", n_components, min_value=1)
    tr, bs, data_kind = _values(train, "train")
    te = tr if test is None else _values(test, "test")[0]
    bs = bin_size or bs or 1.0
    counts = data_kind == "counts" or (data_kind is None and tr.min() >= 0 and te.min() >= 0)
    f = np.sqrt if counts else np.asarray
    f_tr = _smooth(f(tr), bs, smooth_s)
    f_te = _smooth(f(te), bs, smooth_s)
    model = (PCA(n_components) if method == "pca"
             else FactorAnalysis(n_components, random_state=0))
    model.fit(f_tr.reshape(-1, f_tr.shape[-1]))
    return model.transform(f_te.reshape(-1, f_te.shape[-1])).reshape(
        te.shape[0], te.shape[1], n_components)


DECODING_MODELS = ("lowrank_rnn", "pca", "fa")
"""The rows of :func:`compare_decoding`: the fit's posterior latents, PCA and factor analysis."""


def compare_decoding(estimator: Any, data: Any, behavior: Any, *, cv: int = 5,
                     n_runs: int = 1, smooth_s: float = 0.1,
                     random_state: Any = 0) -> list[dict[str, Any]]:
    """Behaviour decoded from the fit's latents beside PCA and factor-analysis latents of as
    many dimensions (the fit's rank), with the same decoder.

    Each set of latents goes through the same cross-validated ridge regression
    (:func:`nwb_lrnn.analysis.decode_behavior`: ``cv`` folds of trials, or contiguous blocks
    of one long recording). The RNN's latents are the posterior means
    (``estimator.transform(data, n_runs=n_runs)``); PCA and FA are fitted to the whole of
    ``data``, Gaussian-smoothed over ``smooth_s`` seconds (square-root counts for spikes, see
    :func:`pca_latents`). The usual reading: latents that model the dynamics should decode
    behaviour at least as well as factor analysis with the same number of dimensions.

    Parameters
    ----------
    estimator : LowRankRNN
        Fitted (on part or all of ``data``).
    data : BinnedData
        The recording, shape (trials, time, channels).
    behavior : ndarray or dict of str to ndarray
        Behaviour on ``data``'s bins, each (trials, time, D), (trials, time) or (time, D)
        (e.g. :func:`nwb_lrnn.io.read_behavior` with ``like=data``); a dict names several
        (``{"hand_vel": vel, "hand_pos": pos}``), a bare array is named ``"behavior"``. NaN
        bins are left out.
    cv, n_runs, smooth_s : int, int, float
        Folds, filter runs averaged for the RNN's latents, smoothing of the PCA/FA input.
    random_state : int
        Seed of the filter runs.

    Returns
    -------
    list of dict, one per model of ``DECODING_MODELS`` (``lowrank_rnn``, ``pca``, ``fa``):
    ``model``, ``n_components`` and, per behaviour name, the cross-validated R² averaged over
    its dimensions (``<name>``) and per dimension (``<name>_r2``, a list).

    Examples
    --------
    >>> from nwb_lrnn.io import read_behavior  # doctest: +SKIP
    >>> rows = compare_decoding(est, data, {"hand_vel": read_behavior(
    ...     "session.nwb", "hand_vel", like=data)})  # doctest: +SKIP
    >>> print(format_decoding(rows))  # doctest: +SKIP
    """
    from .analysis.decoding import decode_behavior

    named = dict(behavior) if isinstance(behavior, dict) else {"behavior": behavior}
    if not named:
        raise ValueError("behavior is empty: give an array or a dict of named arrays.")
    rank = int(estimator.model_config_.rank)
    lat = {"lowrank_rnn": np.asarray(estimator.transform(data, n_runs=n_runs,
                                                         random_state=random_state)),
           "pca": pca_latents(data, n_components=rank, smooth_s=smooth_s),
           "fa": fa_latents(data, n_components=rank, smooth_s=smooth_s)}
    rows = []
    for model in DECODING_MODELS:
        row: dict[str, Any] = {"model": model, "n_components": rank}
        for name, b in named.items():
            got = decode_behavior(lat[model], b, cv=cv)
            row[name] = float(got["mean_r2"])
            row[f"{name}_r2"] = [float(v) for v in got["r2"]]
        rows.append(row)
    return rows


def _decoded_names(rows: list[dict[str, Any]]) -> list[str]:
    return [k for k in rows[0] if k not in ("model", "n_components") and not k.endswith("_r2")]


def format_decoding(rows: list[dict[str, Any]]) -> str:
    """:func:`compare_decoding` rows as an aligned text table of R² (higher is better; the
    best of each column marked ``*``)."""
    names = _decoded_names(rows)
    width = max([len(n) for n in names] + [8]) + 2
    lines = ["model".ljust(14) + "".join(n.rjust(width) for n in names)]
    best = {n: max(r[n] for r in rows) for n in names}
    for r in rows:
        lines.append(r["model"].ljust(14) + "".join(
            (f"{r[n]:.3f}" + ("*" if r[n] == best[n] else " ")).rjust(width) for n in names))
    return "\n".join(lines)


def decoding_metrics(rows: list[dict[str, Any]]) -> dict[str, tuple[float, str]]:
    """:func:`compare_decoding` rows as the metrics a fit file stores:
    ``{'decoding.<model>.<behaviour>': (R², 'cross_validation')}`` (:func:`stored_decoding`
    reads them back)."""
    return {f"decoding.{r['model']}.{n}": (float(r[n]), "cross_validation")
            for r in rows for n in _decoded_names(rows)}


def stored_decoding(metrics) -> dict[str, dict[str, float]]:
    """The decoding comparison in a fit file's metrics (a list of (name, value, split)), as
    ``{model: {behaviour: R²}}``; empty when the file holds none."""
    table: dict[str, dict[str, float]] = {}
    for name, value, split in metrics:
        parts = str(name).split(".", 2)
        if split == "cross_validation" and len(parts) == 3 and parts[0] == "decoding":
            table.setdefault(parts[1], {})[parts[2]] = float(value)
    return table


def compare_to_baselines(estimator: Any, train: Any, test: Any, *, k: int = 5,
                         n_steps: int | None = None, random_state: Any = 0,
                         var_orders: tuple[int, ...] = (1, 5),
                         baselines: bool = True, n_draws: int = 5) -> list[dict[str, Any]]:
    """Measures of a fitted model and of the baselines on the same held-out data.

    Each row: ``model``; ``loglik_per_bin`` (held-out log-likelihood per bin, summed over
    channels; the RNN's is its SMC bound, a stochastic lower bound; NaN for a counts model
    whose density is not a probability of the counts, ``observation='gaussian_sqrt'``);
    ``mse_1`` and ``mse_k`` (mean squared error of the one- and ``k``-step-ahead prediction
    of the observations);
    continuous data add ``dstsp`` and ``dh`` (generated against ``test``, see
    :func:`nwb_lrnn.metrics.dstsp`); counts add ``rate_correlation`` and ``fano_ratio``
    (generated against ``test``, see :func:`nwb_lrnn.metrics.compare_spike_statistics`).

    Parameters
    ----------
    estimator : LowRankRNN
        Fitted on ``train``.
    train, test : BinnedData
        The baselines are fitted on ``train``; everything is measured on ``test``.
    k : int
        Horizon of the k-step-ahead prediction.
    n_steps : int, optional
        Generated steps per trial (default: ``test``'s; one long recording: at most 10 000,
        after a burn-in of 500).
    baselines : bool
        False: the fitted model's row only (for several fits on one split, whose baseline rows
        do not change; the Poisson GLM of 132 neurons takes minutes).
    random_state : int | Generator | None
        Seed of the generated data: an int gives the draws the seeds ``random_state`` + 0, 1,
        ...; a Generator or None draws one base seed from it.
    n_draws : int
        Independent generated data sets per model; the generated-vs-held-out measures are their
        means, and ``<measure>_sd`` their SD across draws (NaN for one draw). A draw that
        diverges (the RNN's sample is refused) makes the row's generated measures NaN. One
        draw of a held-out part of ~2000 bins moves D_stsp by ±0.1–0.2 between seeds (VAR(1)
        on held-out EEG: 2.40 ± 0.12 over 5 seeds), as much as the gaps between models, so a
        comparison from one draw can rank them by chance.

    Returns
    -------
    list of dict, one per model, the RNN first.
    """
    k = check_int("k", k, min_value=1)
    te, bs, kind = _values(test, "test")
    kind = kind or getattr(estimator, "kind_", "continuous")
    # generate what the test set looks like: as many trials of its length (trials start from
    # the initial state), or one stationary run (after a burn-in) for one long recording
    n_trials = te.shape[0]
    n_steps = n_steps or (min(te.shape[1], 10_000) if n_trials == 1 else te.shape[1])
    burn_in = min(500, n_steps) if n_trials == 1 else 0
    models: list[tuple[str, Any]] = []
    if baselines and kind == "counts":
        models += [("poisson_rate", PoissonGLM(0)), ("poisson_glm1", PoissonGLM(1))]
    elif baselines:
        models += [("iid_gaussian", IIDGaussian())]
        models += [(f"var{p}", VAR(p)) for p in var_orders]
    n_draws = check_int("n_draws", n_draws, min_value=1)
    base = (int(random_state) if isinstance(random_state, (int, np.integer))
            else int(check_random_state(random_state).integers(2**31 - n_draws)))
    seeds = [base + i for i in range(n_draws)]
    rows = [_measure_rnn(estimator, test, te, k, n_trials, n_steps, burn_in, kind,
                         seeds, bs)]
    for name, model in models:
        model.fit(train)
        gens = [model.sample(n_trials, n_steps, burn_in=burn_in, random_state=s) for s in seeds]
        rows.append(_row(name, model.log_likelihood(te), te, model.predict(te, 1),
                         model.predict(te, k), gens, kind, bs))
    return rows


def _mse(x: np.ndarray, pred: np.ndarray) -> float:
    ok = np.isfinite(pred).all(-1)
    return float(((x[ok] - pred[ok]) ** 2).mean()) if ok.any() else float("nan")


def _row(name, ll, te, p1, pk, gens, kind, bs) -> dict[str, Any]:
    from . import metrics

    row = {"model": name, "loglik_per_bin": float(ll), "mse_1": _mse(te, p1),
           "mse_k": _mse(te, pk)}
    names = ("rate_correlation", "fano_ratio") if kind == "counts" else ("dstsp", "dh")
    if not all(np.all(np.isfinite(g)) for g in gens):
        row.update({n: float("nan") for n in names})
        row.update({f"{n}_sd": float("nan") for n in names})
        return row
    per_draw = []
    for gen in gens:
        if kind == "counts":
            cmp = metrics.compare_spike_statistics(te, gen, bin_size=bs or 1.0)
            per_draw.append((cmp["rate_correlation"], cmp["fano_ratio"]))
        else:
            x = te.reshape(-1, te.shape[-1])
            g = gen.reshape(-1, gen.shape[-1])
            per_draw.append((float(metrics.dstsp(x, g, random_state=0)),
                             float(metrics.hellinger_spectrum(x, g))))
    vals = np.asarray(per_draw, dtype=float)
    for j, n in enumerate(names):
        row[n] = float(vals[:, j].mean())
        row[f"{n}_sd"] = float(vals[:, j].std(ddof=1)) if len(vals) > 1 else float("nan")
    return row


def _measure_rnn(est, test, te, k, n_trials, n_steps, burn_in, kind, seeds,
                 bs) -> dict[str, Any]:
    # a density of transformed counts (gaussian_sqrt) is not a probability of the counts:
    # its log-likelihood would not compare with the count baselines', so it is left out
    pmf = kind != "counts" or getattr(est.model_.observation, "count_pmf", True)
    ll = est.score(test) if pmf else float("nan")
    p1 = est.predict_ahead(test, k=1)
    pk = est.predict_ahead(test, k=k)
    gens = []
    for s in seeds:
        try:
            gens.append(est.sample(n_trials, n_steps, burn_in=burn_in, random_state=s).values)
        except ValueError:  # diverging dynamics: the sample is refused
            gens.append(np.full((n_trials, n_steps, te.shape[-1]), np.nan))
            break
    return _row("lowrank_rnn", ll, te, p1, pk, gens, kind, bs)


_LABELS = {"loglik_per_bin": "loglik/bin", "mse_1": "MSE 1-step", "mse_k": "MSE k-step",
           "dstsp": "D_stsp", "dh": "D_H", "rate_correlation": "rate r", "fano_ratio": "Fano ratio"}


def comparison_metrics(rows: list[dict[str, Any]]) -> dict[str, tuple[float, str]]:
    """:func:`compare_to_baselines` rows as the metrics a fit file stores:
    ``{'<model>.<measure>': (value, 'validation')}`` (:func:`stored_comparison` reads them
    back)."""
    return {f"{r['model']}.{name}": (float(v), "validation") for r in rows
            for name, v in r.items() if name != "model"}


def stored_comparison(metrics) -> dict[str, dict[str, float]]:
    """The comparison in a fit file's metrics (a list of (name, value, split)), as
    ``{model: {measure: value}}``; empty when the file holds none."""
    table: dict[str, dict[str, float]] = {}
    for name, value, split in metrics:
        if split == "validation" and "." in name:
            model, measure = name.split(".", 1)
            table.setdefault(model, {})[measure] = float(value)
    return table


def badness(measure: str, value: float) -> float:
    """How bad ``value`` of ``measure`` (a :func:`compare_to_baselines` column) is, lower
    better: the negated log-likelihood and rate correlation, errors and distances as they are,
    the Fano ratio's |log| (1 is best); NaN is worst."""
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        return math.inf
    if measure in ("loglik_per_bin", "rate_correlation"):
        return -value
    if measure == "fano_ratio":
        return abs(math.log(value)) if value > 0 else math.inf
    return value


def format_comparison(rows: list[dict[str, Any]], *, k: int | None = None) -> str:
    """:func:`compare_to_baselines` rows as an aligned text table (the best of each column
    marked ``*``: highest log-likelihood and rate correlation, lowest error and distances,
    Fano ratio nearest 1; generated-data measures as mean ± SD over the draws; ``n/a`` where
    a measure does not apply, e.g. the log-likelihood of a ``gaussian_sqrt`` fit)."""
    cols = [c for c in _LABELS if any(c in r for r in rows)]
    best: dict[str, float] = {}
    for c in cols:
        vals = [r.get(c, float("nan")) for r in rows]
        finite = [v for v in vals if isinstance(v, float) and math.isfinite(v)]
        if finite:
            best[c] = min(finite, key=lambda v, c=c: badness(c, v))
    head = [_LABELS[c].replace("k-step", f"{k}-step") if k else _LABELS[c] for c in cols]
    table = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, float("nan"))
            mark = "*" if c in best and v == best[c] else " "
            sd = r.get(f"{c}_sd")
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                text = "n/a"
            elif sd is None or not math.isfinite(sd):
                text = f"{v:.4g}"
            else:
                text = f"{v:.3g}±{sd:.2g}"
            cells.append(text + mark)
        table.append((r["model"], cells))
    width = max([len(h) for h in head] + [len(t) for _, cells in table for t in cells]) + 2
    lines = [f"{'model':<14}" + "".join(f"{h:>{width}} " for h in head)]
    lines += [f"{name:<14}" + "".join(f"{t:>{width + 1}}" if t.endswith("*")
                                      else f"{t[:-1]:>{width}} " for t in cells)
              for name, cells in table]
    return "\n".join(lines)
