"""Adding an observation model or a proposal is one class and one registry line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nwb_lrnn import LowRankRNN, read_fit, write_nwb
from nwb_lrnn.inference.proposals import PROPOSALS, BootstrapProposal, register_proposal
from nwb_lrnn.model.observation import (
    OBSERVATIONS,
    ObservationModel,
    pca_loadings,
    register_observation,
)

torch.set_num_threads(1)


class UnitNoiseGaussian(ObservationModel):
    """y = C z + d + η, η ~ N(0, I): a Gaussian with its noise fixed (a toy for this test)."""

    name = "unit_gaussian"
    kind = "continuous"
    default_proposal = "bootstrap"

    def __init__(self, n_channels, rank, generator=None):
        super().__init__()
        self.n_channels = n_channels
        self.C = nn.Parameter(torch.randn(n_channels, rank, generator=generator) * 0.1)
        self.d = nn.Parameter(torch.zeros(n_channels))

    @classmethod
    def build(cls, config, *, transition, generator=None):
        return cls(config.n_channels, config.rank, generator)

    @torch.no_grad()
    def init_from_data(self, values, bin_size, rank):
        y = values.reshape(-1, values.shape[-1])
        self.d.copy_(y.mean(0))
        self.C.copy_(pca_loadings(y - y.mean(0), rank)[0])

    def mean(self, z):
        return z @ self.C.T + self.d

    def log_prob(self, y, z):
        r = y - self.mean(z)
        return -0.5 * (r * r).sum(-1) - 0.5 * self.n_channels * np.log(2 * np.pi)

    def sample(self, z, generator=None):
        mu = self.mean(z)
        return mu + torch.randn(mu.shape, generator=generator, dtype=mu.dtype)

    def to_arrays(self):
        return {"C": self.C.detach().numpy().copy(), "d": self.d.detach().numpy().copy()}

    @torch.no_grad()
    def load_arrays(self, arrays):
        self.C.copy_(torch.as_tensor(np.array(arrays["C"], dtype=float)))
        self.d.copy_(torch.as_tensor(np.array(arrays["d"], dtype=float)))

    @classmethod
    def check_arrays(cls, U, arrays):
        C = U.copy() if arrays.get("C") is None else np.asarray(arrays["C"], dtype=float)
        d = np.zeros(len(C)) if arrays.get("d") is None else np.asarray(arrays["d"], float)
        return C.shape[0], {"C": C, "d": d}


class PlainBootstrap(BootstrapProposal):
    """The bootstrap proposal under another name, for continuous data only."""

    name = "plain"
    observations = ("unit_gaussian", "gaussian")


@pytest.fixture
def registered():
    register_observation(UnitNoiseGaussian)
    register_proposal(PlainBootstrap)
    yield
    OBSERVATIONS.pop("unit_gaussian")
    PROPOSALS.pop("plain")


def test_a_registered_observation_model_and_proposal_fit_sample_save_and_reload(registered,
                                                                                tmp_path):
    rng = np.random.default_rng(0)
    y = rng.normal(size=(6, 40, 3)).cumsum(1) * 0.3
    est = LowRankRNN(rank=2, n_units=8, observation="unit_gaussian", n_particles=8,
                     max_epochs=3, verbose=False, random_state=0, stability_check=0).fit(y)
    assert est.proposal_name_ == "bootstrap"  # its default_proposal
    assert np.isfinite(est.history_.train_bound).all() and est.score(y) > -1e9
    assert set(est.parameters_) >= {"U", "V", "C", "d", "noise_z"}
    write_nwb(est, tmp_path / "fit.nwb", data=y, include=("model",))
    again = read_fit(tmp_path / "fit.nwb")
    np.testing.assert_array_equal(again.parameters_["C"], est.parameters_["C"])
    a = est.sample(2, 20, random_state=1).values
    np.testing.assert_allclose(again.sample(2, 20, random_state=1).values, a, rtol=1e-6)
    # from known arrays, with the registered model's own defaults (C = U)
    U = rng.normal(size=(8, 2))
    net = LowRankRNN.from_parameters(U=U, V=U.T / 8, observation="unit_gaussian")
    assert net.parameters_["C"].shape == (8, 2)
    # the new proposal, and its declared observation models
    est2 = LowRankRNN(rank=2, n_units=8, observation="unit_gaussian", proposal="plain",
                      n_particles=8, max_epochs=1, verbose=False, stability_check=0).fit(y)
    assert est2.proposal_name_ == "plain"
    counts = rng.poisson(1.0, size=(4, 30, 3))
    with pytest.raises(ValueError, match="proposal='plain' needs observation='unit_gaussian'"):
        LowRankRNN(rank=2, n_units=8, proposal="plain", max_epochs=1, verbose=False).fit(counts)


def test_auto_choices_come_from_the_registries():
    assert OBSERVATIONS["gaussian"].default_proposal == "optimal"
    assert OBSERVATIONS["poisson"].default_proposal == "encoder"
    assert PROPOSALS["encoder"].trained and not PROPOSALS["bootstrap"].trained
    counts = np.random.default_rng(0).poisson(1.0, size=(4, 30, 3))
    kw = dict(rank=1, n_units=4, n_particles=4, max_epochs=1, verbose=False, stability_check=0)
    est = LowRankRNN(**kw).fit(counts)
    assert est.model_config_.observation == "gaussian_sqrt" and est.proposal_name_ == "optimal"
    # settings only the Poisson model has pick it
    for extra in (dict(readout="units"), dict(link="exp"), dict(proposal="encoder"),
                  dict(encoder_kernel=(5, 3, 1)), dict(encoder_causal=True)):
        est = LowRankRNN(**kw, **extra).fit(counts)
        assert est.model_config_.observation == "poisson", extra
        assert est.proposal_name_ == "encoder", extra
    # a network given by its arrays has no trained encoder: 'auto' filters with 'bootstrap'
    U = np.ones((4, 1))
    net = LowRankRNN.from_parameters(U=U, V=U.T / 8, observation="poisson")
    assert net.proposal_name_ == "bootstrap"
