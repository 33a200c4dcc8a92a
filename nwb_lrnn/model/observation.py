"""Observation models p(y_t | z_t), all behind one interface.

- :class:`GaussianObservation`: y = C z + d + η, η ~ N(0, diag σ²) (EEG, LFP, calcium).
- :class:`GaussianAR1Observation`: y = C z + d + e, with noise that is correlated in time,
  e_t = a ⊙ e_{t-1} + η_t (each channel an AR(1) process, the innovations η_t correlated
  across channels): continuous signals whose part beyond the latents is smooth, as EEG's is.
- :class:`GaussianVAR1Observation`: the same with e_t = A e_{t-1} + η_t, A a full matrix
  (channels whose noise couples, so that the noise's stationary covariance is the data's).
- :class:`PoissonObservation`: y ~ Poisson(Δ · f(η)) with η = C z + d (``readout='affine'``) or,
  one-to-one with the first ``n_channels`` RNN units, η_i = β_i φ(u_iᵀ z − h_i) + b_i
  (``readout='units'``). f is a :class:`Link` (softplus or exp).

Shapes: observations are (..., n_channels) and latents (..., R); ``log_prob`` sums over
channels and broadcasts over leading dimensions (particles lead).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.functional import softplus

from .._validate import check_array, check_option
from .noise import FullCovariance, softplus_inverse

__all__ = [
    "AUTO_OBSERVATION",
    "LINKS",
    "OBSERVATIONS",
    "ExpLink",
    "GaussianAR1Observation",
    "GaussianObservation",
    "GaussianSqrtObservation",
    "GaussianVAR1Observation",
    "Link",
    "ObservationModel",
    "PoissonObservation",
    "SoftplusLink",
    "fa_loadings",
    "observation_for",
    "pca_loadings",
    "register_observation",
]

_LOG_2PI = math.log(2.0 * math.pi)


class Link:
    """Interface: a positive inverse link f for Poisson rates."""

    name: ClassVar[str] = ""

    def __call__(self, eta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log(self, eta: torch.Tensor) -> torch.Tensor:
        """log f(η), computed stably."""
        return torch.log(self(eta))

    def rate_and_log(self, eta: torch.Tensor, *, out: torch.Tensor | None = None,
                     log_out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """f(η) and log f(η) together (sharing work), written into ``out`` and ``log_out``
        when given."""
        rate, log_rate = self(eta), self.log(eta)
        return (rate if out is None else out.copy_(rate),
                log_rate if log_out is None else log_out.copy_(log_rate))

    def loglik_grad(self, eta: torch.Tensor, y: torch.Tensor, bin_size: float, *,
                    rate: torch.Tensor | None = None) -> torch.Tensor:
        """d/dη of y log f(η) − Δ f(η), elementwise (``y`` broadcasts against ``eta``;
        ``rate`` = f(η) when already known)."""
        raise NotImplementedError

    def inverse(self, rate: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SoftplusLink(Link):
    name = "softplus"

    def __call__(self, eta):
        return softplus(eta)

    def log(self, eta):
        return torch.log(softplus(eta) + 1e-12)

    def rate_and_log(self, eta, *, out=None, log_out=None):
        rate = softplus(eta) if out is None else torch.ops.aten.softplus.out(eta, 1, 20, out=out)
        if log_out is None:
            return rate, torch.log(rate + 1e-12)
        return rate, torch.add(rate, 1e-12, out=log_out).log_()

    def loglik_grad(self, eta, y, bin_size, *, rate=None):
        # f' = sigmoid; d/dη [y log(f + 1e-12) − Δ f] = sigmoid(η) (y / (f + 1e-12) − Δ)
        rate = softplus(eta) if rate is None else rate
        return torch.sigmoid(eta).mul_(torch.div(y, rate + 1e-12).sub_(bin_size))

    def inverse(self, rate):
        return softplus_inverse(torch.clamp(rate, min=1e-6))


class ExpLink(Link):
    name = "exp"

    def __call__(self, eta):
        return torch.exp(eta)

    def log(self, eta):
        return eta

    def rate_and_log(self, eta, *, out=None, log_out=None):
        return torch.exp(eta, out=out), (eta if log_out is None else log_out.copy_(eta))

    def loglik_grad(self, eta, y, bin_size, *, rate=None):
        return torch.sub(y, torch.exp(eta) if rate is None else rate, alpha=bin_size)

    def inverse(self, rate):
        return torch.log(torch.clamp(rate, min=1e-6))


LINKS: dict[str, type[Link]] = {cls.name: cls for cls in (SoftplusLink, ExpLink)}


def pca_loadings(centered: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``rank`` principal axes of (samples, C) data scaled by their SD, shape (C, rank),
    and the covariance (C, C)."""
    cov = centered.T @ centered / max(1, centered.shape[0] - 1)
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0), evecs.flip(1)
    k = min(rank, evals.numel())
    C = torch.zeros(cov.shape[0], rank)
    C[:, :k] = evecs[:, :k] * evals[:k].clamp_min(1e-8).sqrt()
    return C, cov


# factor analysis for an initialisation sees at most this many samples (evenly spaced)
_FA_MAX_SAMPLES = 200_000


def fa_loadings(flat: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Factor analysis (scikit-learn's, maximum likelihood) of (samples, C) data: loadings
    (C, rank) for latents of unit variance and each channel's noise variance (C,).

    Unlike PCA's axes, the loadings do not follow a channel that varies much on its own:
    y = C z + d + η with η's variance per channel is the observation model itself, with
    latents independent in time. At most ``_FA_MAX_SAMPLES`` evenly spaced samples are used.
    """
    import warnings

    from sklearn.decomposition import FactorAnalysis
    from sklearn.exceptions import ConvergenceWarning

    x = flat.detach().to("cpu", torch.float64).numpy()
    x = x[:: max(1, -(-x.shape[0] // _FA_MAX_SAMPLES))]
    var = x.var(0)
    live = var > 1e-12 * max(float(var.max(initial=0.0)), 1e-300)  # constant channels: no load
    loadings, noise = np.zeros((x.shape[1], rank)), var.copy()
    k = min(rank, int(live.sum()), x.shape[0] - 1)
    if k > 0:
        with warnings.catch_warnings():  # a start: a few EM steps short of convergence is fine
            warnings.simplefilter("ignore", ConvergenceWarning)
            # LAPACK's full SVD where it is small: on 6000 x 12 samples 16 EM steps took
            # 0.19 s against 3.1 s with the randomised SVD (2-core VM, load 7)
            small = x.shape[0] * int(live.sum()) ** 2 <= 2e9
            fa = FactorAnalysis(k, random_state=0,
                                svd_method="lapack" if small else "randomized").fit(x[:, live])
        loadings[live, :k] = fa.components_.T
        noise[live] = fa.noise_variance_
    return (torch.as_tensor(loadings, dtype=flat.dtype),
            torch.as_tensor(noise, dtype=flat.dtype))


def innovation_floor(values: torch.Tensor, fraction: float = 0.1) -> float:
    """ε for a full noise covariance: ``fraction`` of the smallest eigenvalue of the
    innovations' covariance of a least-squares VAR(1) of the data, at least 1e-6 of the
    channels' mean variance. values: (n_trials, n_time, n_channels).

    Without it a full-covariance noise can shrink along the readout's columns until the
    latents reproduce the data there exactly, and the likelihood has no upper bound: in a
    rank-5 ``gaussian_var1`` EEG fit (64 channels) Σ_η's smallest eigenvalue fell from 8e-5
    to 2e-8 in 30 epochs, 5000x below the data's own VAR(1) innovations (1.1e-4), until a
    gradient became non-finite.
    """
    y = values.detach().double()
    n_ch = y.shape[-1]
    y = y - y.reshape(-1, n_ch).mean(0)
    prev = y[:, :-1].reshape(-1, n_ch)
    nxt = y[:, 1:].reshape(-1, n_ch)
    if prev.shape[0] == 0:
        prev, nxt = y.reshape(-1, n_ch), None
    G0 = prev.T @ prev / max(1, prev.shape[0])
    scale = float(G0.diagonal().mean())
    if nxt is None:
        resid_cov = G0
    else:
        ridge = 1e-6 * scale * torch.eye(n_ch, dtype=G0.dtype, device=G0.device)
        A = torch.linalg.solve(G0 + ridge, prev.T @ nxt / prev.shape[0]).T
        E = nxt - prev @ A.T
        resid_cov = E.T @ E / E.shape[0]
    lo = float(torch.linalg.eigvalsh(resid_cov)[0])
    return max(fraction * lo, 1e-6 * scale, 1e-12)


def _lyapunov_identity(A: torch.Tensor, max_doublings: int = 64) -> torch.Tensor:
    """W = Σ_k A^k (A^k)ᵀ, the solution of W = A W Aᵀ + I (A stable), by doubling: each
    step adds the next 2^j terms (at spectral radius 0.999, about 15 steps)."""
    W = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    P = A
    for _ in range(max_doublings):
        W = W + P @ W @ P.T
        P = P @ P
        if float(P.detach().abs().max()) < 1e-12:
            break
    return (W + W.T) / 2


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().copy()


class ObservationModel(nn.Module):
    """Interface of an observation model; a subclass registered with
    :func:`register_observation` is all it takes to add one.

    Attributes
    ----------
    name : str
        Its name (``LowRankRNN(observation=name)``, ``ModelConfig.observation``).
    kind : {'continuous', 'counts'}
        The kind of :class:`~nwb_lrnn.BinnedData` it explains.
    default_proposal : str
        The proposal ``proposal='auto'`` picks for it.
    proposals : tuple of str or None
        The only proposals that can filter it (None: every proposal made for it). A model
        whose y_t depends on more than z_t (as AR noise makes it) needs a proposal that knows.
    noise_memory : bool
        True when the noise is correlated in time; :meth:`predict_noise` then gives its
        k-step prediction (``LowRankRNN.predict_ahead`` adds it).
    count_pmf : bool
        For counts: whether :meth:`log_prob` is a probability of integer counts (Poisson),
        so that its log-likelihood compares with count baselines'; False for a density of
        transformed counts.
    n_channels : int
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    default_proposal: ClassVar[str] = "bootstrap"
    proposals: ClassVar[tuple[str, ...] | None] = None
    noise_memory: ClassVar[bool] = False
    count_pmf: ClassVar[bool] = True
    n_channels: int

    @classmethod
    def accepts(cls, kind: str) -> bool:
        """Whether data of this kind ('continuous' or 'counts') can be modelled."""
        return kind == cls.kind

    @classmethod
    def check_config(cls, config: Any) -> None:
        """ValueError when a :class:`~nwb_lrnn.model.rnn.ModelConfig` cannot use this model."""

    @classmethod
    def build(cls, config: Any, *, transition: nn.Module,
              generator: torch.Generator | None = None) -> ObservationModel:
        """The model's observation model from its :class:`~nwb_lrnn.model.rnn.ModelConfig`."""
        raise NotImplementedError

    @torch.no_grad()
    def init_from_data(self, values: torch.Tensor, bin_size: float, rank: int) -> None:
        """Data-dependent initialisation from the training data, shape (trials, time, C)."""

    def to_arrays(self) -> dict[str, Any]:
        """The parameters as numpy arrays, named as ``LowRankRNN.from_parameters`` takes them."""
        raise NotImplementedError

    @torch.no_grad()
    def load_arrays(self, arrays: dict[str, Any]) -> None:
        """Set the parameters from arrays named as :meth:`to_arrays` gives them."""
        raise NotImplementedError

    @classmethod
    def check_arrays(cls, U: np.ndarray, arrays: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Validate user-given arrays for ``LowRankRNN.from_parameters`` (``U`` (N, R) given
        for defaults): ``(n_channels, the arrays completed with their defaults)``."""
        raise NotImplementedError

    def log_prob(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(y | z) summed over channels.

        Parameters
        ----------
        y : Tensor, shape (..., n_channels), broadcastable against z's leading dims
        z : Tensor, shape (..., R)

        Returns
        -------
        Tensor, shape of the broadcast leading dimensions
        """
        raise NotImplementedError

    def log_prob_varying(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The part of ``log_prob`` that depends on z (same shapes).

        ``log_prob(y, z) == log_prob_varying(y, z) + log_prob_constant(y)``; the particle
        filter adds the constant once per sequence instead of at every step and particle.
        """
        return self.log_prob(y, z)

    def log_prob_constant(self, y: torch.Tensor) -> torch.Tensor:
        """The part of ``log_prob`` that does not depend on z, shape y.shape[:-1]."""
        return torch.zeros(y.shape[:-1], dtype=y.dtype, device=y.device)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[y | z], shape (..., n_channels)."""
        raise NotImplementedError

    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw y ~ p(y | z), shape (..., n_channels)."""
        raise NotImplementedError

    def predict_noise(self, residual: torch.Tensor, k: int) -> torch.Tensor:
        """E[e_{t+k} | e_t = residual] for noise with memory (zero for white noise)."""
        return torch.zeros_like(residual)


class _AffineReadout(ObservationModel):
    """What the Gaussian observation models share: the affine readout C z + d.

    Registers ``C`` (n_channels, R) and ``d`` (n_channels,) first, so subclasses keep the
    parameter order (and the names) that saved fits and optimiser states rely on.
    """

    @classmethod
    def build(cls, config, *, transition, generator=None):
        return cls(config.n_channels, config.rank, generator=generator)

    def __init__(self, n_channels: int, rank: int, *,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.n_channels = int(n_channels)
        self.C = nn.Parameter(torch.randn(n_channels, rank, generator=generator)
                              / math.sqrt(rank))
        self.d = nn.Parameter(torch.zeros(n_channels))

    def affine_mean(self, z: torch.Tensor) -> torch.Tensor:
        """C z + d, shape (..., n_channels): the Gaussian part's mean (E[y | z] unless a
        subclass transforms y)."""
        return z @ self.C.T + self.d

    def mean(self, z):
        return self.affine_mean(z)

    @torch.no_grad()
    def _init_readout(self, flat: torch.Tensor, rank: int) -> torch.Tensor:
        """Set C to the top principal axes of ``flat`` (n, n_channels) and d to its mean;
        return the data's covariance (n_channels, n_channels)."""
        mean = flat.mean(0)
        C, cov = pca_loadings(flat - mean, rank)
        self.C.copy_(C.to(self.C.dtype))
        self.d.copy_(mean)
        return cov

    @torch.no_grad()
    def _load_readout(self, arrays: dict[str, Any]) -> None:
        t = self.C
        self.C.copy_(torch.as_tensor(np.array(arrays["C"], dtype=float), dtype=t.dtype))
        self.d.copy_(torch.as_tensor(np.array(arrays["d"], dtype=float), dtype=t.dtype))


class GaussianObservation(_AffineReadout):
    """y = C z + d + η, η ~ N(0, diag σ²).

    Parameters: ``C`` (n_channels, R), ``d`` (n_channels,), ``raw_sd`` (n_channels,) with
    σ = softplus(raw_sd) + 1e-4.
    """

    kind = "continuous"
    name = "gaussian"
    default_proposal = "optimal"

    @classmethod
    def accepts(cls, kind):
        return True  # counts are numbers too

    @torch.no_grad()
    def init_from_data(self, values, bin_size, rank):
        """PCA: C from the top principal axes, d the mean, σ the residual SD."""
        cov = self._init_readout(values.reshape(-1, values.shape[-1]).float(), rank)
        self._init_sd(torch.diagonal(cov) - (self.C * self.C).sum(1), torch.diagonal(cov))

    @torch.no_grad()
    def _init_sd(self, noise_var: torch.Tensor, channel_var: torch.Tensor) -> None:
        """σ² from each channel's noise variance, at least 1 % of the channels' mean variance."""
        floor = 1e-2 * channel_var.mean() + 1e-8
        self.raw_sd.copy_(softplus_inverse(noise_var.to(self.C.dtype).clamp_min(floor).sqrt()))

    def to_arrays(self):
        return {"C": _np(self.C), "d": _np(self.d), "noise_x": _np(self.sd())}

    @torch.no_grad()
    def load_arrays(self, arrays):
        self._load_readout(arrays)
        sd = torch.as_tensor(np.array(arrays["noise_x"], dtype=float), dtype=self.C.dtype)
        self.raw_sd.copy_(softplus_inverse(sd - 1e-4))

    @classmethod
    def check_arrays(cls, U, arrays):
        R = U.shape[1]
        C = arrays.get("C")
        C = U.copy() if C is None else check_array("C", C, ndim=2)
        if C.shape[1] != R:
            raise ValueError(f"C must have shape (n_channels, {R}), got {C.shape}.")
        n_ch = C.shape[0]
        d = arrays.get("d")
        d = np.zeros(n_ch) if d is None else check_array("d", d, shape=(n_ch,))
        nx = arrays.get("noise_x")
        sx = np.broadcast_to(check_array("noise_x", 0.1 if nx is None else nx, ndim=(0, 1)),
                             (n_ch,))
        if np.any(sx <= 0):
            raise ValueError("noise_x must be positive.")
        return n_ch, {"C": C, "d": d, "noise_x": sx, "readout": "affine"}

    def __init__(self, n_channels: int, rank: int, *, sd: float = 1.0,
                 generator: torch.Generator | None = None):
        super().__init__(n_channels, rank, generator=generator)
        self.raw_sd = nn.Parameter(softplus_inverse(torch.full((n_channels,), float(sd))))

    def sd(self) -> torch.Tensor:
        """σ, shape (n_channels,)."""
        return softplus(self.raw_sd) + 1e-4

    def gaussian_values(self, y: torch.Tensor) -> torch.Tensor:
        """The values that are Gaussian given z (y itself; a transform of y for
        :class:`GaussianSqrtObservation`), same shape."""
        return y

    def log_jacobian(self, y: torch.Tensor) -> torch.Tensor | None:
        """log |d gaussian_values / dy| summed over channels, shape y.shape[:-1] (None: 0)."""
        return None

    def log_prob(self, y, z):
        return self.log_prob_varying(y, z) + self.log_prob_constant(y)

    def log_prob_varying(self, y, z):
        r = (self.gaussian_values(y) - self.affine_mean(z)) / self.sd()
        return -0.5 * (r * r).sum(-1)

    def log_prob_constant(self, y):
        c = -self.sd().log().sum() - 0.5 * self.n_channels * _LOG_2PI
        return c.expand(y.shape[:-1])

    def sample(self, z, generator=None):
        mu = self.affine_mean(z)
        return mu + self.sd() * torch.randn(mu.shape, generator=generator, device=mu.device,
                                            dtype=mu.dtype)


class GaussianSqrtObservation(GaussianObservation):
    """Spike counts through a variance-stabilising transform: x = 2 √(y + 3/8) (Anscombe) is
    Gaussian, x = C z + d + η, η ~ N(0, diag σ²), as factor analysis and GPFA model square-root
    counts.

    Each neuron gets its own noise variance σ_i² on the stabilised scale, so a neuron that
    fires more regularly than a Poisson process (M1 neurons at 40-110 Hz: residual variance
    0.4-0.7 of the mean count) weighs more in the latents, and a bursty one less; the Poisson
    model weighs every neuron by its rate alone. The optimal proposal filters it exactly.

    ``log_prob`` is the Gaussian density of x mapped back to y (x's density times
    |dx/dy| = 2 / x): a density of a continuous y, not a probability of integer counts, so
    its log-likelihood compares with other fits of this model, not with a Poisson model's.
    ``sample`` draws x and returns the counts round(max(x / 2, 0)² − 3/8), at least 0;
    ``mean`` gives E[y | z] ≈ (μ² + σ²) / 4 − 3/8 (μ = C z + d), at least 0.

    Parameters as :class:`GaussianObservation` (``C``, ``d`` and σ on the stabilised scale).
    """

    kind = "counts"
    name = "gaussian_sqrt"
    count_pmf: ClassVar[bool] = False

    @classmethod
    def accepts(cls, kind):
        return kind == "counts"

    def gaussian_values(self, y):
        """x = 2 √(y + 3/8), elementwise (negative y treated as 0)."""
        return 2.0 * torch.sqrt(y.clamp_min(0.0) + 0.375)

    def log_jacobian(self, y):
        return (math.log(2.0) - torch.log(self.gaussian_values(y))).sum(-1)

    @torch.no_grad()
    def init_from_data(self, values, bin_size, rank):
        """Factor analysis of the stabilised counts (:func:`fa_loadings`): C its loadings, d
        the mean, σ² its noise variances (at least 1 % of the mean variance).

        PCA's axes (:class:`GaussianObservation`'s start) follow the neurons with the most
        variance of their own and left the fits in a worse optimum: on the bundled S1
        recording (52 units, rank 4, the same 40 epochs) a validation bound of -24.14 nats a
        bin against -23.92 from factor analysis, and hand velocity R² 0.44 against 0.52.
        """
        x = self.gaussian_values(values.float())
        flat = x.reshape(-1, x.shape[-1])
        C, noise = fa_loadings(flat, rank)
        self.C.copy_(C.to(self.C.dtype))
        self.d.copy_(flat.mean(0))
        self._init_sd(noise, flat.var(0))

    def log_prob_constant(self, y):
        return super().log_prob_constant(y) + self.log_jacobian(y)

    def mean(self, z):
        mu = self.affine_mean(z)
        return ((mu * mu + self.sd() ** 2) / 4.0 - 0.375).clamp_min(0.0)

    def sample(self, z, generator=None):
        x = super().sample(z, generator)  # on the stabilised scale
        return ((x.clamp_min(0.0) / 2.0) ** 2 - 0.375).clamp_min(0.0).round()


class GaussianAR1Observation(_AffineReadout):
    """y_t = C z_t + d + e_t with e_t = a ⊙ e_{t-1} + η_t, η_t ~ N(0, Σ_η).

    Each channel's noise is an AR(1) process with coefficient a_i in (-0.999, 0.999), and the
    innovations η_t are correlated across channels (Σ_η full, as EEG against a common
    reference needs); stationary from the first bin (e_0 ~ N(0, Σ_e), Σ_e,ij =
    Σ_η,ij / (1 − a_i a_j)). Given the previous bin, y_t is Gaussian in (z_t, z_{t-1}):
    N(y_t; C z_t + d + a ⊙ (y_{t-1} − C z_{t-1} − d), Σ_η), which the optimal proposal uses
    exactly (it is the only proposal that filters this model).

    Use it for continuous signals whose part beyond the R latents is smooth in time and
    correlated across channels. Measured on held-out EEG (64 channels, 160 Hz; the true
    latents of a rank-3 PCA given): white diagonal noise puts the spectra further from the
    data (D_H 0.173) than a VAR(1)'s (0.114); AR(1) noise gives 0.067, and correlated
    innovations bring D_stsp from 2.14 to 1.78 (VAR(1): 2.40).

    Parameters: ``C`` (n_channels, R), ``d``, ``raw_ar`` with a = 0.999 tanh(raw_ar), and
    the innovations' covariance Σ_η = ``innovation`` (a full Cholesky factor) + εI. The floor
    ε (buffer ``noise_floor``, from the data: :func:`innovation_floor`) keeps the full Σ_η
    from collapsing along the readout's columns, where the latents could otherwise reproduce
    the data exactly and the likelihood has no upper bound. Named arrays: ``C``,
    ``d``, ``noise_x`` (the innovations' SDs), ``noise_x_cov`` (Σ_η) and ``noise_ar`` (a).
    Cost: whitening the data is O(C²) per bin once per filter call; each step then works on
    (particles, 2R) arrays in float64 (Gram matrices of the whitened readouts), O(R²) per
    particle as in the white model, but without its fused loop (rank 3, 64 channels: 670 s
    against 234 s for the same 150-epoch EEG fit, measured when the step still ran through
    the channels, about 8 % slower per filter call at 64 channels than now).
    """

    kind = "continuous"
    name = "gaussian_ar1"
    later_buffers = ("noise_floor",)
    default_proposal = "optimal"
    proposals = ("optimal",)
    noise_memory = True

    def __init__(self, n_channels: int, rank: int, *, sd: float = 1.0,
                 generator: torch.Generator | None = None):
        super().__init__(n_channels, rank, generator=generator)
        self.raw_ar = nn.Parameter(torch.zeros(n_channels))
        self.innovation = FullCovariance(n_channels, sd)
        # ε, Σ_η = (innovation) + ε I: set from the data by init_from_data (innovation_floor);
        # 0 in fits written before it
        self.register_buffer("noise_floor", torch.zeros(()))

    def ar(self) -> torch.Tensor:
        """a, shape (n_channels,), in (-0.999, 0.999)."""
        return 0.999 * torch.tanh(self.raw_ar)

    def innovation_cov(self) -> torch.Tensor:
        """Σ_η, shape (n_channels, n_channels), the floor included."""
        cov = self.innovation.cov()
        eps = float(self.noise_floor)
        if eps > 0:
            cov = cov + eps * torch.eye(self.n_channels, dtype=cov.dtype, device=cov.device)
        return cov

    def chol(self) -> torch.Tensor:
        """Lower Cholesky factor of Σ_η, shape (n_channels, n_channels)."""
        if float(self.noise_floor) > 0:
            return torch.linalg.cholesky(self.innovation_cov())
        return self.innovation.chol()

    def sd(self) -> torch.Tensor:
        """The innovations' SDs sqrt(diag Σ_η), shape (n_channels,)."""
        return self.chol().pow(2).sum(1).sqrt()

    def stationary_cov(self) -> torch.Tensor:
        """Σ_e, the covariance of e_t, shape (n_channels, n_channels)."""
        a = self.ar()
        return self.innovation_cov() / (1.0 - a[:, None] * a[None, :])

    def stationary_sd(self) -> torch.Tensor:
        """SD of e_t, sqrt(diag Σ_e), shape (n_channels,)."""
        return self.stationary_cov().diagonal().sqrt()

    def stationary_chol(self) -> torch.Tensor:
        """Lower Cholesky factor of Σ_e, shape (n_channels, n_channels)."""
        return torch.linalg.cholesky(self.stationary_cov())

    def noise_factors(self, dtype: torch.dtype | None = None):
        """(f, L, L0), each computed once (in ``dtype`` if given): the noise's one-step map
        f(e) = a ⊙ e along the last axis, chol Σ_η and chol Σ_e."""
        a, L = self.ar(), self.chol()
        if dtype is not None:
            a, L = a.to(dtype), L.to(dtype)
        # Σ_e factored in the requested dtype (float64 for the filter's first step)
        L0 = torch.linalg.cholesky(self.stationary_cov().to(L.dtype))
        return (lambda x: a * x), L, L0

    @torch.no_grad()
    def _above_floor(self, cov: torch.Tensor, floor: float | None = None) -> torch.Tensor:
        """Sets the floor ε to ``floor`` (default: the current one), lowered to half of the
        innovations' covariance ``cov``'s smallest eigenvalue where cov lies below it; returns
        cov − εI (float64), the part the parameters hold."""
        cov = torch.as_tensor(cov, dtype=torch.float64)
        lo = float(torch.linalg.eigvalsh(cov)[0])
        eps = min(float(self.noise_floor) if floor is None else floor, 0.5 * lo)
        self.noise_floor.fill_(eps)
        return cov - eps * torch.eye(self.n_channels, dtype=cov.dtype, device=cov.device)

    @torch.no_grad()
    def _set_innovation(self, cov: torch.Tensor, floor: float | None = None) -> None:
        """Σ_η = ``cov``, the floor as :meth:`_above_floor` sets it."""
        self.innovation.set_cov(self._above_floor(cov, floor))

    @torch.no_grad()
    def init_from_data(self, values, bin_size, rank):
        """PCA for C and d; a from the lag-1 autocorrelation of each channel's residual
        (clipped to [0, 0.98]); Σ_η the covariance of the residual's innovations
        e_t − a ⊙ e_{t-1}, shrunk towards its diagonal by 5 %, its eigenvalues at least 2ε
        (the floor ε from :func:`innovation_floor`)."""
        y = values.to(self.C.dtype)
        self.noise_floor.fill_(innovation_floor(y))
        cov = self._init_readout(y.reshape(-1, y.shape[-1]), rank)
        resid = self._residual(y - self.d, self.C)
        floor = 1e-2 * cov.diagonal().mean() + 1e-8
        var = resid.pow(2).mean((0, 1)).clamp_min(floor)
        if y.shape[1] > 1:
            a = ((resid[:, 1:] * resid[:, :-1]).mean((0, 1)) / var).clamp(0.0, 0.98)
            innov = (resid[:, 1:] - a * resid[:, :-1]).reshape(-1, y.shape[-1])
        else:
            a = torch.zeros_like(var)
            innov = resid.reshape(-1, y.shape[-1])
        self.raw_ar.copy_(torch.atanh(a / 0.999))
        S = innov.T @ innov / max(1, innov.shape[0] - 1)
        S = 0.95 * S + 0.05 * torch.diag(S.diagonal())
        S = S + torch.diag((var * (1.0 - a * a) * 1e-3).clamp_min(floor * 1e-3))
        lam, V = torch.linalg.eigh(S.double())
        self._set_innovation((V * lam.clamp_min(2.0 * float(self.noise_floor))) @ V.T)

    @staticmethod
    def _residual(centered: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        """What the least-squares projection on C's columns leaves of the centred data."""
        coef = torch.linalg.lstsq(C, centered.reshape(-1, C.shape[0]).T).solution  # (R, n)
        return centered - (C @ coef).T.reshape(centered.shape)

    def to_arrays(self):
        return {"C": _np(self.C), "d": _np(self.d), "noise_x": _np(self.sd()),
                "noise_x_cov": _np(self.innovation_cov()), "noise_ar": _np(self.ar())}

    def _innovation_cov(self, arrays) -> np.ndarray:
        """Σ_η from named arrays: ``noise_x_cov``, else diag(``noise_x``²)."""
        cov = arrays.get("noise_x_cov")
        if cov is None:
            sd = np.broadcast_to(np.asarray(arrays["noise_x"], dtype=float), (self.n_channels,))
            cov = np.diag(sd ** 2)
        return np.array(cov, dtype=float)

    @torch.no_grad()
    def load_arrays(self, arrays):
        self._load_readout(arrays)
        t = self.C
        # the floor at half Σ_η's smallest eigenvalue: the given values exactly
        self._set_innovation(self._innovation_cov(arrays), floor=math.inf)
        a = torch.as_tensor(np.array(arrays["noise_ar"], dtype=float), dtype=t.dtype)
        self.raw_ar.copy_(torch.atanh(a / 0.999))

    @classmethod
    def check_arrays(cls, U, arrays):
        if arrays.get("noise_ar_matrix") is not None:
            raise ValueError("noise_ar_matrix (a full map of the noise) belongs to "
                             "observation='gaussian_var1'; observation='gaussian_ar1' takes "
                             "noise_ar, one coefficient per channel.")
        n_ch, out = GaussianObservation.check_arrays(U, arrays)
        ar = arrays.get("noise_ar")
        ar = np.broadcast_to(check_array("noise_ar", 0.0 if ar is None else ar, ndim=(0, 1)),
                             (n_ch,))
        if np.any(np.abs(ar) >= 0.999):
            raise ValueError(f"noise_ar must lie in (-0.999, 0.999) (one AR(1) coefficient per "
                             f"channel), got values up to {float(np.abs(ar).max()):.4g}.")
        cov = arrays.get("noise_x_cov")
        if cov is not None:
            cov = check_array("noise_x_cov", cov, shape=(n_ch, n_ch))
            if not np.allclose(cov, cov.T) or np.linalg.eigvalsh((cov + cov.T) / 2).min() <= 0:
                raise ValueError("noise_x_cov must be a symmetric positive definite "
                                 f"({n_ch}, {n_ch}) matrix (the innovations' covariance).")
            out["noise_x"] = np.sqrt(np.diag(cov))
        return n_ch, {**out, "noise_ar": np.array(ar, dtype=float),
                      "noise_x_cov": np.diag(out["noise_x"] ** 2) if cov is None else cov}

    def log_prob(self, y, z):
        raise NotImplementedError(
            "observation='gaussian_ar1': y_t depends on y_{t-1} and z_{t-1} as well as z_t; use "
            "log_prob_sequence(y, z) for whole sequences, or proposal='optimal'.")

    log_prob_varying = log_prob

    def log_prob_sequence(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(y_{0:T} | z_{0:T}) summed over time and channels.

        y : (..., T, n_channels); z : (..., T, R) -> shape of the leading dimensions.
        """
        e = y - self.mean(z)
        f, L, L0 = self.noise_factors()
        r0 = torch.linalg.solve_triangular(L0, e[..., 0, :].unsqueeze(-1), upper=False)
        lp = -0.5 * r0.pow(2).sum((-1, -2)) - L0.diagonal().log().sum()
        innov = e[..., 1:, :] - f(e[..., :-1, :])
        w = torch.linalg.solve_triangular(L, innov.transpose(-1, -2), upper=False)
        lp = lp - 0.5 * w.pow(2).sum((-1, -2)) - (e.shape[-2] - 1) * L.diagonal().log().sum()
        return lp - 0.5 * e.shape[-2] * self.n_channels * _LOG_2PI

    def noise(self, shape: tuple[int, ...], generator: torch.Generator | None = None, *,
              device=None, dtype=None) -> torch.Tensor:
        """AR(1) noise e of shape (..., T, n_channels), stationary from the first bin."""
        eta = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        f, L, L0 = self.noise_factors(eta.dtype)
        out = torch.empty_like(eta)
        if shape[-2] == 0:
            return out
        out[..., 0, :] = eta[..., 0, :] @ L0.T
        eta = eta @ L.T
        for t in range(1, shape[-2]):
            out[..., t, :] = f(out[..., t - 1, :]) + eta[..., t, :]
        return out

    def predict_noise(self, residual, k):
        f = self.noise_factors(residual.dtype)[0]
        for _ in range(k):
            residual = f(residual)
        return residual

    def sample(self, z, generator=None):
        """y = C z + d + e with AR(1) noise along the time axis (z: (..., T, R))."""
        mu = self.mean(z)
        if mu.ndim < 2:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            return mu + eps @ self.stationary_chol().T
        return mu + self.noise(tuple(mu.shape), generator, device=mu.device, dtype=mu.dtype)


class GaussianVAR1Observation(GaussianAR1Observation):
    """y_t = C z_t + d + e_t with VAR(1) noise e_t = A e_{t-1} + η_t, η_t ~ N(0, Σ_η).

    As ``gaussian_ar1``, but the noise's one-step map A is a full (n_channels, n_channels)
    matrix: each channel's noise follows the others' (volume conduction, a common reference),
    so the noise's stationary covariance Σ_e = A Σ_e Aᵀ + Σ_η can be the data's. Where the
    channels couple, the diagonal AR(1)'s one-step fit implies a wrong Σ_e: on EEG (64
    channels, 160 Hz, rank-3 fits, the last 20 % held out) the ``gaussian_ar1`` fit's Σ_e was
    0.20–13.8x its posterior residual's covariance along the residual's axes, this model's
    0.39–3.9x; D_stsp 3.35 -> 2.76–2.86 and D_H 0.125 -> 0.086–0.112 (two seeds; a VAR(1) of
    the data: 2.40 / 0.114), held-out log-likelihood 62.4 -> 63.6 nats a bin.

    Parametrised so that every value is stationary: Σ_e = S Sᵀ (``stationary``, a full
    Cholesky factor) and a free matrix X (``raw_coupling``) give M = chol(I + X Xᵀ),
    K = M⁻¹ X (so ‖K‖₂ < 1), A = S K S⁻¹ (spectral radius < 1) and Σ_η = L Lᵀ with the
    triangular L = S M⁻¹ (Σ_e − A Σ_e Aᵀ = S (I − K Kᵀ) Sᵀ). Every stable A with positive
    definite Σ_η has exactly one such (S, X). The floor ε (buffer ``noise_floor``, from the
    data: :func:`innovation_floor`) is added on top: Σ_η = L Lᵀ + εI and Σ_e = S Sᵀ + εW with
    W = A W Aᵀ + I (by doubling, in float64). Without it Σ_η's smallest eigenvalue fell
    5000x below the data's own VAR(1) innovations in a rank-5 EEG fit, until a gradient
    became non-finite at epoch 33. Named arrays: ``C``, ``d``, ``noise_x`` (the
    innovations' SDs), ``noise_x_cov`` (Σ_η) and ``noise_ar_matrix`` (A). Cost: that of
    ``gaussian_ar1`` plus O(C³) once per filter call (64 channels: a few 64x64 products).
    """

    name = "gaussian_var1"

    def __init__(self, n_channels: int, rank: int, *, sd: float = 1.0,
                 generator: torch.Generator | None = None):
        _AffineReadout.__init__(self, n_channels, rank, generator=generator)
        self.stationary = FullCovariance(n_channels, sd)
        self.raw_coupling = nn.Parameter(torch.zeros(n_channels, n_channels))
        # ε, Σ_η >= ε I: set from the data by init_from_data; 0 in fits written before it
        self.register_buffer("noise_floor", torch.zeros(()))

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(chol Σ_e, A, chol Σ_η) in float64, the floor included.

        Float64 throughout: at 64 channels the float32 map A differed from the float64 one by
        0.026 once cond(S) reached 1e6 (measured in a rank-5 EEG fit)."""
        S = self.stationary.chol().double()
        X = self.raw_coupling.double()
        eye = torch.eye(self.n_channels, dtype=X.dtype, device=X.device)
        M = torch.linalg.cholesky(eye + X @ X.T)
        K = torch.linalg.solve_triangular(M, X, upper=False)
        A = torch.linalg.solve_triangular(S, S @ K, upper=False, left=False)  # S K S⁻¹
        L = torch.linalg.solve_triangular(M, S, upper=False, left=False)  # S M⁻¹
        eps = float(self.noise_floor)
        if eps > 0:  # Σ_η = L Lᵀ + εI, Σ_e = S Sᵀ + ε W with W = A W Aᵀ + I
            L = torch.linalg.cholesky(L @ L.T + eps * eye)
            S = torch.linalg.cholesky(S @ S.T + eps * _lyapunov_identity(A))
        return S, A, L

    def ar(self) -> torch.Tensor:
        """A, shape (n_channels, n_channels), spectral radius < 1."""
        return self._factors()[1].to(self.C.dtype)

    def chol(self) -> torch.Tensor:
        return self._factors()[2].to(self.C.dtype)

    def stationary_chol(self) -> torch.Tensor:
        return self._factors()[0].to(self.C.dtype)

    def stationary_cov(self) -> torch.Tensor:
        S = self.stationary_chol()
        return S @ S.T

    def noise_factors(self, dtype: torch.dtype | None = None):
        """(f, L, L0) from one evaluation of the factors: f(e) = A e along the last axis."""
        S, A, L = self._factors()
        dtype = self.C.dtype if dtype is None else dtype
        S, A, L = S.to(dtype), A.to(dtype), L.to(dtype)
        At = A.T
        return (lambda x: x @ At), L, S

    @torch.no_grad()
    def _set_raw(self, A: torch.Tensor, stationary: torch.Tensor) -> None:
        """Parameters (S, X) for the map A and the floor-free part S Sᵀ of Σ_e
        (‖S⁻¹ A S‖₂ < 1)."""
        S = torch.linalg.cholesky(stationary)
        K = torch.linalg.solve_triangular(S, A @ S, upper=False)  # S⁻¹ A S
        eye = torch.eye(self.n_channels, dtype=S.dtype, device=S.device)
        # M lower with Mᵀ M = (I − K Kᵀ)⁻¹: the Cholesky factor of the reversed matrix,
        # reversed; then X = M K has chol(I + X Xᵀ) = M
        Q = torch.linalg.inv(eye - K @ K.T)
        Q = (Q + Q.T) / 2
        N = torch.linalg.cholesky(Q.flip(0, 1))
        M = N.T.flip(0, 1)
        self.stationary.set_cov(stationary)
        self.raw_coupling.copy_((M @ K).to(self.raw_coupling.dtype))

    @torch.no_grad()
    def _set_noise(self, A: torch.Tensor, innovation: torch.Tensor,
                   floor: float | None = None) -> None:
        """Parameters for the map A and the innovations' covariance Σ_η (float64), the floor
        as :meth:`_above_floor` sets it."""
        from scipy.linalg import solve_discrete_lyapunov

        A = A.double()
        raw = self._above_floor(innovation, floor)
        stat = solve_discrete_lyapunov(A.numpy(), raw.numpy())
        self._set_raw(A, torch.as_tensor((stat + stat.T) / 2))

    @torch.no_grad()
    def init_from_data(self, values, bin_size, rank):
        """PCA for C and d; A and Σ_e from the lag-0 and lag-1 covariances of the residual
        (Yule–Walker, Γ₀ shrunk towards its diagonal by 5 %), ‖S⁻¹ A S‖₂ kept <= 0.98; the
        floor ε of Σ_η from the data (:func:`innovation_floor`), the initial Σ_η's
        eigenvalues at least 2ε."""
        y = values.to(self.C.dtype)
        self.noise_floor.fill_(innovation_floor(y))
        cov = self._init_readout(y.reshape(-1, y.shape[-1]), rank)
        resid = self._residual(y - self.d, self.C).double()
        n_ch = y.shape[-1]
        floor = 1e-2 * float(cov.diagonal().mean()) + 1e-8
        flat = resid.reshape(-1, n_ch)
        G0 = flat.T @ flat / max(1, flat.shape[0])
        G0 = 0.95 * G0 + 0.05 * torch.diag(G0.diagonal()) + floor * 1e-3 * torch.eye(
            n_ch, dtype=G0.dtype)
        if y.shape[1] > 1:
            prev, nxt = resid[:, :-1].reshape(-1, n_ch), resid[:, 1:].reshape(-1, n_ch)
            G1 = nxt.T @ prev / max(1, prev.shape[0])
            A = torch.linalg.solve(G0, G1.T).T  # G1 G0⁻¹
            S = torch.linalg.cholesky(G0)
            K = torch.linalg.solve_triangular(S, A @ S, upper=False)
            top = float(torch.linalg.matrix_norm(K, 2))
            if top > 0.98:
                A = A * (0.98 / top)
        else:
            A = torch.zeros_like(G0)
        # the Yule–Walker innovations, their eigenvalues raised to at least 2ε (the residual
        # has none along C's columns)
        lam, V = torch.linalg.eigh(G0 - A @ G0 @ A.T)
        self._set_noise(A, (V * lam.clamp_min(2.0 * float(self.noise_floor))) @ V.T)

    def to_arrays(self):
        _, A, L = self._factors()
        return {"C": _np(self.C), "d": _np(self.d), "noise_x": _np(L.pow(2).sum(1).sqrt()),
                "noise_x_cov": _np(L @ L.T), "noise_ar_matrix": _np(A)}

    @torch.no_grad()
    def load_arrays(self, arrays):
        self._load_readout(arrays)
        n = self.n_channels
        A = arrays.get("noise_ar_matrix")
        A = np.zeros((n, n)) if A is None else np.array(A, dtype=float)
        # the floor at half Σ_η's smallest eigenvalue: the given values exactly
        self._set_noise(torch.as_tensor(A, dtype=torch.float64),
                        torch.as_tensor(self._innovation_cov(arrays), dtype=torch.float64),
                        floor=math.inf)

    @classmethod
    def check_arrays(cls, U, arrays):
        if arrays.get("noise_ar") is not None:
            raise ValueError("observation='gaussian_var1' takes the noise's map as "
                             "noise_ar_matrix (n_channels, n_channels); noise_ar (one "
                             "coefficient per channel) is observation='gaussian_ar1''s.")
        n_ch, out = GaussianAR1Observation.check_arrays(
            U, {**arrays, "noise_ar": None, "noise_ar_matrix": None})
        A = arrays.get("noise_ar_matrix")
        A = np.zeros((n_ch, n_ch)) if A is None else check_array(
            "noise_ar_matrix", A, shape=(n_ch, n_ch))
        rho = float(np.abs(np.linalg.eigvals(A)).max())
        if rho >= 0.999:
            raise ValueError(f"noise_ar_matrix must have spectral radius < 0.999 (a "
                             f"stationary VAR(1) noise), got {rho:.4g}.")
        out.pop("noise_ar", None)
        return n_ch, {**out, "noise_ar_matrix": np.array(A, dtype=float)}


class PoissonObservation(ObservationModel):
    """y ~ Poisson(Δ · f(η)) per channel.

    Parameters
    ----------
    n_channels, rank : int
    bin_size : float
        Δ in seconds; f(η) is then a rate in Hz.
    link : {'softplus', 'exp'}
    readout : {'affine', 'units'}
        'affine': η = C z + d. 'units': recorded neuron i is RNN unit i,
        η_i = β_i φ(u_iᵀ z − h_i) + b_i, with U, h and φ shared with ``transition``.
    transition : LowRankTransition, needed for ``readout='units'``
    """

    kind = "counts"
    name = "poisson"
    default_proposal = "encoder"

    @classmethod
    def check_config(cls, config):
        if config.readout == "units" and config.n_channels > config.n_units:
            raise ValueError(f"readout='units' maps recorded neuron i to unit i, so n_units "
                             f"({config.n_units}) must be >= the number of channels "
                             f"({config.n_channels}).")

    @classmethod
    def build(cls, config, *, transition, generator=None):
        return cls(config.n_channels, config.rank, bin_size=config.bin_size, link=config.link,
                   readout=config.readout, transition=transition, generator=generator)

    @torch.no_grad()
    def init_from_data(self, values, bin_size, rank):
        """The bias from the mean rates; with the affine readout, C from a PCA of the
        smoothed rates mapped through the inverse link (C in η units).

        Factor analysis there instead of PCA (as ``gaussian_sqrt`` starts) changed little:
        hand velocity R² 0.405 / 0.485 against 0.399 / 0.482 at ranks 3 / 4 on the bundled
        S1 recording, 0.200 against 0.201 at rank 4 on M1.
        """
        vals = values.float()
        n_ch = vals.shape[-1]
        mean = vals.reshape(-1, n_ch).mean(0)
        if self.readout == "affine":
            width = min(5, vals.shape[1])
            kernel = torch.ones(n_ch, 1, width) / width
            smooth = torch.nn.functional.conv1d(vals.transpose(1, 2), kernel, groups=n_ch)
            rate = smooth.transpose(1, 2).reshape(-1, n_ch) / bin_size
            eta = self.link.inverse(rate + 0.1 * mean.clamp_min(1e-3) / bin_size)
            self.C.copy_(pca_loadings(eta - eta.mean(0), rank)[0])
        self.init_from_rates(mean.clamp_min(1e-3))

    def to_arrays(self):
        if self.readout == "affine":
            return {"C": _np(self.C), "d": _np(self.d), "link": self.link.name,
                    "readout": "affine"}
        return {"gain": _np(self.gain), "bias": _np(self.bias), "link": self.link.name,
                "readout": "units"}

    @torch.no_grad()
    def load_arrays(self, arrays):
        names = ("C", "d") if self.readout == "affine" else ("gain", "bias")
        for name in names:
            p = getattr(self, name)
            p.copy_(torch.as_tensor(np.array(arrays[name], dtype=float), dtype=p.dtype))

    @classmethod
    def check_arrays(cls, U, arrays):
        C, gain, bias = arrays.get("C"), arrays.get("gain"), arrays.get("bias")
        readout = check_option("readout", arrays.get("readout") or (
            "affine" if C is not None else "units"), ("affine", "units"))
        if readout == "affine":
            if C is None:
                raise ValueError("readout='affine' needs C (n_channels, R).")
            C = check_array("C", C, ndim=2)
            n_ch = C.shape[0]
            d = arrays.get("d")
            d = np.zeros(n_ch) if d is None else check_array("d", d, shape=(n_ch,))
            return n_ch, {"C": C, "d": d, "readout": readout}
        n_ch = U.shape[0] if gain is None else check_array("gain", gain, ndim=1).size
        gain = np.ones(n_ch) if gain is None else check_array("gain", gain, shape=(n_ch,))
        bias = np.zeros(n_ch) if bias is None else check_array("bias", bias, shape=(n_ch,))
        return n_ch, {"gain": gain, "bias": bias, "readout": readout}

    def __init__(self, n_channels: int, rank: int, *, bin_size: float, link: str = "softplus",
                 readout: str = "affine", transition=None,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.n_channels = int(n_channels)
        self.bin_size = float(bin_size)
        self.link: Link = LINKS[check_option("link", link, LINKS)]()
        self.readout = check_option("readout", readout, ("affine", "units"))
        if self.readout == "affine":
            self.C = nn.Parameter(0.1 * torch.randn(n_channels, rank, generator=generator))
            self.d = nn.Parameter(torch.zeros(n_channels))
        else:
            if transition is None or transition.n_units < n_channels:
                n = None if transition is None else transition.n_units
                raise ValueError(f"readout='units' needs n_units >= the number of recorded "
                                 f"channels ({n_channels}), got n_units={n}.")
            # held in a list so that the transition is not registered twice
            self._transition = [transition]
            self.gain = nn.Parameter(torch.ones(n_channels))
            self.bias = nn.Parameter(torch.zeros(n_channels))

    def log_intensity_input(self, z: torch.Tensor) -> torch.Tensor:
        """η, shape (..., n_channels)."""
        if self.readout == "affine":
            return z @ self.C.T + self.d
        tr = self._transition[0]
        n = self.n_channels
        pre = z @ tr.U_t[:, :n] - tr.h[:n]
        return self.gain * tr.phi(pre) + self.bias

    def rate(self, z: torch.Tensor) -> torch.Tensor:
        """Firing rate f(η) in Hz, shape (..., n_channels)."""
        return self.link(self.log_intensity_input(z))

    def mean(self, z):
        return self.bin_size * self.rate(z)

    def log_prob(self, y, z):
        return self.log_prob_varying(y, z) + self.log_prob_constant(y)

    def log_prob_varying(self, y, z):
        # Σ_i y_i log f(η_i) − Δ f(η_i)
        eta = self.log_intensity_input(z)
        rate, log_rate = self.link.rate_and_log(eta)
        return torch.sub(y * log_rate, rate, alpha=self.bin_size).sum(-1)

    def log_prob_constant(self, y):
        # Σ_i y_i log Δ − log y_i!
        return (y * math.log(self.bin_size) - torch.lgamma(y + 1.0)).sum(-1)

    def sample(self, z, generator=None):
        return torch.poisson(self.mean(z), generator=generator)

    @torch.no_grad()
    def init_from_rates(self, mean_counts: torch.Tensor) -> None:
        """Set the bias so that the rate at z = 0 matches ``mean_counts`` (n_channels,)."""
        target = self.link.inverse(mean_counts / self.bin_size)
        z0 = torch.zeros(self._rank(), dtype=target.dtype, device=target.device)
        offset = self.log_intensity_input(z0)  # η at z = 0 with the current bias
        if self.readout == "affine":
            self.d.add_(target - offset)
        else:
            self.bias.add_(target - offset)

    def _rank(self) -> int:
        return self.C.shape[1] if self.readout == "affine" else self._transition[0].rank


OBSERVATIONS: dict[str, type[ObservationModel]] = {}


def register_observation(cls: type[ObservationModel]) -> type[ObservationModel]:
    """Add an observation model to :data:`OBSERVATIONS` under its ``name`` (a decorator)."""
    if not cls.name or cls.kind not in ("continuous", "counts"):
        raise ValueError(f"{cls.__name__} needs a name and a kind ('continuous' or 'counts').")
    OBSERVATIONS[cls.name] = cls
    return cls


register_observation(GaussianObservation)
register_observation(PoissonObservation)
register_observation(GaussianAR1Observation)
register_observation(GaussianVAR1Observation)
register_observation(GaussianSqrtObservation)


# what observation='auto' picks: square-root counts for spikes (on two macaque recordings,
# M1 and S1, its latents decoded hand velocity better than the Poisson model's at ranks 3-5 and
# as well at rank 2, and it fits in a third of the time; README, "Is it better than a simple
# model?")
AUTO_OBSERVATION = {"continuous": "gaussian", "counts": "gaussian_sqrt"}


def observation_for(kind: str, **settings: Any) -> str:
    """The observation model ``observation='auto'`` picks for data of this kind:
    :data:`AUTO_OBSERVATION`'s, or the first registered one made for the kind.

    For counts, settings that only the Poisson model has (``readout='units'``, a ``link``
    other than softplus, ``proposal='encoder'``) pick ``'poisson'``.
    """
    if kind == "counts" and (settings.get("readout", "affine") != "affine"
                             or settings.get("link", "softplus") != "softplus"
                             or settings.get("proposal", "auto") == "encoder"):
        return "poisson"
    if AUTO_OBSERVATION.get(kind) in OBSERVATIONS:
        return AUTO_OBSERVATION[kind]
    for name, cls in OBSERVATIONS.items():
        if cls.kind == kind:
            return name
    raise ValueError(f"no observation model is registered for {kind!r} data.")
