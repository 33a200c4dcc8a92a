"""Shared fixtures: small networks, one torch thread, deterministic seeds."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
