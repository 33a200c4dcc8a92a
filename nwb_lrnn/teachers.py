"""Known networks to generate data from: teacher–student checks, demos, simulations."""

from __future__ import annotations

import numpy as np

from ._validate import check_float, check_int
from .estimator import LowRankRNN

__all__ = ["oscillator_teacher"]


def oscillator_teacher(n_units: int = 20, rank: int = 2, *, noise_z: float = 0.15,
                       noise_x: float = 0.3, decay: float = 0.8, rotation: float = 0.35,
                       growth: float = 0.15, nonlinearity: str = "tanh",
                       observation: str = "gaussian", seed: int = 0,
                       **kwargs) -> LowRankRNN:
    """A rank-R teacher whose first two latents form a noisy damped oscillator.

    U has standard normal entries and V = M U⁺, so that near the origin the latent map is
    z ↦ a z + M z with M a scaled rotation (``rotation``) plus ``growth`` on the first two
    dimensions: for the defaults the linearisation has complex eigenvalues of modulus ~0.99,
    and the tanh saturation keeps the dynamics bounded.

    Parameters
    ----------
    n_units, rank : int
    noise_z : float
        Latent noise SD (isotropic).
    noise_x : float
        Gaussian observation SD (ignored for Poisson).
    decay, rotation, growth : float
        Dynamics (see above).
    nonlinearity : str
    observation : {'gaussian', 'poisson'}
        Gaussian: channels are the unit activity U z plus noise. Poisson: one-to-one readout
        of the units, rate = softplus(φ(u_iᵀ z − h_i) + b_i); pass ``bias`` and ``bin_size``.
    seed : int
        Draws U and sets the default ``random_state``.
    **kwargs
        Passed to :meth:`LowRankRNN.from_parameters` (e.g. ``bias``, ``bin_size``).

    Returns
    -------
    LowRankRNN, fitted (ready to ``sample``)

    Examples
    --------
    >>> teacher = oscillator_teacher(20, 2)
    >>> teacher.sample(4, 100, random_state=0).values.shape
    (4, 100, 20)
    """
    n_units = check_int("n_units", n_units, min_value=2)
    rank = check_int("rank", rank, min_value=2, max_value=n_units)
    check_float("rotation", rotation)
    check_float("growth", growth)
    r = np.random.default_rng(seed)
    U = r.normal(size=(n_units, rank))
    M = np.zeros((rank, rank))
    M[0, 1], M[1, 0] = -rotation, rotation
    M[0, 0] = M[1, 1] = growth
    V = M @ np.linalg.pinv(U)
    kwargs.setdefault("random_state", seed)
    if observation == "gaussian":
        kwargs.setdefault("noise_x", noise_x)
    return LowRankRNN.from_parameters(U=U, V=V, h=np.zeros(n_units), decay=decay,
                                      nonlinearity=nonlinearity, noise_z=noise_z,
                                      observation=observation, **kwargs)
