"""Proposal distributions q(z_t | z_{t-1}, y) for the particle filter, behind one interface.

A proposal is used in two phases:

1. ``prepare(model, y, inputs, noise)`` once per filter call (once per optimiser step): every
   quantity that does not depend on the particles is computed here for the whole sequence
   (Kalman gains and Cholesky factors, encoder outputs, input drives, the Gaussian noise).
2. ``initial(ctx)`` and ``step(ctx, t, z_prev)`` inside the time loop, returning new particles
   and their *incremental* log-weights log p(y_t|z_t) + log p(z_t|z_{t-1}) − log q(z_t|·).

Shapes: y (B, T, C), inputs (B, T, I), particles (K, B, R), log-weights (K, B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.functional import softplus

from .._validate import check_int, check_option
from ..model.noise import softplus_inverse
from ..model.observation import OBSERVATIONS, GaussianAR1Observation, GaussianObservation
from ..model.rnn import LowRankRNNModel

__all__ = [
    "PROPOSALS",
    "BootstrapProposal",
    "EncoderProposal",
    "OptimalGaussianProposal",
    "Proposal",
    "check_proposal",
    "encoder_kernels",
    "make_proposal",
    "register_proposal",
]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class _Context:
    """Per-call precomputations shared by the proposals (internal)."""

    model: LowRankRNNModel
    y: torch.Tensor  # (B, T, C)
    drive: torch.Tensor  # (N,) or (B, T, N): B u_t − h
    eps: torch.Tensor  # (T, K, B, R) standard normal draws
    extra: dict[str, Any]
    # Σ_t of the parts of the log-weights that are the same for every particle (B,) or 0: a
    # proposal may leave them out of the per-step weights (they cancel in the normalised
    # weights); the filter adds them to the log-marginal once.
    log_weight_offset: torch.Tensor | float = 0.0

    def __post_init__(self):
        self._drives = None if self.drive.ndim == 1 else self.drive.unbind(1)
        self.y_t = self.y.unbind(1)

    def drive_at(self, t: int) -> torch.Tensor:
        """Drive of the transition from t-1 to t: (N,) or (B, N)."""
        return self.drive if self._drives is None else self._drives[t - 1]


class Proposal(nn.Module):
    """Interface of a proposal (see the module docstring); a subclass registered in
    :data:`PROPOSALS` (:func:`register_proposal`) is all it takes to add one.

    Attributes
    ----------
    name : str
        Its name (``LowRankRNN(proposal=name)``).
    observations : tuple of str or None
        The observation models it works with (None: any).
    trained : bool
        Whether it has parameters that are fitted with the model (then a network given by
        its parameters, never fitted, filters with its observation's untrained default
        only if that is not trained; see ``LowRankRNN.from_parameters``).
    options : tuple of str
        The keyword options :meth:`build` takes (others given to :func:`make_proposal` are
        ignored).
    """

    name: ClassVar[str] = ""
    observations: ClassVar[tuple[str, ...] | None] = None
    trained: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def build(cls, model: LowRankRNNModel, *, generator: torch.Generator | None = None,
              **options: Any) -> Proposal:
        """A proposal for ``model`` (``options``: those named in :attr:`options`)."""
        return cls()

    def prepare(self, model: LowRankRNNModel, y: torch.Tensor, inputs: torch.Tensor | None,
                eps: torch.Tensor) -> _Context:
        drive = model.transition.drive(inputs)
        return _Context(model=model, y=y, drive=drive, eps=eps, extra={})

    def initial(self, ctx: _Context) -> tuple[torch.Tensor, torch.Tensor]:
        """Particles z_0 (K, B, R) and their log-weights (K, B)."""
        raise NotImplementedError

    def step(self, ctx: _Context, t: int,
             z_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Particles z_t (K, B, R) from resampled z_{t-1} and incremental log-weights (K, B)."""
        raise NotImplementedError

    def run_fused(self, ctx: _Context, z0: torch.Tensor, logw0: torch.Tensor, resampler,
                  generator) -> torch.Tensor | None:
        """Optionally run steps 1..T-1 (resampling every step) in one fused operation.

        Returns the log-weights (T-1, K, B) or None (then the filter calls :meth:`step`).
        """
        return None


class BootstrapProposal(Proposal):
    """q = the transition p(z_t | z_{t-1}); weight = p(y_t | z_t). Any observation model."""

    name = "bootstrap"

    def initial(self, ctx):
        tr = ctx.model.transition
        z = tr.init_mean + ctx.eps[0] @ tr.init_noise.chol().T
        return z, ctx.model.observation.log_prob_varying(ctx.y_t[0], z)

    def prepare(self, model, y, inputs, eps):
        ctx = super().prepare(model, y, inputs, eps)
        noise = eps[1:] @ model.transition.noise.chol().T  # (T-1, K, B, R)
        ctx.extra["noise"] = noise.unbind(0)
        ctx.log_weight_offset = model.observation.log_prob_constant(y).sum(1)
        return ctx

    def step(self, ctx, t, z_prev):
        z = ctx.model.transition.mean(z_prev, ctx.drive_at(t)) + ctx.extra["noise"][t - 1]
        return z, ctx.model.observation.log_prob_varying(ctx.y_t[t], z)


def _gaussian_update_factors(prior_cov: torch.Tensor, C: torch.Tensor, sd: torch.Tensor,
                             y_centered: torch.Tensor) -> dict[str, torch.Tensor]:
    """Factors of the Kalman update of N(m, Σ) by y = C z + d + N(0, diag sd²).

    With D = diag sd², Λ = Σ⁻¹ + Cᵀ D⁻¹ C and P = Λ⁻¹ the posterior is
    N(P Σ⁻¹ m + P Cᵀ D⁻¹ (y − d), P) and the predictive density N(y; C m + d, C Σ Cᵀ + D)
    has log-density −½ (c_y + mᵀ Q m + mᵀ l_y + logdet S + C log 2π), all computed in
    R dimensions (Woodbury), never forming the C×C covariance.

    Parameters
    ----------
    prior_cov : (R, R)
    C : (C, R); sd : (C,); y_centered : (..., C) the data minus d

    Returns
    -------
    dict with A = P Σ⁻¹ (R, R), P_chol (R, R), Q (R, R), and per data point pe = P e (..., R),
    lin (..., R), const (...) where e = Cᵀ D⁻¹ (y − d).
    """
    R = prior_cov.shape[0]
    eye = torch.eye(R, dtype=prior_cov.dtype, device=prior_cov.device)
    L = torch.linalg.cholesky(prior_cov)
    prior_prec = torch.cholesky_inverse(L)
    CtDinv = (C / (sd * sd)[:, None]).T  # (R, C)
    G = CtDinv @ C
    Lam = prior_prec + G
    Lam_chol = torch.linalg.cholesky(Lam)
    P = torch.cholesky_inverse(Lam_chol)
    P = 0.5 * (P + P.T)
    P_chol = torch.linalg.cholesky(P)
    e = y_centered @ CtDinv.T  # (..., R)
    s = ((y_centered / sd) ** 2).sum(-1)  # (...)
    pe = e @ P  # P symmetric
    logdet_S = (2.0 * torch.log(sd).sum() + 2.0 * torch.log(torch.diagonal(L)).sum()
                + 2.0 * torch.log(torch.diagonal(Lam_chol)).sum())
    n_obs = C.shape[0]
    Q = G - G @ P @ G
    lin = -2.0 * (e - pe @ G)  # −2 (I − G P) e, G and P symmetric
    const = s - (e * pe).sum(-1) + logdet_S + n_obs * _LOG_2PI
    return {"A": P @ prior_prec, "P_chol": P_chol, "Q": 0.5 * (Q + Q.T), "pe": pe, "lin": lin,
            "const": const, "eye": eye, "P": P, "G": G, "logdet": logdet_S}


class OptimalGaussianProposal(Proposal):
    """The locally optimal proposal for Gaussian observations (a Kalman update per particle).

    q(z_t | z_{t-1}, y_t) ∝ p(z_t | z_{t-1}) p(y_t | z_t) is Gaussian with a covariance shared by
    all particles and time steps; the incremental weight is the predictive density
    N(y_t; C m_t + d, C Σ_z Cᵀ + diag σ²) of m_t = E[z_t | z_{t-1}], independent of the sample.
    Gains and Cholesky factors are computed once per call (once per optimiser step). With AR(1)
    observation noise (``observation='gaussian_ar1'``) the update of z_t also sees the
    particle's z_{t-1} (through e_{t-1} = y_{t-1} − C z_{t-1} − d) and the correlated
    innovations are whitened: still exact, in float64, step by step (no fused loop).
    """

    name = "optimal"
    observations = ("gaussian", "gaussian_ar1", "gaussian_var1", "gaussian_sqrt")

    def prepare(self, model, y, inputs, eps):
        obs = model.observation
        if not isinstance(obs, (GaussianObservation, GaussianAR1Observation)):
            raise ValueError("proposal='optimal' needs a Gaussian observation model, got "
                             f"{type(obs).__name__}; use 'encoder' or 'bootstrap'.")
        ctx = super().prepare(model, y, inputs, eps)
        if isinstance(obs, GaussianAR1Observation):
            return self._prepare_ar1(ctx, model, y, eps)
        tr = model.transition
        yc = obs.gaussian_values(y) - obs.d
        sd = obs.sd()
        f0 = _gaussian_update_factors(tr.init_noise.cov(), obs.C, sd, yc[:, 0])
        f = _gaussian_update_factors(tr.noise.cov(), obs.C, sd, yc[:, 1:])
        # noise of every step, already scaled and shifted: pe_t + P_chol ε_t
        shift0 = f0["pe"] + eps[0] @ f0["P_chol"].T  # (K, B, R)
        shift = f["pe"].transpose(0, 1).unsqueeze(1) + eps[1:] @ f["P_chol"].T  # (T-1, K, B, R)
        R = tr.rank
        # one product m @ [Aᵀ | Q] per step gives both the proposal mean and the weight's
        # quadratic form
        # The weight is −½ (mᵀ Q m + mᵀ l_t + c_t): −½ is folded into Q and l, c_t goes to the
        # offset. One product m @ [Aᵀ | −½Q] per step gives the proposal mean and the weight.
        # Per-step slices come from unbind (one graph node) rather than indexing (a node and a
        # full-size zero gradient per step).
        K, B = eps.shape[1], eps.shape[2]
        lin = (-0.5 * f["lin"]).transpose(0, 1).unsqueeze(1).expand(-1, K, -1, -1)
        # 2-D (K·B, R) per-step operands so that each step is two fused addmm calls
        lin_all = lin.reshape(-1, K * B, R)
        shift_all = shift.reshape(-1, K * B, R)
        ctx.extra.update(f0=f0, At=f["A"].T, Qh=-0.5 * f["Q"], R=R, lin_all=lin_all,
                         shift_all=shift_all, lin=lin_all.unbind(0), shift=shift_all.unbind(0),
                         shift0=shift0, ar=False)
        ctx.log_weight_offset = -0.5 * f["const"].sum(1)
        jac = obs.log_jacobian(y)  # transformed counts (gaussian_sqrt): the density of y
        if jac is not None:
            ctx.log_weight_offset = ctx.log_weight_offset + jac.sum(1)
        return ctx

    def _prepare_ar1(self, ctx, model, y, eps):
        """AR(1) noise: y_t − d − a ⊙ (y_{t-1} − d) = C z_t − (a ⊙ C) z_{t-1} + η_t, so the
        Kalman update of z_t sees ỹ_t + (a ⊙ C) z_{t-1}: the data part ỹ_t here, the
        particle's part in :meth:`step`. The correlated innovations are whitened (L⁻¹ with
        Σ_η = L Lᵀ; the density gains −log|L| per bin).

        Whitened signals are large against the unit noise (|L⁻¹ C| ~ 10²–10³ on EEG), and the
        weight |r|² − vᵀ P v (r = ỹ − C̃ m the whitened residual, v = C̃ᵀ r) subtracts two
        nearly equal numbers where the residual lies along C̃. In float32 the bound reached
        7·10⁷ nats a bin within 10 Adam steps at lr 1e-2 on EEG (and 10¹² with the weight
        formed from the residual in float32), where float64 stayed at 41–56; so the factors
        and the steps run in float64, the particles and weights are handed back in the
        model's dtype.
        """
        obs, tr = model.observation, model.transition
        dt = y.dtype
        # e ↦ a ⊙ e (gaussian_ar1) or A e (gaussian_var1), chol Σ_η, chol Σ_e
        ar, L, L0 = obs.noise_factors(torch.float64)
        yc = (y - obs.d).double()
        C = obs.C.double()

        def white(M, x):  # M⁻¹ x along the last axis
            flat = x.reshape(-1, x.shape[-1]).T
            return torch.linalg.solve_triangular(M, flat, upper=False).T.reshape(x.shape)

        ones = torch.ones(C.shape[0], dtype=torch.float64, device=C.device)
        f0 = _gaussian_update_factors(tr.init_noise.cov().double(), white(L0, C.T).T, ones,
                                      white(L0, yc[:, 0]))
        f0["const"] = f0["const"] + 2.0 * L0.diagonal().log().sum()
        ytil = white(L, yc[:, 1:] - ar(yc[:, :-1]))  # (B, T-1, C)
        Cw = white(L, C.T).T
        Caw = white(L, ar(C.T)).T  # L⁻¹ (a ⊙ C), or L⁻¹ A C
        f = _gaussian_update_factors(tr.noise.cov().double(), Cw, ones, ytil)
        n_obs = C.shape[0]
        logdet = f["logdet"] + 2.0 * L.diagonal().log().sum()
        K, B, R = eps.shape[1], eps.shape[2], tr.rank
        shift0 = f0["pe"] + eps[0].double() @ f0["P_chol"].T  # f0 stays float64 (initial)
        shift = (f["pe"].transpose(0, 1).unsqueeze(1)
                 + eps[1:].double() @ f["P_chol"].T)  # (T-1, K, B, R), float64
        # Per step, with g = [m, w] (m = E[z_t | z_{t-1}], w = z_{t-1}) and u = C̃ₐ w − C̃ m:
        # r = ỹ_t + u, |r|² = |ỹ_t|² + 2 g·[−p_t, q_t] + gᵀ H g, v = C̃ᵀ r = p_t + g W_v,
        # with p_t = C̃ᵀ ỹ_t, q_t = C̃ₐᵀ ỹ_t and the (2R, ·) Gram blocks below: one
        # (K·B, 2R) @ (2R, 4R) product per step instead of four through the C channels.
        # Measured (forward + backward of one filter call, rank 3, 64 units, B=8, T=200,
        # K=64, 1 thread, same run): 64 channels 0.389 s through the channels -> 0.359 s
        # (load 0.1), 256 channels 0.915 s -> 0.266 s (load 0.5). Float64 keeps the
        # expanded |r|² exact enough: |ỹ|² ~ 10⁸ leaves ~10⁻⁸ nats of rounding.
        Gww, Gwa, Gaa = Cw.T @ Cw, Cw.T @ Caw, Caw.T @ Caw
        CaP = Caw.T @ Cw @ f["P"]  # z_{t-1} ↦ P C̃ᵀ L⁻¹ (a ⊙ C) z_{t-1}, as rows
        W = torch.cat([
            torch.cat([f["A"].T, -Gww, Gww, -Gwa], 1),
            torch.cat([CaP, Gwa.T, -Gwa.T, Gaa], 1)], 0)  # (2R, 4R)
        p, q = ytil @ Cw, ytil @ Caw  # (B, T-1, R)
        lin2 = (2.0 * torch.cat([-p, q], -1)).transpose(0, 1).unsqueeze(1).expand(
            -1, K, -1, -1).reshape(-1, K * B, 2 * R)
        pk = p.transpose(0, 1).unsqueeze(1).expand(-1, K, -1, -1).reshape(-1, K * B, R)
        yy = (ytil * ytil).sum(-1).transpose(0, 1).unsqueeze(1).expand(-1, K, -1).reshape(
            -1, K * B)
        ctx.extra.update(
            f0=f0, shift0=shift0, ar=True, R=R, W=W, P=f["P"],
            shift=shift.reshape(-1, K * B, R).unbind(0), lin2=lin2.unbind(0),
            pk=pk.unbind(0), yy=yy.unbind(0))
        ctx.log_weight_offset = (-0.5 * (y.shape[1] - 1) * (logdet + n_obs * _LOG_2PI)).to(
            dt).expand(B)
        return ctx

    def _step_ar1(self, ctx, t, z_prev):
        x = ctx.extra
        R = x["R"]
        m = ctx.model.transition.mean(z_prev, ctx.drive_at(t))
        # float64 (see _prepare_ar1): large whitened terms cancel in |r|² − vᵀ P v
        g = torch.cat([m, z_prev], -1).reshape(-1, 2 * R).double()
        out = g @ x["W"]
        # proposal mean A m + P C̃ᵀ ỹ_k: the data part is in shift, the particle's here
        z = x["shift"][t - 1] + out[:, :R]
        v = x["pk"][t - 1] + out[:, R:2 * R]
        quad = ((out[:, 2 * R:] + x["lin2"][t - 1]) * g).sum(-1)
        logw = -0.5 * (x["yy"][t - 1] + quad - ((v @ x["P"]) * v).sum(-1))
        return z.to(m.dtype).view(m.shape), logw.to(m.dtype).view(m.shape[:-1])

    def initial(self, ctx):
        tr = ctx.model.transition
        f0 = ctx.extra["f0"]
        m = tr.init_mean.expand_as(ctx.eps[0]).to(f0["A"].dtype)  # AR(1) noise: float64
        z = m @ f0["A"].T + ctx.extra["shift0"]
        logw = -0.5 * (((m @ f0["Q"] + f0["lin"]) * m).sum(-1) + f0["const"])
        return z.to(ctx.eps.dtype), logw.to(ctx.eps.dtype)

    def run_fused(self, ctx, z0, logw0, resampler, generator):
        """Steps 1..T-1 with a hand-written backward (:class:`~.fused.OptimalLoop`).

        Returns the log-weights (T-1, K, B), or None where the fused loop does not apply
        (time-varying inputs): the caller then runs :meth:`step`.
        """
        if ctx.drive.ndim != 1 or not torch.is_grad_enabled() or ctx.extra["ar"]:
            return None
        from .fused import OptimalLoop

        tr, x = ctx.model.transition, ctx.extra
        return OptimalLoop.apply(z0, tr.U_t, tr.V, ctx.drive, tr.decay, x["At"], x["Qh"],
                                 x["shift_all"], x["lin_all"], logw0.detach(), tr.phi,
                                 resampler, generator)

    def step(self, ctx, t, z_prev):
        x = ctx.extra
        if x["ar"]:
            return self._step_ar1(ctx, t, z_prev)
        m = ctx.model.transition.mean(z_prev, ctx.drive_at(t))
        m2 = m.reshape(-1, x["R"])
        z = torch.addmm(x["shift"][t - 1], m2, x["At"])
        logw = (torch.addmm(x["lin"][t - 1], m2, x["Qh"]) * m2).sum(-1)
        return z.view(m.shape), logw.view(m.shape[:-1])


def encoder_kernels(kernel_size: Any) -> tuple[int, ...]:
    """The encoder's kernel sizes, one per convolution, from ``kernel_size``.

    An int ``k`` means two convolutions of size ``k`` (the package's default encoder); a
    sequence gives one convolution per entry, the last one producing mean and SD.

    Examples
    --------
    >>> encoder_kernels(11)
    (11, 11)
    >>> encoder_kernels([21, 11, 1])
    (21, 11, 1)
    """
    if isinstance(kernel_size, (list, tuple)):
        if not 1 <= len(kernel_size) <= 16:
            raise ValueError(f"encoder_kernel: give 1 to 16 kernel sizes, got "
                             f"{len(kernel_size)}.")
        return tuple(check_int("encoder_kernel", k, min_value=1, max_value=1 << 16)
                     for k in kernel_size)
    k = check_int("encoder_kernel", kernel_size, min_value=1, max_value=1 << 16)
    return (k, k)


class Encoder(nn.Module):
    """1-D CNN mapping observations (B, T, C) to a Gaussian over z_t: mean and SD (B, T, R).

    Convolutions of the given kernel sizes, ``hidden`` channels between them and a GELU after
    each but the last, whose 2R outputs are the mean and (through softplus) the SD. The
    default is two convolutions of size 11; ``kernel_size=(21, 11, 1)``, ``hidden=64``,
    ``causal=True``, ``padding='circular'`` is the encoder of the reference implementation's
    Poisson student-teacher example.

    Parameters
    ----------
    n_channels, rank : int
    hidden : int
        Channels of each hidden convolution.
    kernel_size : int | sequence of int
        Temporal extent of each convolution: an int ``k`` means ``(k, k)``.
    causal : bool
        True: e(z_t) sees y_{≤t} only (filtering). False: a window centred on t (smoothing).
    padding : {'zeros', 'circular'}
        What each convolution sees beyond the ends of the window: zeros, or the window wrapped
        around (then a causal encoder's first steps see the window's last ones).
    transform : {'identity', 'log1p'}
        Applied to y first ('log1p' for counts).

    Examples
    --------
    >>> enc = Encoder(40, 2, kernel_size=(21, 11, 1), causal=True, padding="circular")
    >>> mean, sd = enc(torch.zeros(3, 50, 40))
    >>> tuple(mean.shape), tuple(sd.shape)
    ((3, 50, 2), (3, 50, 2))
    """

    def __init__(self, n_channels: int, rank: int, *, hidden: int = 64,
                 kernel_size: int | tuple[int, ...] = 11, causal: bool = False,
                 padding: str = "zeros", transform: str = "identity",
                 generator: torch.Generator | None = None):
        super().__init__()
        self.causal = bool(causal)
        self.kernels = encoder_kernels(kernel_size)
        self.kernel_size = kernel_size if isinstance(kernel_size, int) else list(self.kernels)
        hidden = check_int("encoder_hidden", hidden, min_value=1)
        self.padding = check_option("encoder_padding", padding, ("zeros", "circular"))
        self.transform = check_option("encoder_transform", transform, ("identity", "log1p"))
        n = len(self.kernels)
        # named conv1, conv2, ... (the two-layer default's names, which fit files store)
        for i, k in enumerate(self.kernels):
            self.add_module(f"conv{i + 1}", nn.Conv1d(n_channels if i == 0 else hidden,
                                                      2 * rank if i == n - 1 else hidden, k))
        if generator is not None:
            with torch.no_grad():
                for conv in self.convs:
                    bound = 1.0 / math.sqrt(conv.in_channels * conv.kernel_size[0])
                    conv.weight.uniform_(-bound, bound, generator=generator)
                    conv.bias.uniform_(-bound, bound, generator=generator)
        last = self.convs[-1]
        with torch.no_grad():  # start uninformative: q ≈ the transition, not a random guess
            last.weight.mul_(0.01)
            last.bias.zero_()
            last.bias[rank:] = float(softplus_inverse(3.0))
        self.rank = rank

    @property
    def convs(self) -> list[nn.Conv1d]:
        return [getattr(self, f"conv{i + 1}") for i in range(len(self.kernels))]

    def _pad(self, x, kernel: int):
        k = kernel - 1
        left, right = (k, 0) if self.causal else (k // 2, k - k // 2)
        if not k:
            return x
        if self.padding == "zeros":
            return nn.functional.pad(x, (left, right))
        # circular for any window length (torch's mode='circular' needs pad <= length)
        T = x.shape[-1]
        idx = torch.arange(-left, T + right, device=x.device) % T
        return x[..., idx]

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.log1p(y) if self.transform == "log1p" else y
        x = x.transpose(1, 2)  # (B, C, T)
        convs = self.convs
        for i, conv in enumerate(convs):
            x = conv(self._pad(x, self.kernels[i]))
            if i < len(convs) - 1:
                x = nn.functional.gelu(x)
        x = x.transpose(1, 2)  # (B, T, 2R)
        mean, raw = x[..., : self.rank], x[..., self.rank:]
        return mean, softplus(raw) + 1e-3

    def flops(self, batch: int, T: int) -> int:
        """Multiply-adds ×2 of one forward pass over (batch, T): the convolutions' work."""
        return sum(2 * c.in_channels * c.out_channels * c.kernel_size[0] for c in self.convs) \
            * batch * T


class EncoderProposal(Proposal):
    """q(z_t | z_{t-1}, y) ∝ p(z_t | z_{t-1}) · N(z_t; μ_e(y)_t, diag σ_e(y)_t²).

    The encoder is a small CNN (:class:`Encoder`) trained jointly with the model. Works with
    any observation model (needed for Poisson data).
    """

    name = "encoder"
    trained = True
    options = ("kernel_size", "hidden", "causal", "padding", "transform")

    def __init__(self, n_channels: int, rank: int, **encoder_kwargs):
        super().__init__()
        self.encoder = Encoder(n_channels, rank, **encoder_kwargs)

    @classmethod
    def build(cls, model, *, generator=None, **options):
        return cls(model.config.n_channels, model.config.rank, generator=generator, **options)

    @staticmethod
    def _factors(prior_chol, enc_mean, enc_sd, eps):
        """Proposal factors for prior N(m, L Lᵀ) times the encoder's N(μ_e, diag σ_e²).

        With P = (Σ⁻¹ + diag σ_e⁻²)⁻¹ the proposal is N(A m + b, P), A = P Σ⁻¹, b = P σ_e⁻² μ_e.
        A sample is z = A m + c with c = b + chol(P) ε, and the transition's whitened residual
        is r = L⁻¹ (z − m) = G m + β with G = L⁻¹ (A − I), β = L⁻¹ c.

        Parameters
        ----------
        prior_chol : (R, R) lower Cholesky factor L of the prior covariance
        enc_mean, enc_sd : (B, T, R)
        eps : (T, K, B, R) standard normal draws

        Returns
        -------
        A, G : (T, B, R) for a diagonal L, else (T, B, R, R); c, beta : (T, K, B, R);
        logdet_q : (B, T) log det P.
        """
        enc_prec = enc_sd.transpose(0, 1) ** -2  # (T, B, R)
        mu = enc_mean.transpose(0, 1)
        if bool((prior_chol - torch.diag(torch.diagonal(prior_chol))).eq(0).all()):
            sig = torch.diagonal(prior_chol)  # (R,)
            P = 1.0 / (sig ** -2 + enc_prec)  # (T, B, R)
            A = P / sig ** 2
            c = (P * enc_prec * mu).unsqueeze(1) + P.sqrt().unsqueeze(1) * eps
            return A, (A - 1.0) / sig, c, c / sig, torch.log(P).sum(-1).T
        prior_prec = torch.cholesky_inverse(prior_chol)
        P = torch.cholesky_inverse(torch.linalg.cholesky(prior_prec + torch.diag_embed(enc_prec)))
        P = 0.5 * (P + P.transpose(-1, -2))
        P_chol = torch.linalg.cholesky(P)  # (T, B, R, R)
        A = P @ prior_prec
        b = (P @ (enc_prec * mu).unsqueeze(-1)).squeeze(-1)  # (T, B, R)
        c = b.unsqueeze(1) + (P_chol.unsqueeze(1) @ eps.unsqueeze(-1)).squeeze(-1)
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        L_inv = torch.linalg.solve_triangular(prior_chol, eye, upper=False)
        G = L_inv @ (A - eye)
        beta = c @ L_inv.T
        logdet_q = 2.0 * torch.log(torch.diagonal(P_chol, dim1=-2, dim2=-1)).sum(-1).T
        return A, G, c, beta, logdet_q

    @staticmethod
    def _matvec(M: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """M m for M (B, R) diagonal or (B, R, R), m (..., B, R)."""
        if M.ndim == 2:
            return M * m
        return (M @ m.unsqueeze(-1)).squeeze(-1)

    def prepare(self, model, y, inputs, eps):
        ctx = super().prepare(model, y, inputs, eps)
        tr = model.transition
        obs = model.observation
        mean, sd = self.encoder(y)  # (B, T, R)
        L0, L = tr.init_noise.chol(), tr.noise.chol()
        A0, G0, c0, beta0, ld0 = self._factors(L0, mean[:, :1], sd[:, :1], eps[:1])
        A, G, c, beta, ld = self._factors(L, mean[:, 1:], sd[:, 1:], eps[1:])
        # per-step weight: log p(y|z) (varying part) − ½|r|² + ½|ε|²; the particle-independent
        # rest (observation constants, log-determinants, 2π) goes to the offset
        logdet_p0 = 2.0 * torch.log(torch.diagonal(L0)).sum()
        logdet_p = 2.0 * torch.log(torch.diagonal(L)).sum()
        T = y.shape[1]
        ctx.log_weight_offset = (obs.log_prob_constant(y).sum(1)
                                 + 0.5 * (ld0[:, 0] + ld.sum(1))
                                 - 0.5 * (logdet_p0 + (T - 1) * logdet_p))
        half_sq = 0.5 * (eps * eps).sum(-1)
        # stacked over time (indexing one step costs what unbinding all steps costs per step,
        # and the fused loop never needs the per-step views)
        ctx.extra.update(A0=A0[0], G0=G0[0], c0=c0[0], beta0=beta0[0],
                         A=A, G=G, c=c, beta=beta, half_sq=half_sq)
        return ctx

    def run_fused(self, ctx, z0, logw0, resampler, generator):
        """Steps 1..T-1 with a hand-written backward (:class:`~.fused.EncoderPoissonLoop`) for
        Poisson observations with an affine readout and a diagonal latent noise; None (the
        caller then runs :meth:`step`) otherwise."""
        from ..model.observation import PoissonObservation

        obs = ctx.model.observation
        x = ctx.extra
        A, G, c, beta, half_sq = x["A"], x["G"], x["c"], x["beta"], x["half_sq"][1:]
        if (ctx.drive.ndim != 1 or not torch.is_grad_enabled() or A.ndim != 3
                or not isinstance(obs, PoissonObservation) or obs.readout != "affine"):
            return None
        from .fused import EncoderPoissonLoop

        tr = ctx.model.transition
        y = ctx.y[:, 1:].transpose(0, 1)  # (T-1, B, n_ch)
        return EncoderPoissonLoop.apply(z0, tr.U_t, tr.V, ctx.drive, tr.decay, A, G, c, beta,
                                        obs.C, obs.d, y, half_sq, logw0.detach(), tr.phi,
                                        obs.link, obs.bin_size, resampler, generator)

    def _finish(self, ctx, t, m, A, G, c, beta):
        z = self._matvec(A, m) + c
        r = self._matvec(G, m) + beta
        logw = (ctx.model.observation.log_prob_varying(ctx.y_t[t], z)
                - 0.5 * (r * r).sum(-1) + ctx.extra["half_sq"][t])
        return z, logw

    def initial(self, ctx):
        x = ctx.extra
        m = ctx.model.transition.init_mean.expand_as(x["c0"])
        return self._finish(ctx, 0, m, x["A0"], x["G0"], x["c0"], x["beta0"])

    def step(self, ctx, t, z_prev):
        x = ctx.extra
        m = ctx.model.transition.mean(z_prev, ctx.drive_at(t))
        return self._finish(ctx, t, m, x["A"][t - 1], x["G"][t - 1], x["c"][t - 1],
                            x["beta"][t - 1])


PROPOSALS: dict[str, type[Proposal]] = {}


def register_proposal(cls: type[Proposal]) -> type[Proposal]:
    """Add a proposal to :data:`PROPOSALS` under its ``name`` (a decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name.")
    PROPOSALS[cls.name] = cls
    return cls


for _cls in (BootstrapProposal, OptimalGaussianProposal, EncoderProposal):
    register_proposal(_cls)


def check_proposal(name: str, observation: str) -> None:
    """ValueError when the proposal ``name`` does not work with ``observation``."""
    def works(n: str) -> bool:
        obs = OBSERVATIONS.get(observation)
        if obs is not None and obs.proposals is not None and n not in obs.proposals:
            return False
        allowed = PROPOSALS[n].observations
        return allowed is None or observation in allowed

    if not works(name):
        others = " or ".join(repr(n) for n in PROPOSALS if works(n))
        allowed = PROPOSALS[name].observations
        if allowed is not None and observation not in allowed:
            need = " or ".join(f"observation={a!r}" for a in allowed)
            raise ValueError(f"proposal={name!r} needs {need}; for observation={observation!r} "
                             f"use proposal={others}.")
        raise ValueError(f"observation={observation!r} can only be filtered by proposal="
                         f"{others} (its y_t depends on the previous bin too); got "
                         f"proposal={name!r}.")


def make_proposal(name: str, model: LowRankRNNModel, *, generator=None,
                  **options) -> Proposal:
    """Build a proposal for ``model`` from its name (one of :data:`PROPOSALS`).

    ``options`` are passed on to the proposal's ``build`` where it takes them (the encoder's
    ``kernel_size``, ``hidden``, ``causal``, ``padding``, ``transform``) and ignored otherwise.
    """
    cls = PROPOSALS[check_option("proposal", name, tuple(PROPOSALS))]
    check_proposal(cls.name, model.config.observation)
    return cls.build(model, generator=generator,
                     **{k: v for k, v in options.items() if k in cls.options})
