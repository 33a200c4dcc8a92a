"""Gaussian noise covariances, constrained by parametrisation.

Both variants expose the lower Cholesky factor ``chol()`` (R, R); the rest of the code never asks
which one it holds. Diagonal entries are positive through ``softplus``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.functional import softplus

__all__ = ["DiagonalCovariance", "FullCovariance", "GaussianCovariance", "make_covariance"]

_EPS = 1e-5


def softplus_inverse(y: torch.Tensor | float) -> torch.Tensor:
    """x with softplus(x) = y, for y > 0."""
    if not torch.is_tensor(y):
        y = torch.as_tensor(y, dtype=torch.get_default_dtype())
    return y + torch.log(-torch.expm1(-y))


class GaussianCovariance(nn.Module):
    """Interface: a trainable R×R covariance Σ = L Lᵀ."""

    kind: str = ""

    def chol(self) -> torch.Tensor:
        """Lower Cholesky factor L, shape (R, R)."""
        raise NotImplementedError

    def cov(self) -> torch.Tensor:
        """Σ = L Lᵀ, shape (R, R)."""
        L = self.chol()
        return L @ L.T

    def set_cov(self, cov: np.ndarray | torch.Tensor) -> None:
        """Set the parameters so that ``cov()`` returns ``cov`` (R, R) (or the SDs (R,))."""
        raise NotImplementedError


class DiagonalCovariance(GaussianCovariance):
    """Σ = diag(sd²); parameters: ``raw_sd`` (R,), sd = softplus(raw_sd) + eps."""

    kind = "diag"

    def __init__(self, dim: int, sd: float = 0.1):
        super().__init__()
        self.raw_sd = nn.Parameter(softplus_inverse(torch.full((dim,), float(sd)) - _EPS))

    def sd(self) -> torch.Tensor:
        return softplus(self.raw_sd) + _EPS

    def chol(self):
        return torch.diag(self.sd())

    @torch.no_grad()
    def set_cov(self, cov):
        cov = torch.as_tensor(np.asarray(cov), dtype=self.raw_sd.dtype)
        sd = cov.sqrt() if cov.ndim == 1 else torch.diagonal(cov).sqrt()
        self.raw_sd.copy_(softplus_inverse(torch.clamp(sd - _EPS, min=1e-6)))


class FullCovariance(GaussianCovariance):
    """Full Σ = L Lᵀ; L lower triangular with softplus-positive diagonal."""

    kind = "full"

    def __init__(self, dim: int, sd: float = 0.1):
        super().__init__()
        self.raw_diag = nn.Parameter(softplus_inverse(torch.full((dim,), float(sd)) - _EPS))
        self.offdiag = nn.Parameter(torch.zeros(dim * (dim - 1) // 2))
        rows, cols = torch.tril_indices(dim, dim, offset=-1)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)
        self.dim = dim

    def chol(self):
        L = torch.diag(softplus(self.raw_diag) + _EPS)
        if self.dim > 1:
            L = L.index_put((self._rows, self._cols), self.offdiag)
        return L

    @torch.no_grad()
    def set_cov(self, cov):
        cov = torch.as_tensor(np.asarray(cov), dtype=self.raw_diag.dtype)
        if cov.ndim == 1:
            cov = torch.diag(cov)
        L = torch.linalg.cholesky(cov)
        self.raw_diag.copy_(softplus_inverse(torch.clamp(torch.diagonal(L) - _EPS, min=1e-6)))
        self.offdiag.copy_(L[self._rows, self._cols])


def make_covariance(kind: str, dim: int, sd: float = 0.1) -> GaussianCovariance:
    """Build a covariance module by name ('diag' or 'full')."""
    from .._validate import check_option

    kind = check_option("noise_cov", kind, ("diag", "full"))
    return DiagonalCovariance(dim, sd) if kind == "diag" else FullCovariance(dim, sd)
