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


def _decayed_addmm(x, mat1, mat2, decay, a, out=None):
    """decay ⊙ x + mat1 mat2; ``a`` is the decay as a float when it is one number (it then
    scales x inside the product, one operation fewer), else None."""
    if a is None:
        return torch.addmm(decay * x, mat1, mat2, out=out)
    return torch.addmm(x, mat1, mat2, beta=a, out=out)


def _resampled_mean(z, lw, draws, anc_out, zp_aug, m_out, resampler, generator, U_aug, Vt,
                    decay, a, phi):
    """One step's resampling and transition mean, written into the step's slots.

    z (K, B, R) resampled by the log-weights lw (K, B) (from pre-drawn ``draws`` when given)
    into ``zp_aug`` (K·B, R + 1, its last column 1), ancestors into ``anc_out`` (B, K); returns
    m = a ⊙ zp + φ([zp, 1] [U_t; −h]) Vᵀ written into ``m_out`` (K·B, R).
    """
    K, B, R = z.shape
    if draws is not None:
        anc = resampler.from_draws(lw, draws, out=anc_out).T  # (K, B)
    else:
        anc = resampler(lw, generator)
        anc_out.copy_(anc.T)
    zp = torch.gather(z, 0, anc.unsqueeze(-1).expand(K, B, R),
                      out=zp_aug.view(K, B, R + 1)[..., :R]).view(K * B, R)
    act = phi.apply_(torch.mm(zp_aug, U_aug))
    return _decayed_addmm(zp, act, Vt, decay, a, out=m_out)


class _TransitionBackward:
    """Backward through the transition means m_i = a ⊙ zp_i + φ([zp_i, 1] [U_t; −h]) Vᵀ, one
    step at a time from the last: :meth:`step` gives dL/dzp_i from dL/dm_i.

    The unit pre-activations are recomputed into block buffers and the parameter gradients
    (``g_U_aug`` = [dL/dU_t; dL/d drive], ``g_V``) accumulated once per block of steps (a
    block is complete at its first step), ``gm_all`` (steps, K·B, R) holding the dL/dm.
    """

    def __init__(self, zp_all, gm_all, U_aug, V, decay, phi):
        steps, KB, _ = zp_all.shape
        N = U_aug.shape[1]
        opts = {"dtype": V.dtype, "device": V.device}
        self.zp_all, self.gm_all, self.U_aug, self.V, self.phi = zp_all, gm_all, U_aug, V, phi
        self.U = U_aug[:-1].T
        self.decay = decay
        self.a = float(decay) if decay.numel() == 1 else None
        self.steps, self.N = steps, N
        self.per_block = max(1, _BLOCK_ELEMENTS // (KB * N))
        self.pre_buf = torch.empty(self.per_block, KB, N, **opts)
        self.g_pre_buf = torch.empty(self.per_block, KB, N, **opts)
        self.g_U_aug = torch.zeros_like(U_aug)
        self.g_V = torch.zeros_like(V)

    def step(self, i: int, gm: torch.Tensor) -> torch.Tensor:
        per_block, N, phi = self.per_block, self.N, self.phi
        slot = per_block - 1 - (self.steps - 1 - i) % per_block  # filled from the last down
        pre = torch.mm(self.zp_all[i], self.U_aug, out=self.pre_buf[slot])
        g_pre = phi.backward(torch.mm(gm, self.V, out=self.g_pre_buf[slot]), pre,
                             out=self.g_pre_buf[slot])
        g_zp = _decayed_addmm(gm, g_pre, self.U, self.decay, self.a)
        if slot == 0 or i == 0:  # the block holds steps i .. i + per_block − slot − 1
            hi = i + per_block - slot
            R = gm.shape[1]
            self.g_V.addmm_(self.gm_all[i:hi].reshape(-1, R).T,
                            phi.apply_(self.pre_buf[slot:].view(-1, N)))
            self.g_U_aug.addmm_(self.zp_all[i:hi].reshape(-1, R + 1).T,
                                self.g_pre_buf[slot:].view(-1, N))
        return g_zp


def _decay_grad(rows, decay):
    return rows.sum().reshape(decay.shape) if decay.numel() == 1 else rows


class OptimalLoop(torch.autograd.Function):
    """Steps 1..T-1 of the optimal-proposal filter; returns log-weights (T-1, K, B).

    Inputs: z0 (K, B, R); U_t (R, N); V (R, N); drive (N,) = −h; decay (1,) or (R,);
    At (R, R); Qh (R, R); shift (T-1, K·B, R); lin (T-1, K·B, R); logw0 (K, B), plus the
    nonlinearity, the resampler and the generator (not differentiated).

    Laid out as :class:`EncoderPoissonLoop`: the particles carry a constant 1 (one product
    with [U_t; −h]), the resampling randomness is drawn once, and the backward pass scatters
    each step's gradient straight into the previous step's slot and accumulates the
    transition's parameter gradients in blocks of steps. Against the earlier layout (one
    resampling draw per step, per-step gradient sums): 1.15-1.17× faster on the EEG step
    (17.7 -> 15.1 ms) and 1.12-1.17× on the Gaussian student-teacher (25.5 -> 22.8 ms) in two
    runs of ``benchmarks/bench_loops_ab.py`` (one process, 1 thread, load 0.6-0.7).
    """

    @staticmethod
    def forward(ctx, z0, U_t, V, drive, decay, At, Qh, shift, lin, logw0, phi, resampler,
                generator):
        K, B, R = z0.shape
        steps = shift.shape[0]
        KB = K * B
        zp_all = z0.new_empty(steps, KB, R + 1)
        zp_all[..., R] = 1.0
        m_all = z0.new_empty(steps, KB, R)
        out = z0.new_empty(steps, K, B)
        # the resampling randomness of all steps in one draw (the same numbers as one draw
        # per step), ancestors kept (B, K) as from_draws gives them
        draws = resampler.presample(steps, K, B, generator, device=z0.device, dtype=z0.dtype)
        anc_all = torch.empty(steps, B, K, dtype=torch.long, device=z0.device)
        a = float(decay) if decay.numel() == 1 else None
        U_aug = torch.cat([U_t, drive.unsqueeze(0)])  # (R + 1, N)
        Vt = V.T
        z, lw = z0, logw0
        for i in range(steps):
            m = _resampled_mean(z, lw, None if draws is None else draws[i], anc_all[i],
                                zp_all[i], m_all[i], resampler, generator, U_aug, Vt, decay,
                                a, phi)
            z = torch.addmm(shift[i], m, At).view(K, B, R)
            lw = out[i]
            torch.sum(torch.addmm(lin[i], m, Qh).mul_(m), dim=-1, out=lw.view(KB))
        ctx.save_for_backward(U_aug, V, decay, At, Qh, lin, zp_all, m_all, anc_all)
        ctx.phi = phi
        return out

    @staticmethod
    def backward(ctx, g_logw):
        U_aug, V, decay, At, Qh, lin, zp_all, m_all, anc_all = ctx.saved_tensors
        phi = ctx.phi
        steps, KB, R = m_all.shape
        B, K = anc_all.shape[1:]
        opts = {"dtype": V.dtype, "device": V.device}
        gl = g_logw.reshape(steps, KB, 1)
        # dL/dz_i = dL/dshift_i, filled in by step i + 1's scatter before step i is reached
        g_shift = torch.zeros(steps, KB, R, **opts)
        g_z0 = torch.zeros(KB, R, **opts)
        gm_all = torch.empty(steps, KB, R, **opts)
        rows = (anc_all.transpose(1, 2) * B
                + torch.arange(B, device=V.device)).reshape(steps, KB)  # ancestor rows
        tb = _TransitionBackward(zp_all, gm_all, U_aug, V, decay, phi)
        Qs = Qh + Qh.T
        At_T = At.T
        for i in range(steps - 1, -1, -1):
            gm = torch.addmm(lin[i], m_all[i], Qs, out=gm_all[i]).mul_(gl[i])
            gm.addmm_(g_shift[i], At_T)
            g_zp = tb.step(i, gm)
            # to the particles it was resampled from: z_{i-1} (or z_0)
            (g_shift[i - 1] if i else g_z0).index_add_(0, rows[i], g_zp)
        g_lin = gl * m_all
        g_decay = (gm_all * zp_all[..., :R]).sum((0, 1))
        m_flat = m_all.reshape(-1, R)
        g_At = m_flat.T @ g_shift.reshape(-1, R)
        g_Qh = m_flat.T @ g_lin.reshape(-1, R)
        return (g_z0.view(K, B, R), tb.g_U_aug[:R], tb.g_V, tb.g_U_aug[R],
                _decay_grad(g_decay, decay), g_At, g_Qh, g_shift, g_lin, None, None, None, None)


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
            m = _resampled_mean(z, lw, None if draws is None else draws[i], anc_all[i],
                                zp_all[i], m_all[i], resampler, generator, U_aug, Vt, decay,
                                a, phi)
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
        n_ch = C.shape[0]
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
        tb = _TransitionBackward(zp_all, gm_all, U_aug, V, decay, phi)
        g_z0 = torch.zeros(KB, R, **opts)
        for i in range(steps - 1, -1, -1):
            gm = torch.addcmul(g_r_m[i], g_c[i], A[i], out=gm_all[i].view(K, B, R)).view(KB, R)
            g_zp = tb.step(i, gm)
            # to the particles it was resampled from: z_{i-1} (or z_0)
            (g_c[i - 1].view(KB, R) if i else g_z0).index_add_(0, rows[i], g_zp)
        g_decay = (gm_all * zp_all[..., :R]).sum((0, 1))
        g_A = (g_c * m4).sum(1)
        return (g_z0.view(K, B, R), tb.g_U_aug[:R], tb.g_V, tb.g_U_aug[R],
                _decay_grad(g_decay, decay), g_A, g_G, g_c, g_beta, g_C_aug[:, :R], g_C_aug[:, R],
                None, None, None, None, None, None, None, None)
