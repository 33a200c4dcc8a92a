"""The particle filter's time loop with a hand-written backward pass (optimal proposal).

Autograd records about twenty small operations per time step and replays them backwards; for
the model sizes of this package that bookkeeping, not arithmetic, dominates a step on the CPU.
:class:`OptimalLoop` runs the loop of :class:`~nwb_lrnn.inference.OptimalGaussianProposal` once
without a graph, keeps only the resampled particles z_{t-1}, the transition means m_t and the
ancestor indices, and computes all gradients in one backward sweep (recomputing the unit
pre-activations). It computes exactly what autograd computes (a test checks every gradient).

Per step t >= 1, with rows indexing (particle, sequence) pairs:

    zp  = z_{t-1}[ancestors]                       (resampling, no gradient through indices)
    m   = a ⊙ zp + φ(zp Uᵀ − h) Vᵀ                 (transition mean; U stored as U_t = Uᵀ)
    z_t = m Aᵀ + shift_t                           (Kalman-updated proposal sample)
    ℓ_t = (m Qh + lin_t) · m                        (log-weight up to per-sequence constants)
"""

from __future__ import annotations

import torch

__all__ = ["EncoderPoissonLoop", "OptimalLoop"]


def _buffers(z0: torch.Tensor, steps: int):
    """Per-step storage of the forward pass: resampled particles, means, ancestors, weights."""
    K, B, R = z0.shape
    return (z0.new_empty(steps, K * B, R), z0.new_empty(steps, K * B, R),
            torch.empty(steps, K, B, dtype=torch.long, device=z0.device),
            z0.new_empty(steps, K, B))


def _transition_forward(zp, U_t, Vt, drive, decay, phi, out):
    """m = a ⊙ zp + φ(zp U_t + drive) Vᵀ, written into ``out`` (K·B, R)."""
    return torch.addmm(decay * zp, phi.apply_(torch.addmm(drive, zp, U_t)), Vt, out=out)


def _transition_backward(gm, zp, U_t, V, drive, decay, phi, grads):
    """Accumulate the transition's parameter gradients; return the gradient wrt zp.

    ``grads`` holds the accumulators for U_t, V, drive and the decay (per dimension).
    """
    pre = torch.addmm(drive, zp, U_t)
    g_pre = phi.backward(gm @ V, pre)
    grads["V"].addmm_(gm.T, phi.apply_(pre))
    grads["U_t"].addmm_(zp.T, g_pre)
    grads["drive"] += g_pre.sum(0)
    grads["decay"] += (gm * zp).sum(0)
    return torch.addmm(decay * gm, g_pre, U_t.T)


def _grad_accumulators(U_t, V, drive, R):
    return {"U_t": torch.zeros_like(U_t), "V": torch.zeros_like(V),
            "drive": torch.zeros_like(drive),
            "decay": torch.zeros(R, dtype=V.dtype, device=V.device)}


def _decay_grad(rows, decay):
    return rows.sum().reshape(decay.shape) if decay.numel() == 1 else rows


class OptimalLoop(torch.autograd.Function):
    """Steps 1..T-1 of the optimal-proposal filter; returns log-weights (T-1, K, B).

    Inputs: z0 (K, B, R); U_t (R, N); V (R, N); drive (N,) = −h; decay (1,) or (R,);
    At (R, R); Qh (R, R); shift (T-1, K·B, R); lin (T-1, K·B, R); logw0 (K, B), plus the
    nonlinearity, the resampler and the generator (not differentiated).
    """

    @staticmethod
    def forward(ctx, z0, U_t, V, drive, decay, At, Qh, shift, lin, logw0, phi, resampler,
                generator):
        K, B, R = z0.shape
        steps = shift.shape[0]
        KB = K * B
        zp_all, m_all, anc_all, out = _buffers(z0, steps)
        z, lw = z0, logw0
        Vt = V.T
        for i in range(steps):
            anc = resampler(lw, generator)
            anc_all[i] = anc
            zp = torch.gather(z, 0, anc.unsqueeze(-1).expand(K, B, R),
                              out=zp_all[i].view(K, B, R)).view(KB, R)
            m = _transition_forward(zp, U_t, Vt, drive, decay, phi, m_all[i])
            z = torch.addmm(shift[i], m, At).view(K, B, R)
            lw = out[i]
            torch.sum(torch.addmm(lin[i], m, Qh).mul_(m), dim=-1, out=lw.view(KB))
        ctx.save_for_backward(U_t, V, drive, decay, At, Qh, lin, zp_all, m_all, anc_all)
        ctx.phi = phi
        return out

    @staticmethod
    def backward(ctx, g_logw):
        U_t, V, drive, decay, At, Qh, lin, zp_all, m_all, anc_all = ctx.saved_tensors
        phi = ctx.phi
        steps, KB, R = zp_all.shape
        K, B = anc_all.shape[1:]
        g_logw = g_logw.reshape(steps, KB, 1)
        g_shift = torch.empty_like(zp_all)
        g_lin = torch.empty_like(zp_all)
        grads = _grad_accumulators(U_t, V, drive, R)
        Qs = Qh + Qh.T
        At_T = At.T
        gz = torch.zeros(KB, R, dtype=V.dtype, device=V.device)
        for i in range(steps - 1, -1, -1):
            m, zp, gl = m_all[i], zp_all[i], g_logw[i]
            g_shift[i] = gz
            torch.mul(gl, m, out=g_lin[i])
            gm = torch.addmm(lin[i], m, Qs).mul_(gl).addmm_(gz, At_T)
            g_zp = _transition_backward(gm, zp, U_t, V, drive, decay, phi, grads)
            anc = anc_all[i]
            gz = torch.zeros(K, B, R, dtype=V.dtype, device=V.device).scatter_add_(
                0, anc.unsqueeze(-1).expand(K, B, R), g_zp.view(K, B, R)).view(KB, R)
        m_flat = m_all.reshape(-1, R)
        g_At = m_flat.T @ g_shift.reshape(-1, R)
        g_Qh = m_flat.T @ g_lin.reshape(-1, R)
        return (gz.view(K, B, R), grads["U_t"], grads["V"], grads["drive"],
                _decay_grad(grads["decay"], decay), g_At, g_Qh, g_shift, g_lin,
                None, None, None, None)


class EncoderPoissonLoop(torch.autograd.Function):
    """Steps 1..T-1 of the encoder-proposal filter with Poisson observations (affine readout,
    diagonal latent noise); returns log-weights (T-1, K, B).

    Per step, with the proposal factors of :class:`~nwb_lrnn.inference.EncoderProposal`:

        m   = a ⊙ zp + φ(zp Uᵀ − h) Vᵀ
        z_t = A_t ⊙ m + c_t,   r = G_t ⊙ m + β_t,   η = z_t Cᵀ + d
        ℓ_t = Σ_c [y log f(η) − Δ f(η)] − ½ |r|² + ½ |ε_t|²

    Inputs: z0 (K, B, R); U_t, V (R, N); drive (N,); decay; A, G (T-1, B, R);
    c, beta (T-1, K, B, R); C (n_ch, R); d (n_ch,); y (T-1, B, n_ch); half_sq (T-1, K, B);
    logw0 (K, B); then φ, link, Δ, resampler, generator (not differentiated).
    """

    @staticmethod
    def forward(ctx, z0, U_t, V, drive, decay, A, G, c, beta, C, d, y, half_sq, logw0, phi,
                link, bin_size, resampler, generator):
        K, B, R = z0.shape
        steps = c.shape[0]
        KB = K * B
        zp_all, m_all, anc_all, out = _buffers(z0, steps)
        n_ch = C.shape[0]
        # keep the rates for the backward pass unless that would take much memory
        rates = z0.new_empty(steps, K, B, n_ch) if steps * KB * n_ch <= 2**24 else None
        z, lw = z0, logw0
        Vt, Ct = V.T, C.T
        for i in range(steps):
            anc = resampler(lw, generator)
            anc_all[i] = anc
            zp = torch.gather(z, 0, anc.unsqueeze(-1).expand(K, B, R),
                              out=zp_all[i].view(K, B, R)).view(KB, R)
            m = _transition_forward(zp, U_t, Vt, drive, decay, phi, m_all[i])
            m3 = m.view(K, B, R)
            z = torch.addcmul(c[i], A[i], m3)
            r = torch.addcmul(beta[i], G[i], m3)
            rate, log_rate = link.rate_and_log(torch.addmm(d, z.view(KB, R), Ct))
            rate = rate.view(K, B, n_ch)
            if rates is not None:
                rates[i] = rate
            ll = torch.sub(log_rate.view(K, B, n_ch).mul_(y[i]), rate,
                           alpha=bin_size).sum(-1)
            lw = out[i]
            torch.sub(ll + half_sq[i], (r * r).sum(-1), alpha=0.5, out=lw)
        ctx.save_for_backward(U_t, V, drive, decay, A, G, c, beta, C, d, y, zp_all, m_all,
                              anc_all, rates)
        ctx.phi, ctx.link, ctx.bin_size = phi, link, bin_size
        return out

    @staticmethod
    def backward(ctx, g_logw):
        (U_t, V, drive, decay, A, G, c, beta, C, d, y, zp_all, m_all,
         anc_all, rates) = ctx.saved_tensors
        phi, link, bin_size = ctx.phi, ctx.link, ctx.bin_size
        steps, KB, R = zp_all.shape
        K, B = anc_all.shape[1:]
        opts = {"dtype": V.dtype, "device": V.device}
        g_c = torch.empty_like(c)
        g_beta = torch.empty_like(beta)
        g_A = torch.empty_like(A)
        g_G = torch.empty_like(G)
        grads = _grad_accumulators(U_t, V, drive, R)
        g_C, g_d = torch.zeros_like(C), torch.zeros_like(d)
        gz_next = torch.zeros(K, B, R, **opts)  # gradient reaching z_t from step t+1
        for i in range(steps - 1, -1, -1):
            m, zp, gl = m_all[i], zp_all[i], g_logw[i].unsqueeze(-1)  # gl (K, B, 1)
            m3 = m.view(K, B, R)
            z = torch.addcmul(c[i], A[i], m3)
            r = torch.addcmul(beta[i], G[i], m3)
            eta = torch.addmm(d, z.view(KB, R), C.T).view(K, B, -1)
            # dℓ/dη = f'(η) (y / f(η) − Δ), written through the link
            g_eta = link.loglik_grad(eta, y[i], bin_size,
                                     rate=None if rates is None else rates[i])
            g_eta = g_eta.mul_(gl).view(KB, -1)
            g_C.addmm_(g_eta.T, z.view(KB, R))
            g_d += g_eta.sum(0)
            gz = torch.addmm(gz_next.view(KB, R), g_eta, C).view(K, B, R)
            g_r = r.mul_(gl).neg_()
            g_c[i] = gz
            g_beta[i] = g_r
            g_A[i] = (gz * m3).sum(0)
            g_G[i] = (g_r * m3).sum(0)
            gm = torch.addcmul(gz * A[i], g_r, G[i]).view(KB, R)
            g_zp = _transition_backward(gm, zp, U_t, V, drive, decay, phi,
                                        grads).view(K, B, R)
            gz_next = torch.zeros(K, B, R, **opts).scatter_add_(
                0, anc_all[i].unsqueeze(-1).expand(K, B, R), g_zp)
        return (gz_next, grads["U_t"], grads["V"], grads["drive"],
                _decay_grad(grads["decay"], decay), g_A, g_G, g_c, g_beta, g_C, g_d,
                None, None, None, None, None, None, None, None)
