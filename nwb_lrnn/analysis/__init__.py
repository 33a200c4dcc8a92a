"""Analyses of fitted networks (fixed points, metrics) and of data."""

from .compare import correlation_similarity, latent_noise_in_observation_space
from .fixed_points import Cycles, FixedPoints, find_cycles, find_fixed_points, zaslavsky_bound

__all__ = ["Cycles", "FixedPoints", "correlation_similarity", "find_cycles", "find_fixed_points",
           "latent_noise_in_observation_space", "zaslavsky_bound"]
