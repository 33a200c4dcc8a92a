"""The particle filter (sequential Monte Carlo) and its typed result.

:func:`particle_filter` runs K particles per sequence with a :class:`Proposal`, resampling every
step or when the effective sample size (ESS) falls below a threshold. Its log-marginal estimate
is the VSMC / FIVO bound's integrand: E[log p̂(y)] <= log p(y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .. import _defaults
from .._validate import check_float, check_int
from ..model.rnn import LowRankRNNModel
from .proposals import Proposal
from .resampling import Resampler, SystematicResampler

__all__ = ["SMCResult", "backward_smoothing", "particle_filter"]


@dataclass
class SMCResult:
    """Output of :func:`particle_filter`.

    Attributes
    ----------
    log_marginal : Tensor, shape (B,)
        log p̂(y_{0:T-1}) per sequence (differentiable).
    ess : Tensor, shape (T, B)
        Effective sample size after each step's weighting, before resampling.
    particles : Tensor, shape (T, K, B, R) or None
        Particles z_t after proposal (before the next resampling).
    log_weights : Tensor, shape (T, K, B) or None
        Normalised filtering log-weights of ``particles``.
    ancestors : LongTensor, shape (T, K, B) or None
        ``ancestors[t, k, b]``: index of the particle at t-1 that particle k at t descends
        from (``ancestors[0]`` is the identity).
    resampled : BoolTensor, shape (T,)
        Whether resampling happened before step t.
    """

    log_marginal: torch.Tensor
    ess: torch.Tensor
    particles: torch.Tensor | None = None
    log_weights: torch.Tensor | None = None
    ancestors: torch.Tensor | None = None
    resampled: torch.Tensor | None = None

    def _need(self):
        if self.particles is None:
            raise ValueError("this SMCResult holds no particles; run particle_filter(..., "
                             "return_particles=True).")

    def filtering_mean(self) -> torch.Tensor:
        """E[z_t | y_{0:t}], shape (B, T, R)."""
        self._need()
        w = self.log_weights.exp().unsqueeze(-1)
        return (w * self.particles).sum(1).transpose(0, 1)

    def filtering_std(self) -> torch.Tensor:
        """Posterior SD of z_t given y_{0:t}, shape (B, T, R)."""
        self._need()
        w = self.log_weights.exp().unsqueeze(-1)
        mu = (w * self.particles).sum(1, keepdim=True)
        var = (w * (self.particles - mu) ** 2).sum(1)
        return var.clamp_min(0).sqrt().transpose(0, 1)

    def smoothed_paths(self) -> torch.Tensor:
        """Ancestral paths of the final particles, shape (K, B, T, R) (filter-smoother)."""
        self._need()
        T, K, B, _ = self.particles.shape
        idx = torch.arange(K, device=self.particles.device).unsqueeze(1).expand(K, B)
        paths = [None] * T
        for t in range(T - 1, -1, -1):
            paths[t] = torch.gather(self.particles[t], 0,
                                    idx.unsqueeze(-1).expand(-1, -1, self.particles.shape[-1]))
            if t > 0:
                idx = torch.gather(self.ancestors[t], 0, idx)
        return torch.stack(paths, dim=2)

    def smoothed_mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and SD of z_t given all of y, from the ancestral paths: (B, T, R) each."""
        paths = self.smoothed_paths()
        w = self.log_weights[-1].exp()[:, :, None, None]
        mu = (w * paths).sum(0)
        var = (w * (paths - mu) ** 2).sum(0)
        return mu, var.clamp_min(0).sqrt()


def backward_smoothing(result: SMCResult, transition: Any,
                       inputs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and SD of z_t given all of y by forward filtering, backward smoothing: (B, T, R).

    Re-weights each step's filtering particles by how well they lead to the next step's
    smoothed particles (Doucet, Godsill & Andrieu 2000): with f the transition density,

        w_{t|T}^i ∝ w_t^i Σ_j w_{t+1|T}^j f(z_{t+1}^j | z_t^i) / Σ_l w_t^l f(z_{t+1}^j | z_t^l).

    Unlike the ancestral paths (:meth:`SMCResult.smoothed_mean_std`), which far from the end of
    a sequence have collapsed onto one or a few ancestors, every step keeps all K particles.
    Cost O(K² R) per step and sequence. The observation must depend on z_t alone (no noise
    with memory: there y_{t+1} also depends on z_t).

    Parameters
    ----------
    result : SMCResult
        From ``particle_filter(..., return_particles=True)``.
    transition : LowRankTransition
        The model's transition (mean and noise).
    inputs : Tensor, shape (B, T, I), optional
        The inputs the filter saw (``inputs[:, t]`` drives t -> t + 1).
    """
    result._need()
    z_all, lw_all = result.particles, result.log_weights  # (T, K, B, R), (T, K, B)
    T, K, B, R = z_all.shape
    L = transition.noise.chol()
    drives_all = transition.drive(inputs) if inputs is not None else None  # (B, T, N)
    mean = torch.empty(T, B, R, dtype=z_all.dtype, device=z_all.device)
    var = torch.empty_like(mean)
    # sequences in chunks, so that the (K, K, chunk, R) temporaries stay near 2**22 numbers
    chunk = max(1, 2**22 // (K * K * R))
    for s in range(0, B, chunk):
        cols = slice(s, min(B, s + chunk))
        z, lw = z_all[:, :, cols], lw_all[:, :, cols]
        drives = None if drives_all is None else drives_all[cols]
        b = z.shape[2]

        def moments(t, logw, z=z, cols=cols):
            w = logw.exp().unsqueeze(-1)  # (K, b, 1)
            mu = (w * z[t]).sum(0)
            mean[t, cols] = mu
            var[t, cols] = (w * (z[t] - mu) ** 2).sum(0)

        ls = lw[-1]
        moments(T - 1, ls)
        for t in range(T - 2, -1, -1):
            m = transition.mean(z[t], None if drives is None else drives[:, t])  # (K, b, R)
            diff = z[t + 1].unsqueeze(1) - m.unsqueeze(0)  # (K_j, K_i, b, R)
            white = torch.linalg.solve_triangular(
                L, diff.reshape(-1, R).T, upper=False).T.reshape(K, K, b, R)
            logf = -0.5 * (white * white).sum(-1)  # (K_j, K_i, b), up to a constant
            denom = torch.logsumexp(lw[t].unsqueeze(0) + logf, dim=1)  # (K_j, b)
            ls = lw[t] + torch.logsumexp((ls - denom).unsqueeze(1) + logf, dim=0)  # (K_i, b)
            ls = ls - torch.logsumexp(ls, dim=0, keepdim=True)
            moments(t, ls)
    return mean.transpose(0, 1), var.clamp_min(0).sqrt().transpose(0, 1)


def particle_filter(model: LowRankRNNModel, proposal: Proposal, y: torch.Tensor, *,
                    inputs: torch.Tensor | None = None,
                    n_particles: int = _defaults.N_PARTICLES,
                    resampler: Resampler | None = None, ess_threshold: float | None = None,
                    generator: torch.Generator | None = None,
                    return_particles: bool = False, fused: bool = True) -> SMCResult:
    """Run a particle filter over a batch of sequences.

    Parameters
    ----------
    model : LowRankRNNModel
    proposal : Proposal
    y : Tensor, shape (B, T, C)
        Observations.
    inputs : Tensor, shape (B, T, I), optional
        External inputs; ``inputs[:, t]`` drives the transition from t to t+1.
    n_particles : int
        K.
    resampler : Resampler, optional
        Default :class:`SystematicResampler`.
    ess_threshold : float in (0, 1], optional
        Resample only when ESS < ess_threshold · K. None resamples at every step.
    generator : torch.Generator, optional
        Source of all randomness (proposal noise and resampling).
    return_particles : bool
        Keep particles, weights and ancestors (needed for posterior latents).
    fused : bool
        Let the proposal run the loop with its hand-written backward where it has one
        (same values and gradients, less overhead); False forces the step-by-step loop.

    Returns
    -------
    SMCResult

    Examples
    --------
    >>> from nwb_lrnn.model import LowRankRNNModel, ModelConfig
    >>> from nwb_lrnn.inference import BootstrapProposal
    >>> g = torch.Generator().manual_seed(0)
    >>> model = LowRankRNNModel(ModelConfig(rank=2, n_units=10, n_channels=3), generator=g)
    >>> _, y = model.sample(4, 50, generator=g)
    >>> res = particle_filter(model, BootstrapProposal(), y, n_particles=32, generator=g)
    >>> tuple(res.log_marginal.shape)
    (4,)
    """
    K = check_int("n_particles", n_particles, min_value=1)
    if ess_threshold is not None:
        check_float("ess_threshold", ess_threshold, min_value=0.0, max_value=1.0,
                    strict_min=True)
    if y.ndim != 3:
        raise ValueError(f"y must have shape (batch, time, channels), got {tuple(y.shape)}.")
    resampler = resampler or SystematicResampler()
    B, T, _ = y.shape
    R = model.rank
    eps = torch.randn(T, K, B, R, generator=generator, device=y.device, dtype=y.dtype)
    ctx = proposal.prepare(model, y, inputs, eps)
    log_K = math.log(K)

    z, logw = proposal.initial(ctx)
    keep = return_particles
    ident = torch.arange(K, device=y.device).unsqueeze(1).expand(K, B)
    parts, ancs, res_flags = [z], [ident], [False]
    if ess_threshold is None:
        # resampling at every step: the weights before each step are uniform, so the
        # log-marginal is Σ_t logsumexp_k(log w_t) − T log K, computed once after the loop
        logws = [logw]
        fused = (proposal.run_fused(ctx, z, logw, resampler, generator)
                 if fused and not keep else None)
        if fused is not None:
            logws.extend(fused.unbind(0))
        for t in range(1, T if fused is None else 1):
            anc = resampler(logw.detach(), generator)
            z = torch.gather(z, 0, anc.unsqueeze(-1).expand(K, B, R))
            z, logw = proposal.step(ctx, t, z)
            logws.append(logw)
            if keep:
                parts.append(z)
                ancs.append(anc)
        all_logw = torch.stack(logws)  # (T, K, B)
        norms = torch.logsumexp(all_logw, 1)  # (T, B)
        log_marg = norms.sum(0) - T * log_K
        all_lw = (all_logw - norms.unsqueeze(1)).detach()
        res_flags += [True] * (T - 1)
    else:
        norm = torch.logsumexp(logw, 0)
        log_marg = norm - log_K
        logW = logw - norm  # normalised log-weights, differentiable
        lws = [logW.detach()]
        for t in range(1, T):
            if bool((_ess(lws[-1]) < ess_threshold * K).any()):
                anc = resampler(lws[-1], generator)
                z = torch.gather(z, 0, anc.unsqueeze(-1).expand(K, B, R))
                logW = torch.full_like(logW, -log_K)
                res_flags.append(True)
            else:
                anc = ident
                res_flags.append(False)
            z, logw = proposal.step(ctx, t, z)
            joint = logW + logw
            norm = torch.logsumexp(joint, 0)
            log_marg = log_marg + norm
            logW = joint - norm
            lws.append(logW.detach())
            if keep:
                parts.append(z)
                ancs.append(anc)
        all_lw = torch.stack(lws)
    log_marg = log_marg + ctx.log_weight_offset
    result = SMCResult(log_marginal=log_marg, ess=_ess(all_lw, dim=1),
                       resampled=torch.tensor(res_flags))
    if keep:
        result.particles = torch.stack(parts)
        result.log_weights = all_lw
        result.ancestors = torch.stack(ancs)
    return result


def _ess(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Effective sample size 1 / Σ W² of normalised log-weights, over the particle axis."""
    w = torch.exp(log_w)
    return 1.0 / (w * w).sum(dim)
