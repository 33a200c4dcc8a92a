"""Analyses of fitted networks (fixed points, metrics) and of data."""

from .compare import correlation_similarity, latent_noise_in_observation_space
from .decoding import decode_behavior, read_behavior
from .fixed_points import Cycles, FixedPoints, find_cycles, find_fixed_points, zaslavsky_bound

__all__ = ["Cycles", "FixedPoints", "correlation_similarity", "decode_behavior", "find_cycles",
           "find_fixed_points", "latent_noise_in_observation_space", "read_behavior",
           "zaslavsky_bound"]
