"""The stochastic low-rank transition in latent coordinates.

    z_{t+1} = a ⊙ z_t + V φ(U z_t + B u_t − h) + ε_t,   ε_t ~ N(0, Σ_z)
    z_0 ~ N(μ_0, Σ_0)

U is (N, R), V is (R, N), so the unit activity x = U z lives in an R-dimensional subspace and
the connectivity is J = U V. The decay a = 1 − Δt/τ is kept in (0, 1) by a sigmoid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .noise import DiagonalCovariance, FullCovariance, GaussianCovariance, make_covariance
from .nonlinearities import Nonlinearity

__all__ = ["LowRankTransition"]


class LowRankTransition(nn.Module):
    """Latent dynamics of a rank-R RNN with N units.

    Parameters
    ----------
    n_units : int
        N, the number of units.
    rank : int
        R, the latent dimension (1 <= R <= N).
    nonlinearity : Nonlinearity
        The unit nonlinearity φ.
    n_inputs : int
        Number of external inputs u_t (0 for none).
    noise_cov : {'diag', 'full'}
        Parametrisation of Σ_z.
    decay : float
        Initial decay a in (0, 1).
    decay_per_dim : bool
        One decay per latent dimension (R,) rather than one shared scalar.
    noise_sd : float
        Initial latent noise SD.
    generator : torch.Generator | None
        Source of randomness for the initial weights.

    Attributes
    ----------
    U : Tensor, shape (N, R) (stored as the parameter ``U_t`` = Uᵀ)
    V : Tensor, shape (R, N) (stored as the parameter ``V_raw`` = N · V)
    h : Parameter, shape (N,)
    B : Parameter, shape (N, n_inputs), only when ``n_inputs > 0``
    """

    def __init__(self, n_units: int, rank: int, nonlinearity: Nonlinearity, *, n_inputs: int = 0,
                 noise_cov: str = "diag", decay: float = 0.9, decay_per_dim: bool = False,
                 noise_sd: float = 0.1, init_sd: float = 1.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.n_units, self.rank, self.n_inputs = int(n_units), int(rank), int(n_inputs)
        self.phi = nonlinearity
        g = generator
        N, R = self.n_units, self.rank
        # U is stored transposed, (R, N): with R small, every product of the forward and
        # backward pass then has the memory layout that BLAS handles fastest.
        self.U_t = nn.Parameter(torch.randn(R, N, generator=g))
        # V is stored as V_raw / N so that Adam's (scale-free) steps change the recurrent map
        # V φ(U z) by O(learning_rate) whatever N is.
        self.v_scale = 1.0 / N
        self.V_raw = nn.Parameter(torch.randn(R, N, generator=g) * ((1.0 - decay) * 2.0
                                                                    * math.sqrt(N)))
        self.h = nn.Parameter(0.5 * torch.randn(N, generator=g))
        self.B = nn.Parameter(torch.randn(N, n_inputs, generator=g)) if n_inputs else None
        logit = math.log(decay / (1.0 - decay))
        self.decay_logit = nn.Parameter(torch.full((R if decay_per_dim else 1,), logit))
        self.noise: GaussianCovariance = make_covariance(noise_cov, R, noise_sd)
        self.init_mean = nn.Parameter(torch.zeros(R))
        self.init_noise: GaussianCovariance = DiagonalCovariance(R, init_sd)

    @property
    def U(self) -> torch.Tensor:
        """Left factor of the connectivity J = U V, shape (N, R)."""
        return self.U_t.T

    @U.setter
    def U(self, value: torch.Tensor) -> None:
        with torch.no_grad():
            self.U_t.copy_(torch.as_tensor(value, dtype=self.U_t.dtype).T)

    @property
    def V(self) -> torch.Tensor:
        """Right factor of the connectivity J = U V, shape (R, N)."""
        return self.V_raw * self.v_scale

    @V.setter
    def V(self, value: torch.Tensor) -> None:
        with torch.no_grad():
            self.V_raw.copy_(torch.as_tensor(value, dtype=self.V_raw.dtype) / self.v_scale)

    @property
    def decay(self) -> torch.Tensor:
        """a in (0, 1), shape (1,) or (R,)."""
        return torch.sigmoid(self.decay_logit)

    def to_arrays(self) -> dict[str, Any]:
        """The parameters as numpy arrays: ``U`` (N, R), ``V`` (R, N), ``h`` (N,), ``decay``
        (a float, or (R,) per dimension), ``B`` (N, n_inputs) or None, ``noise_z`` (SDs (R,)
        for a diagonal Σ_z, the covariance (R, R) for a full one), ``init_mean`` (R,) and
        ``init_sd`` (R,)."""
        def np_(x):
            return x.detach().cpu().numpy().copy()

        return {
            "U": np_(self.U), "V": np_(self.V), "h": np_(self.h),
            "decay": np_(self.decay) if self.decay.numel() > 1 else float(self.decay.detach()),
            "B": None if self.B is None else np_(self.B),
            "noise_z": np_(self.noise.cov()) if isinstance(self.noise, FullCovariance)
            else np_(torch.diagonal(self.noise.chol())),
            "init_mean": np_(self.init_mean),
            "init_sd": np_(torch.diagonal(self.init_noise.chol())),
        }

    @torch.no_grad()
    def load_arrays(self, arrays: dict[str, Any]) -> None:
        """Set the parameters from arrays named as :meth:`to_arrays` gives them (``decay``
        and ``init_sd`` may be scalars, ``noise_z`` a scalar SD; shapes are the caller's to
        check)."""
        dt = self.U_t.dtype

        def t_(x):
            return torch.as_tensor(np.array(x, dtype=float), dtype=dt)

        R = self.rank
        self.U = t_(arrays["U"])
        self.V = t_(arrays["V"])
        self.h.copy_(t_(arrays["h"]))
        a = np.atleast_1d(np.asarray(arrays["decay"], dtype=float))
        self.decay_logit.copy_(t_(np.log(a / (1 - a))).expand_as(self.decay_logit))
        if self.B is not None:
            self.B.copy_(t_(arrays["B"]))
        nz = np.asarray(arrays["noise_z"], dtype=float)
        self.noise.set_cov(t_(np.full(R, nz ** 2) if nz.ndim == 0 else
                              nz ** 2 if nz.ndim == 1 else nz))
        self.init_mean.copy_(t_(arrays["init_mean"]))
        isd = np.broadcast_to(np.asarray(arrays["init_sd"], dtype=float), (R,))
        self.init_noise.set_cov(t_(isd ** 2))

    def drive(self, inputs: torch.Tensor | None) -> torch.Tensor:
        """The constant part of the unit input, B u_t − h.

        Parameters
        ----------
        inputs : Tensor, shape (..., n_inputs), or None

        Returns
        -------
        Tensor, shape (..., N), or (N,) when there are no inputs.
        """
        if inputs is None or self.B is None:
            return -self.h
        return inputs @ self.B.T - self.h

    def mean(self, z: torch.Tensor, drive: torch.Tensor | None = None) -> torch.Tensor:
        """E[z_{t+1} | z_t] = a ⊙ z_t + V φ(U z_t + drive).

        Parameters
        ----------
        z : Tensor, shape (..., R)
        drive : Tensor broadcastable to (..., N), or None for −h

        Returns
        -------
        Tensor, shape (..., R)
        """
        if drive is None:
            drive = -self.h
        shape = z.shape
        z2 = z.reshape(-1, shape[-1])
        if drive.ndim == 1:  # bias fused into the product
            pre = torch.addmm(drive, z2, self.U_t)
        else:
            pre = (z @ self.U_t + drive).reshape(-1, self.n_units)
        out = torch.addmm(self.decay * z2, self.phi.apply_(pre), self.V.T)
        return out.reshape(shape)

    def units(self, z: torch.Tensor) -> torch.Tensor:
        """Unit activity x = U z, shape (..., N) for z of shape (..., R)."""
        return z @ self.U_t

    def sample(self, n_trials: int, n_time: int, *, inputs: torch.Tensor | None = None,
               generator: torch.Generator | None = None, burn_in: int = 0) -> torch.Tensor:
        """Simulate latent trajectories.

        Parameters
        ----------
        n_trials, n_time : int
        inputs : Tensor, shape (n_trials, burn_in + n_time, n_inputs), optional
        burn_in : int
            Steps simulated first and dropped (to start from the stationary process).

        Returns
        -------
        Tensor, shape (n_trials, n_time, R)
        """
        R = self.rank
        dev = self.U.device
        total = burn_in + n_time
        eps = torch.randn(total, n_trials, R, generator=generator, device=dev, dtype=self.U.dtype)
        L = self.noise.chol()
        z = self.init_mean + eps[0] @ self.init_noise.chol().T
        drive = self.drive(inputs)
        out = torch.empty((n_trials, n_time, R), device=dev, dtype=z.dtype)
        if burn_in == 0:
            out[:, 0] = z
        if drive.ndim == 1 and not torch.is_grad_enabled():
            # autonomous and no gradient: the constants once, 3 ops a step (18 us against
            # 90-110 us through mean() for R = 3, N = 96, 4 runs, 1 thread)
            noise = eps[1:] @ L.T
            a = self.decay.expand(R).contiguous()
            Ut, Vt, c = self.U_t.contiguous(), self.V.T.contiguous(), drive.contiguous()
            phi = self.phi
            for t in range(1, total):
                z = torch.addmm(torch.addcmul(noise[t - 1], a, z),
                                phi(torch.addmm(c, z, Ut)), Vt)
                if t >= burn_in:
                    out[:, t - burn_in] = z
            return out
        for t in range(1, total):
            d_t = drive if drive.ndim == 1 else drive[:, t - 1]
            z = self.mean(z, d_t) + eps[t] @ L.T
            if t >= burn_in:
                out[:, t - burn_in] = z
        return out

