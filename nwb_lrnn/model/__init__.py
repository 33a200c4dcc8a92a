"""Generative model: nonlinearities, low-rank transition, observation models."""

from .noise import DiagonalCovariance, FullCovariance, GaussianCovariance
from .nonlinearities import (
    NONLINEARITIES,
    ClippedReLU,
    Identity,
    Nonlinearity,
    ReLU,
    Tanh,
    get_nonlinearity,
)
from .observation import (
    ExpLink,
    GaussianObservation,
    ObservationModel,
    PoissonObservation,
    SoftplusLink,
)
from .rnn import LowRankRNNModel, ModelConfig
from .transition import LowRankTransition

__all__ = [
    "NONLINEARITIES", "ClippedReLU", "DiagonalCovariance", "ExpLink", "FullCovariance",
    "GaussianCovariance", "GaussianObservation", "Identity", "LowRankRNNModel",
    "LowRankTransition", "ModelConfig", "Nonlinearity", "ObservationModel",
    "PoissonObservation", "ReLU", "SoftplusLink", "Tanh", "get_nonlinearity",
]
