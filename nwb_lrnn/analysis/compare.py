"""Comparisons between networks and data that do not depend on the latent coordinates.

The latents of a low-rank RNN are defined only up to an invertible linear map M
(z' = M z, U' = U M⁻¹, V' = M V, C' = C M⁻¹, Σ' = M Σ Mᵀ), so a student's Σ_z cannot be compared
entry by entry with its teacher's. Quantities expressed in observation space are invariant.
"""

from __future__ import annotations

import numpy as np

__all__ = ["correlation_similarity", "latent_noise_in_observation_space"]


def latent_noise_in_observation_space(parameters: dict) -> np.ndarray:
    """SDs of the latent noise seen through the observation matrix, largest first.

    The square roots of the R non-zero eigenvalues of C Σ_z Cᵀ; invariant under the
    reparametrisation of the latents. For a teacher with C = U and isotropic noise σ these are
    σ times the singular values of U.

    Parameters
    ----------
    parameters : dict
        ``LowRankRNN.parameters_`` of a model with an affine readout (``C``, ``noise_z``).

    Returns
    -------
    ndarray, shape (R,)
    """
    C = np.asarray(parameters["C"], dtype=float)
    nz = np.asarray(parameters["noise_z"], dtype=float)
    cov = np.diag(nz**2) if nz.ndim == 1 else nz
    R = C.shape[1]
    ev = np.linalg.eigvalsh(C @ cov @ C.T)[::-1][:R]
    return np.sqrt(np.clip(ev, 0, None))


def correlation_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r between the pairwise channel correlations of two data sets.

    Parameters
    ----------
    a, b : ndarray, shape (trials, time, channels) or (time, channels)

    Returns
    -------
    float
        Correlation of the upper-triangular entries of the two correlation matrices.
    """
    a = np.asarray(a).reshape(-1, np.shape(a)[-1])
    b = np.asarray(b).reshape(-1, np.shape(b)[-1])
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same number of channels, got {a.shape[1]} "
                         f"and {b.shape[1]}.")
    iu = np.triu_indices(a.shape[1], 1)
    ca, cb = np.corrcoef(a.T)[iu], np.corrcoef(b.T)[iu]
    return float(np.corrcoef(ca, cb)[0, 1])
