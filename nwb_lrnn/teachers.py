"""Known networks to generate data from: teacher–student checks, demos, simulations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._validate import check_float, check_int
from .estimator import LowRankRNN

__all__ = ["oscillator_teacher", "ring_teacher"]


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


def ring_teacher(n_units: int = 64, rank: int = 2, *, n_observed: int | None = None,
                 decay: float = 0.5, recurrent_gain: float = 4.0, cue_gain: float = 4.0,
                 noise_z: float = 0.03, init_sd: float = 0.5, clip: float = 1.0,
                 rate_gain: float = 30.0, rate_bias: float = -1.0, bin_size: float = 0.05,
                 observation: str = "poisson", seed: int = 0,
                 **kwargs) -> tuple[LowRankRNN, Callable[..., np.ndarray]]:
    """A rank-2 ring attractor that stores an angle cue: a teacher for input-driven fits.

    Unit i has a preferred angle θ_i (evenly spaced on the circle, in a random order so that
    any subset of units covers the ring): u_i = (cos θ_i, sin θ_i), U = [u_i] (N × 2),
    V = (g/N) Uᵀ, h = 0, φ = clipped ReLU (0 below 0, ``clip`` above). For z = r (cos ψ,
    sin ψ) the recurrent drive V φ(U z) points along ψ with a magnitude g F(r) independent
    of ψ, with F(r) = r/4 for small r and F(r) → clip/π when the units saturate. So

    - the origin is unstable when a + g/4 > 1 (defaults: 0.5 + 1),
    - the circle of radius r* with (1 − a) r* = g F(r*) is attracting in the radial
      direction and neutral along the angle: a ring attractor (a continuum of fixed points),
    - the cue input u_t = (cos α, sin α) during the cue, with B = ``cue_gain`` · U, shifts the
      units' input to U (z + cue_gain · e_α), which pulls the state to angle α; after the cue
      the state stays near angle α (it only diffuses slowly with the latent noise).

    Parameters
    ----------
    n_units : int
        N, units on the ring (≥ 8).
    rank : int
        Must be 2 (the ring lives in a plane); kept for symmetry with other teachers.
    n_observed : int, optional
        Poisson: the first ``n_observed`` units are recorded (default all).
    decay : float
        a in (0, 1).
    recurrent_gain : float
        g (the ring needs a + g/4 > 1).
    cue_gain : float
        Strength of the cue input (B = cue_gain · U).
    noise_z : float
        Latent noise SD per step.
    init_sd : float
        SD of the initial state around the origin.
    clip : float
        Saturation of the clipped ReLU.
    rate_gain, rate_bias : float
        Poisson: rate_i = softplus(rate_gain · φ(u_iᵀ z) + rate_bias) in spikes/s.
    bin_size : float
        Seconds per step.
    observation : {'poisson', 'gaussian'}
        Gaussian: channels are the unit activity U z plus noise (``noise_x`` in kwargs).
    seed : int
        Order of the preferred angles; default ``random_state`` of the teacher.
    **kwargs
        Passed to :meth:`LowRankRNN.from_parameters`.

    Returns
    -------
    teacher : LowRankRNN, fitted, with 2 inputs
    make_cue : callable
        ``make_cue(angles, n_time, *, onset=5, duration=10, degrees=False)`` → inputs of
        shape (len(angles), n_time, 2) to pass to ``teacher.sample(..., inputs=...)``; the
        same encoding as :func:`nwb_lrnn.conditions.inputs_for` with ``kind='angle'``.

    Examples
    --------
    >>> teacher, make_cue = ring_teacher(64, n_observed=40)
    >>> angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    >>> data, z = teacher.sample(8, 60, inputs=make_cue(angles, 60), random_state=0,
    ...                          return_latents=True)
    >>> data.values.shape, z.shape
    ((8, 60, 40), (8, 60, 2))
    >>> err = np.angle(np.exp(1j * (np.arctan2(z[:, -1, 1], z[:, -1, 0]) - angles)))
    >>> bool(np.degrees(np.abs(err)).max() < 20)
    True
    """
    from .conditions import inputs_for

    n_units = check_int("n_units", n_units, min_value=8)
    rank = check_int("rank", rank)
    if rank != 2:
        raise ValueError(f"ring_teacher is rank 2 (a ring lives in a plane), got rank={rank}.")
    decay = check_float("decay", decay, min_value=0.0, max_value=1.0, strict_min=True,
                        strict_max=True)
    g = check_float("recurrent_gain", recurrent_gain, min_value=0.0, strict_min=True)
    if decay + g / 4 <= 1:
        raise ValueError(f"decay + recurrent_gain/4 must exceed 1 for a ring attractor, got "
                         f"{decay} + {g}/4 = {decay + g / 4:.3g}.")
    cue_gain = check_float("cue_gain", cue_gain, min_value=0.0)
    n_obs = n_units if n_observed is None else check_int("n_observed", n_observed,
                                                         min_value=1, max_value=n_units)
    rng = np.random.default_rng(seed)
    theta = 2 * np.pi * rng.permutation(n_units) / n_units
    U = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    V = g / n_units * U.T
    kwargs.setdefault("random_state", seed)
    if observation == "poisson":
        kwargs.setdefault("gain", np.full(n_obs, float(rate_gain)))
        kwargs.setdefault("bias", np.full(n_obs, float(rate_bias)))
        kwargs.setdefault("readout", "units")
    teacher = LowRankRNN.from_parameters(
        U=U, V=V, h=np.zeros(n_units), decay=decay,
        nonlinearity={"name": "clipped_relu", "clip": float(clip)}, B=cue_gain * U,
        noise_z=noise_z, init_sd=init_sd, observation=observation, bin_size=bin_size,
        **kwargs)

    def make_cue(angles, n_time: int, *, onset: int = 5, duration: int | None = 10,
                 degrees: bool = False) -> np.ndarray:
        """Cue inputs (cos α, sin α) during bins [onset, onset + duration), shape
        (len(angles), n_time, 2)."""
        return inputs_for(np.atleast_1d(np.asarray(angles, dtype=float)), n_time,
                          kind="angle", onset=onset, duration=duration, degrees=degrees)

    return teacher, make_cue
