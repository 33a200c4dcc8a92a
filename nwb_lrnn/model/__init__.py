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
    GaussianAR1Observation,
    GaussianObservation,
    ObservationModel,
    PoissonObservation,
    SoftplusLink,
)
from .rnn import LowRankRNNModel, ModelConfig
from .transition import LowRankTransition

__all__ = [
    "NONLINEARITIES", "ClippedReLU", "DiagonalCovariance", "ExpLink", "FullCovariance",
    "GaussianAR1Observation", "GaussianCovariance", "GaussianObservation", "Identity",
    "LowRankRNNModel", "LowRankTransition", "ModelConfig", "Nonlinearity", "ObservationModel",
    "PoissonObservation", "ReLU", "SoftplusLink", "Tanh", "get_nonlinearity",
]
