"""Analyses of fitted networks (fixed points, metrics) and of data."""

from .compare import correlation_similarity, latent_noise_in_observation_space

__all__ = ["correlation_similarity", "latent_noise_in_observation_space"]
