"""Resampling schemes for the particle filter.

A resampler maps normalised log-weights (K, B) to ancestor indices (K, B). Indices carry no
gradient: the VSMC gradient ignores the resampling step.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from .._validate import check_option

__all__ = ["RESAMPLERS", "MultinomialResampler", "Resampler", "SystematicResampler",
           "get_resampler"]


class Resampler:
    """Interface: ``resampler(log_weights, generator) -> ancestors``.

    Parameters
    ----------
    log_weights : Tensor, shape (K, B)
        Log-weights per particle and sequence (need not be normalised).
    generator : torch.Generator, optional

    Returns
    -------
    LongTensor, shape (K, B): the ancestor of each new particle.
    """

    name: ClassVar[str] = ""

    def __call__(self, log_weights: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def presample(self, steps: int, K: int, B: int, generator=None, *, device=None,
                  dtype=torch.float32) -> torch.Tensor | None:
        """Draw the randomness of ``steps`` resampling steps at once, or None when this
        scheme cannot (then call the resampler at each step). See :meth:`from_draws`."""
        return None

    def from_draws(self, log_weights: torch.Tensor, draws: torch.Tensor,
                   out: torch.Tensor | None = None) -> torch.Tensor:
        """Ancestors from pre-drawn randomness ``draws[i]`` (one step of
        :meth:`presample`), shape (B, K) — the transpose of :meth:`__call__`'s result."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MultinomialResampler(Resampler):
    """K independent draws from the categorical distribution of the weights."""

    name = "multinomial"

    @torch.no_grad()
    def __call__(self, log_weights, generator=None):
        probs = torch.softmax(log_weights.detach(), dim=0).T  # (B, K)
        K = log_weights.shape[0]
        return torch.multinomial(probs, K, replacement=True, generator=generator).T.contiguous()


class SystematicResampler(Resampler):
    """One uniform offset per sequence, K evenly spaced points on the weights' CDF."""

    name = "systematic"

    @torch.no_grad()
    def __call__(self, log_weights, generator=None):
        K, B = log_weights.shape
        draws = self.presample(1, K, B, generator, device=log_weights.device,
                               dtype=log_weights.dtype)[0]
        return self.from_draws(log_weights, draws).T

    @torch.no_grad()
    def presample(self, steps, K, B, generator=None, *, device=None, dtype=torch.float32):
        """The K evenly spaced points of each step and sequence, (steps, B, K)."""
        u = torch.rand(steps, B, 1, generator=generator, device=device, dtype=dtype)
        return (u + torch.arange(K, device=device, dtype=dtype)).div_(K)

    def from_draws(self, log_weights, draws, out=None):
        # no torch.no_grad() here: it costs more than the rest on small inputs, and nothing
        # below records a gradient (detach; searchsorted has none)
        cdf = torch.softmax(log_weights.detach().T, dim=1).cumsum_(dim=1)  # (B, K)
        # a last CDF value a rounding error below 1 can return K: clamped to K − 1
        return torch.searchsorted(cdf, draws, out=out).clamp_(max=log_weights.shape[0] - 1)


RESAMPLERS: dict[str, type[Resampler]] = {
    cls.name: cls for cls in (MultinomialResampler, SystematicResampler)
}


def get_resampler(spec: str | Resampler) -> Resampler:
    """Map 'multinomial' / 'systematic' (or an instance) to a :class:`Resampler`."""
    if isinstance(spec, Resampler):
        return spec
    return RESAMPLERS[check_option("resampling", spec, RESAMPLERS)]()
