"""Inference: proposals, resampling, the particle filter and the VSMC training loop."""

from .proposals import (
    PROPOSALS,
    BootstrapProposal,
    Encoder,
    EncoderProposal,
    OptimalGaussianProposal,
    Proposal,
    make_proposal,
)
from .resampling import (
    RESAMPLERS,
    MultinomialResampler,
    Resampler,
    SystematicResampler,
    get_resampler,
)
from .smc import SMCResult, backward_smoothing, particle_filter

__all__ = [
    "PROPOSALS", "RESAMPLERS", "BootstrapProposal", "Encoder", "EncoderProposal",
    "MultinomialResampler", "OptimalGaussianProposal", "Proposal", "Resampler", "SMCResult",
    "SystematicResampler", "backward_smoothing", "get_resampler", "make_proposal",
    "particle_filter",
]
