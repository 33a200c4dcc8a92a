"""The particle filter's time loop with a hand-written backward pass.

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

:class:`EncoderPoissonLoop` does the same for the encoder proposal with Poisson observations.
"""

from __future__ import annotations

import torch

__all__ = ["EncoderPoissonLoop", "OptimalLoop"]

# temporaries of the vectorised parts of a backward pass hold about this many numbers (small
# enough to stay in the CPU's cache: larger blocks measured slower, not faster)
_BLOCK_ELEMENTS = 2**16
# the encoder loop keeps η and f(η) of every step for its backward pass up to this many numbers
# per array (64 MiB in float32), and recomputes them beyond (a few % slower, no extra memory)
_KEEP_ELEMENTS = 2**24


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


def _decayed_addmm(x, mat1, mat2, decay, a, out=None):
    """decay ⊙ x + mat1 mat2; ``a`` is the decay as a float when it is one number (it then
    scales x inside the product, one operation fewer), else None."""
    if a is None:
        return torch.addmm(decay * x, mat1, mat2, out=out)
    return torch.addmm(x, mat1, mat2, beta=a, out=out)


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

    Only the time recursion is done step by step: the forward pass keeps z_t and η_t, and the
    backward pass computes everything that does not depend on the recursion (the likelihood's
    gradients, the readout's, the r terms) for all steps at once, and accumulates the
    transition's parameter gradients in blocks of steps, so each step costs a few small
    operations (a step of this loop is bound by per-operation overhead, not arithmetic).
    """

    @staticmethod
    def forward(ctx, z0, U_t, V, drive, decay, A, G, c, beta, C, d, y, half_sq, logw0, phi,
                link, bin_size, resampler, generator):
        K, B, R = z0.shape
        steps = c.shape[0]
        KB = K * B
        n_ch = C.shape[0]
        # particles carry a constant 1 as an extra coordinate, so that each product with a
        # bias is a single matrix product: [z, 1] [U_t; −h] and [z, 1] [Cᵀ; d]
        zp_all = z0.new_empty(steps, KB, R + 1)
        z_all = z0.new_empty(steps, K, B, R + 1)
        zp_all[..., R] = 1.0
        z_all[..., R] = 1.0
        m_all = z0.new_empty(steps, KB, R)
        keep = steps * KB * n_ch <= _KEEP_ELEMENTS
        eta_all = z0.new_empty(steps if keep else 1, KB, n_ch)
        rate_all = z0.new_empty(steps if keep else 1, K, B, n_ch)
        log_buf = z0.new_empty(K, B, n_ch)  # scratch (every elementwise output here is
        terms = z0.new_empty(K, B, n_ch)  # contiguous: strided outputs are several × slower)
        y_scaled = y / -bin_size
        anc_all = torch.empty(steps, B, K, dtype=torch.long, device=z0.device)
        out = z0.new_empty(steps, K, B)
        draws = resampler.presample(steps, K, B, generator, device=z0.device, dtype=z0.dtype)
        a = float(decay) if decay.numel() == 1 else None
        U_aug = torch.cat([U_t, drive.unsqueeze(0)])  # (R + 1, N)
        C_aug = torch.cat([C.T, d.unsqueeze(0)])  # (R + 1, n_ch)
        Vt = V.T
        z, lw = z0, logw0
        for i in range(steps):
            if draws is not None:
                anc = resampler.from_draws(lw, draws[i], out=anc_all[i]).T  # (K, B)
            else:
                anc = resampler(lw, generator)
                anc_all[i] = anc.T
            zp_aug = zp_all[i]
            zp = torch.gather(z, 0, anc.unsqueeze(-1).expand(K, B, R),
                              out=zp_aug.view(K, B, R + 1)[..., :R]).view(KB, R)
            act = phi.apply_(torch.mm(zp_aug, U_aug))
            m = _decayed_addmm(zp, act, Vt, decay, a, out=m_all[i])
            m3 = m.view(K, B, R)
            z_aug = z_all[i]
            z = torch.addcmul(c[i], A[i], m3, out=z_aug[..., :R])
            j = i if keep else 0
            eta = torch.mm(z_aug.view(KB, R + 1), C_aug, out=eta_all[j]).view(K, B, n_ch)
            rate, log_rate = link.rate_and_log(eta, out=rate_all[j], log_out=log_buf)
            # Σ_c [y log f − Δ f] = −Δ Σ_c [f − (y/Δ) log f]
            lw = torch.add(half_sq[i], torch.addcmul(rate, log_rate, y_scaled[i],
                                                     out=terms).sum(-1),
                           alpha=-bin_size, out=out[i])
            r = torch.addcmul(beta[i], G[i], m3)
            lw.sub_((r * r).sum(-1), alpha=0.5)
        if not keep:
            eta_all = rate_all = None
        ctx.save_for_backward(U_aug, V, decay, A, G, beta, C, C_aug, y, zp_all, m_all, z_all,
                              eta_all, rate_all, anc_all)
        ctx.phi, ctx.link, ctx.bin_size = phi, link, bin_size
        return out

    @staticmethod
    def backward(ctx, g_logw):
        (U_aug, V, decay, A, G, beta, C, C_aug, y, zp_all, m_all, z_all, eta_all, rate_all,
         anc_all) = ctx.saved_tensors
        phi, link, bin_size = ctx.phi, ctx.link, ctx.bin_size
        steps, KB, R = m_all.shape
        B, K = anc_all.shape[1:]
        n_ch, N = C.shape[0], U_aug.shape[1]
        opts = {"dtype": V.dtype, "device": V.device}
        gl4 = g_logw.reshape(steps, K, B, 1)
        m4 = m_all.view(steps, K, B, R)
        # dL/dz_t = dL/dc_t, first what reaches each z_t from its own observation: dℓ/dη for
        # all steps (in blocks that bound the temporaries) and the readout's gradients; the
        # recursion below adds what comes back from later steps
        g_C_aug = C.new_zeros(n_ch, R + 1)  # [dL/dC, dL/dd]
        g_c = torch.empty(steps, K, B, R, **opts)
        block = max(1, _BLOCK_ELEMENTS // (KB * n_ch))
        for s in range(0, steps, block):
            e = slice(s, s + block)
            z_e = z_all[e].reshape(-1, R + 1)
            if eta_all is None:  # not kept: recompute
                eta = (z_e @ C_aug).view(-1, K, B, n_ch)
                rate = link(eta)
            else:
                eta, rate = eta_all[e].view(-1, K, B, n_ch), rate_all[e]
            g_eta = link.loglik_grad(eta, y[e].unsqueeze(1), bin_size,
                                     rate=rate).mul_(gl4[e]).view(-1, n_ch)
            g_C_aug.addmm_(g_eta.T, z_e)
            torch.mm(g_eta, C, out=g_c[e].view(-1, R))
        # the proposal's r terms: dℓ/dr = −r
        g_beta = torch.addcmul(beta, G.unsqueeze(1), m4).mul_(gl4).neg_()
        g_G = (g_beta * m4).sum(1)
        g_r_m = g_beta * G.unsqueeze(1)  # what reaches m through r
        # the time recursion, backwards; the transition's parameter gradients are accumulated
        # for blocks of steps at once
        gm_all = torch.empty(steps, KB, R, **opts)
        rows = (anc_all.transpose(1, 2) * B
                + torch.arange(B, device=V.device)).reshape(steps, KB)  # ancestor rows
        g_U_aug = torch.zeros_like(U_aug)  # [dL/dU_t, dL/d drive]
        g_V = torch.zeros_like(V)
        U = U_aug[:R].T
        a = float(decay) if decay.numel() == 1 else None
        per_block = max(1, _BLOCK_ELEMENTS // (KB * N))
        pre_buf = torch.empty(per_block, KB, N, **opts)
        g_pre_buf = torch.empty(per_block, KB, N, **opts)
        g_z0 = torch.zeros(KB, R, **opts)
        for i in range(steps - 1, -1, -1):
            # slot of step i in the block buffers: a block fills them from the last slot down
            slot = per_block - 1 - (steps - 1 - i) % per_block
            gm = torch.addcmul(g_r_m[i], g_c[i], A[i], out=gm_all[i].view(K, B, R)).view(KB, R)
            pre = torch.mm(zp_all[i], U_aug, out=pre_buf[slot])
            g_pre = torch.mm(gm, V, out=g_pre_buf[slot])
            g_pre = phi.backward(g_pre, pre, out=g_pre)
            g_zp = _decayed_addmm(gm, g_pre, U, decay, a)
            # to the particles it was resampled from: z_{i-1} (or z_0)
            (g_c[i - 1].view(KB, R) if i else g_z0).index_add_(0, rows[i], g_zp)
            if slot == 0 or i == 0:  # the block holds steps i .. i + per_block − slot − 1
                hi = i + per_block - slot
                g_V.addmm_(gm_all[i:hi].reshape(-1, R).T,
                           phi.apply_(pre_buf[slot:].view(-1, N)))
                g_U_aug.addmm_(zp_all[i:hi].reshape(-1, R + 1).T,
                               g_pre_buf[slot:].view(-1, N))
        g_decay = (gm_all * zp_all[..., :R]).sum((0, 1))
        g_A = (g_c * m4).sum(1)
        return (g_z0.view(K, B, R), g_U_aug[:R], g_V, g_U_aug[R], _decay_grad(g_decay, decay),
                g_A, g_G, g_c, g_beta, g_C_aug[:, :R], g_C_aug[:, R],
                None, None, None, None, None, None, None, None)
