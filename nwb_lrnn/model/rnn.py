"""The complete generative model: low-rank transition + observation model."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._validate import check_float, check_int, check_option
from .nonlinearities import NONLINEARITIES, get_nonlinearity
from .observation import LINKS, OBSERVATIONS, ObservationModel
from .transition import LowRankTransition

__all__ = ["OBSERVATIONS", "LowRankRNNModel", "ModelConfig"]


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Dimensions and structural choices of a :class:`LowRankRNNModel` (saved as JSON).

    Parameters
    ----------
    rank : int
        Latent dimension R (1 <= R <= n_units).
    n_units : int
        Number of RNN units N.
    n_channels : int
        Number of observed channels.
    n_inputs : int
        Number of external inputs (0 for none).
    observation : {'gaussian', 'gaussian_ar1', 'gaussian_var1', 'poisson'}
        A name in the observation registry (:data:`~nwb_lrnn.model.observation.OBSERVATIONS`).
    nonlinearity : dict
        Config of the nonlinearity, e.g. ``{"name": "clipped_relu", "clip": 1.0}``.
    noise_cov : {'diag', 'full'}
    decay_per_dim : bool
    link : {'softplus', 'exp'}
        Poisson link.
    readout : {'affine', 'units'}
        Poisson readout.
    bin_size : float
        Bin width in seconds.
    """

    rank: int
    n_units: int
    n_channels: int
    n_inputs: int = 0
    observation: str = "gaussian"
    nonlinearity: dict = field(default_factory=lambda: {"name": "relu"})
    noise_cov: str = "diag"
    decay_per_dim: bool = False
    link: str = "softplus"
    readout: str = "affine"
    bin_size: float = 1.0

    def __post_init__(self):
        check_int("n_units", self.n_units, min_value=1)
        check_int("rank", self.rank, min_value=1)
        if self.rank > self.n_units:
            raise ValueError(f"rank must be <= n_units ({self.n_units}), got rank={self.rank}.")
        check_int("n_channels", self.n_channels, min_value=1)
        check_int("n_inputs", self.n_inputs, min_value=0)
        check_option("observation", self.observation, tuple(OBSERVATIONS))
        nl = self.nonlinearity
        if not isinstance(nl, dict):
            object.__setattr__(self, "nonlinearity", get_nonlinearity(nl).to_config())
        else:
            check_option("nonlinearity", nl.get("name"), NONLINEARITIES)
        check_option("noise_cov", self.noise_cov, ("diag", "full"))
        check_option("link", self.link, LINKS)
        check_option("readout", self.readout, ("affine", "units"))
        check_float("bin_size", self.bin_size, min_value=0.0, strict_min=True)
        OBSERVATIONS[self.observation].check_config(self)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls(**json.loads(text))


class LowRankRNNModel(nn.Module):
    """Generative model: :class:`LowRankTransition` plus an :class:`ObservationModel`.

    Parameters
    ----------
    config : ModelConfig
    generator : torch.Generator, optional
        Randomness for the initial weights.

    Examples
    --------
    >>> cfg = ModelConfig(rank=2, n_units=20, n_channels=5)
    >>> model = LowRankRNNModel(cfg, generator=torch.Generator().manual_seed(0))
    >>> z, y = model.sample(3, 100, generator=torch.Generator().manual_seed(1))
    >>> tuple(z.shape), tuple(y.shape)
    ((3, 100, 2), (3, 100, 5))
    """

    def __init__(self, config: ModelConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        c = config
        self.transition = LowRankTransition(
            c.n_units, c.rank, get_nonlinearity(c.nonlinearity), n_inputs=c.n_inputs,
            noise_cov=c.noise_cov, decay_per_dim=c.decay_per_dim, generator=generator)
        self.observation: ObservationModel = OBSERVATIONS[c.observation].build(
            c, transition=self.transition, generator=generator)

    @property
    def rank(self) -> int:
        return self.config.rank

    def to_arrays(self) -> dict[str, Any]:
        """Every parameter as numpy arrays, by name: the transition's (``U``, ``V``, ``h``,
        ``decay``, ``B``, ``noise_z``, ``init_mean``, ``init_sd``), the observation model's
        (e.g. ``C``, ``d``, ``noise_x``) and ``nonlinearity``, ``observation``, ``bin_size``.
        ``LowRankRNN.from_parameters`` takes the same names; :meth:`load_arrays` is the
        inverse."""
        return {**self.transition.to_arrays(), "nonlinearity": dict(self.config.nonlinearity),
                "observation": self.config.observation, "bin_size": self.config.bin_size,
                **self.observation.to_arrays()}

    @torch.no_grad()
    def load_arrays(self, arrays: dict[str, Any]) -> None:
        """Set every parameter from arrays named as :meth:`to_arrays` gives them."""
        self.transition.load_arrays(arrays)
        self.observation.load_arrays(arrays)

    @torch.no_grad()
    def sample(self, n_trials: int, n_time: int, *, inputs: torch.Tensor | None = None,
               generator: torch.Generator | None = None,
               burn_in: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Generate latents and observations.

        Parameters
        ----------
        n_trials, n_time : int
        inputs : Tensor, shape (n_trials, burn_in + n_time, n_inputs), optional
        generator : torch.Generator, optional
        burn_in : int
            Steps simulated and dropped first.

        Returns
        -------
        z : Tensor, shape (n_trials, n_time, R)
        y : Tensor, shape (n_trials, n_time, n_channels)
        """
        z = self.transition.sample(n_trials, n_time, inputs=inputs, generator=generator,
                                   burn_in=burn_in)
        return z, self.observation.sample(z, generator=generator)
