"""Shared fixtures: small networks, one torch thread, deterministic seeds."""

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def raw_orig():
    """The bundled EEG recording (S001R01.edf) as an mne Raw, read once per module."""
    mne = pytest.importorskip("mne")
    return mne.io.read_raw_edf(Path(__file__).parent / "data" / "S001R01.edf", preload=True,
                               verbose="error")


@pytest.fixture
def raw(raw_orig):
    """A fresh copy of :func:`raw_orig` that a test may modify."""
    return raw_orig.copy()
