"""Mock objects of every ndx-lrnn type, valid and small, for tests (as ``pynwb.testing.mock``).

>>> from ndx_lrnn.testing import mock_LowRankRNNModel
>>> mock_LowRankRNNModel(rank=2, n_units=5).U.shape
(5, 2)
"""

from __future__ import annotations

import json

import numpy as np

from . import FitMetrics, FixedPointTable, GeneratedData, LowRankRNNModel, PosteriorLatents


def mock_LowRankRNNModel(*, rank: int = 2, n_units: int = 6, n_channels: int = 3,
                         n_epochs: int = 4, name: str = "model", seed: int = 0,
                         **kwargs) -> LowRankRNNModel:
    """A Gaussian-readout network with random parameters; ``kwargs`` override any field."""
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n_units, rank))
    V = rng.normal(size=(rank, n_units)) / n_units
    state = {"U": U, "V": V, "h": np.zeros(n_units)}
    keys = sorted(state)
    fields = dict(
        name=name, description="a mock low-rank RNN", rank=rank, n_units=n_units,
        n_channels=n_channels, n_inputs=0, nonlinearity=json.dumps({"name": "tanh"}),
        observation="gaussian", proposal="optimal", bin_size=0.01,
        model_config=json.dumps({"model": {"rank": rank, "n_units": n_units},
                                 "estimator": {}, "meta": {}}),
        train_config=json.dumps({"n_particles": 8}), package_version="mock",
        random_seed=seed, source=json.dumps({"source": "mock"}), U=U, V=V,
        h=np.zeros(n_units), decay=np.array([0.9]), noise_cov=0.01 * np.eye(rank),
        init_mean=np.zeros(rank), init_cov=np.eye(rank),
        C=rng.normal(size=(n_channels, rank)), d=np.zeros(n_channels),
        noise_x=np.full(n_channels, 0.1), training_bound=np.linspace(-3.0, -1.0, n_epochs),
        state_values=np.concatenate([state[k].ravel() for k in keys]), state_keys=keys,
        state_shapes=[json.dumps(list(state[k].shape)) for k in keys])
    fields.update(kwargs)
    return LowRankRNNModel(**fields)


def _series(cls, name: str, n_time: int, n_dims: int, seed: int, **kwargs):
    rng = np.random.default_rng(seed)
    return cls(name=name, data=rng.normal(size=(n_time, n_dims)), rate=100.0,
               starting_time=0.0, unit="a.u.", description=f"a mock {cls.__name__}",
               trial_index=np.repeat(np.arange(2), [n_time // 2, n_time - n_time // 2]),
               **kwargs)


def mock_PosteriorLatents(*, n_time: int = 20, rank: int = 2, seed: int = 0,
                          **kwargs) -> PosteriorLatents:
    """Latents of two trials concatenated in time, with their spread."""
    fields = dict(spread=np.full((n_time, rank), 0.1), method="smoothed", n_particles=8)
    fields.update(kwargs)
    return _series(PosteriorLatents, "posterior_latents", n_time, rank, seed, **fields)


def mock_GeneratedData(*, n_time: int = 20, n_channels: int = 3, seed: int = 0,
                       **kwargs) -> GeneratedData:
    """Continuous surrogate data of two trials concatenated in time."""
    fields = dict(kind="continuous", burn_in=0, random_seed=seed)
    fields.update(kwargs)
    return _series(GeneratedData, "generated", n_time, n_channels, seed, **fields)


def mock_FixedPointTable(*, rank: int = 2, n_units: int = 6, n_rows: int = 2,
                         seed: int = 0) -> FixedPointTable:
    """Fixed points with random locations and eigenvalues."""
    rng = np.random.default_rng(seed)
    table = FixedPointTable(name="fixed_points", method="exact",
                            description="mock fixed points")
    for i in range(n_rows):
        table.add_row(location=rng.normal(size=rank), unit_activity=rng.normal(size=n_units),
                      eigenvalues_real=rng.normal(size=rank),
                      eigenvalues_imag=np.zeros(rank),
                      stability="stable" if i % 2 == 0 else "saddle")
    return table


def mock_FitMetrics(**rows: float) -> FitMetrics:
    """A metrics table; ``rows`` are name=value (split 'train'); a default row otherwise."""
    table = FitMetrics(name="metrics", description="mock measures")
    for name, value in (rows or {"bound_per_step": -1.5}).items():
        table.add_row(metric=name, value=float(value), split="train")
    return table
