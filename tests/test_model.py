"""The generative model's parts: nonlinearities, constrained parameters, observation models."""

import numpy as np
import pytest
import torch
from scipy import stats

from nwb_lrnn.model import (
    ClippedReLU,
    DiagonalCovariance,
    FullCovariance,
    LowRankRNNModel,
    ModelConfig,
    get_nonlinearity,
)


@pytest.mark.parametrize("name", ["relu", "clipped_relu", "tanh", "identity"])
def test_nonlinearity_derivative_matches_autograd(name):
    phi = get_nonlinearity(name)
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    x = x[(x - 0).abs() > 1e-6]
    x = x[(x - 1).abs() > 1e-6]  # away from the kinks
    xr = x.clone().requires_grad_(True)
    phi(xr).sum().backward()
    torch.testing.assert_close(phi.derivative(x), xr.grad)


def test_piecewise_linear_pieces_reproduce_phi():
    phi = ClippedReLU(clip=2.0)
    assert phi.breakpoints == (0.0, 2.0)
    edges = (-np.inf, *phi.breakpoints, np.inf)
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    for (slope, offset), lo, hi in zip(phi.pieces, edges[:-1], edges[1:], strict=True):
        sel = (x > lo) & (x < hi)
        torch.testing.assert_close(phi(x[sel]), slope * x[sel] + offset)


def test_nonlinearity_registry_errors():
    with pytest.raises(ValueError, match="'nonlinearity'.*'relu'.*got 'sigmoid'"):
        get_nonlinearity("sigmoid")
    with pytest.raises(TypeError, match="nonlinearity must be"):
        get_nonlinearity(3)
    with pytest.raises(ValueError, match="clip must be > 0"):
        ClippedReLU(clip=-1)
    assert get_nonlinearity({"name": "clipped_relu", "clip": 0.5}) == ClippedReLU(0.5)


@pytest.mark.parametrize("cls", [DiagonalCovariance, FullCovariance])
def test_covariances_are_positive_definite_and_settable(cls):
    cov = cls(3, sd=0.2).double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in cov.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 3)  # any raw value
    assert torch.all(torch.linalg.eigvalsh(cov.cov()) > 0)
    cov = cov.float()
    target = torch.tensor([[0.5, 0.1, 0.0], [0.1, 0.3, 0.05], [0.0, 0.05, 0.2]])
    if cls is DiagonalCovariance:
        target = torch.diag(torch.diagonal(target))
    cov.set_cov(target)
    torch.testing.assert_close(cov.cov(), target, atol=1e-5, rtol=1e-4)


def test_decay_is_constrained():
    model = LowRankRNNModel(ModelConfig(rank=2, n_units=5, n_channels=3, decay_per_dim=True))
    with torch.no_grad():
        model.transition.decay_logit.copy_(torch.tensor([-50.0, 50.0]))
    a = model.transition.decay
    assert torch.all(a >= 0) and torch.all(a <= 1) and a.shape == (2,)


def test_gaussian_log_prob_matches_scipy():
    model = LowRankRNNModel(ModelConfig(rank=2, n_units=5, n_channels=3),
                            generator=torch.Generator().manual_seed(0)).double()
    obs = model.observation
    z = torch.randn(7, 2, dtype=torch.float64)
    y = torch.randn(7, 3, dtype=torch.float64)
    mu = obs.mean(z).detach().numpy()
    sd = obs.sd().detach().numpy()
    ref = stats.norm(mu, sd).logpdf(y.numpy()).sum(-1)
    np.testing.assert_allclose(obs.log_prob(y, z).detach().numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize("readout,link", [("affine", "softplus"), ("affine", "exp"),
                                          ("units", "softplus")])
def test_poisson_log_prob_matches_scipy(readout, link):
    cfg = ModelConfig(rank=2, n_units=6, n_channels=4, observation="poisson", readout=readout,
                      link=link, bin_size=0.02)
    model = LowRankRNNModel(cfg, generator=torch.Generator().manual_seed(0)).double()
    obs = model.observation
    obs.init_from_rates(torch.full((4,), 0.2, dtype=torch.float64))
    z = torch.randn(9, 2, dtype=torch.float64)
    y = torch.poisson(obs.mean(z).detach() * 3)
    ref = stats.poisson(obs.mean(z).detach().numpy()).logpmf(y.numpy()).sum(-1)
    np.testing.assert_allclose(obs.log_prob(y, z).detach().numpy(), ref, rtol=1e-8)
    # init_from_rates: rate at z = 0 equals the target
    np.testing.assert_allclose(obs.mean(torch.zeros(1, 2, dtype=torch.float64)).detach(),
                               0.2 * np.ones((1, 4)), rtol=1e-5)


def test_units_readout_shares_transition_parameters():
    cfg = ModelConfig(rank=2, n_units=6, n_channels=4, observation="poisson", readout="units")
    model = LowRankRNNModel(cfg)
    names = [n for n, _ in model.named_parameters()]
    assert names.count("transition.U_t") == 1 and not any("observation.U" in n for n in names)
    z = torch.randn(3, 2)
    model.observation.log_prob(torch.ones(3, 4), z).sum().backward()
    assert model.transition.U_t.grad is not None


def test_model_config_validation_and_json():
    cfg = ModelConfig(rank=3, n_units=10, n_channels=2, nonlinearity="clipped_relu")
    assert cfg.nonlinearity == {"name": "clipped_relu", "clip": 1.0}
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="rank must be <= n_units"):
        ModelConfig(rank=11, n_units=10, n_channels=2)
    with pytest.raises(ValueError, match="'observation'.*got 'binomial'"):
        ModelConfig(rank=1, n_units=10, n_channels=2, observation="binomial")
    with pytest.raises(TypeError, match="rank must be an int"):
        ModelConfig(rank=1.5, n_units=10, n_channels=2)


def test_sampling_is_reproducible_and_shaped():
    model = LowRankRNNModel(ModelConfig(rank=2, n_units=8, n_channels=3, n_inputs=1))
    u = torch.randn(4, 60, 1)
    z1, y1 = model.sample(4, 50, inputs=u, burn_in=10, generator=torch.Generator().manual_seed(5))
    _, y2 = model.sample(4, 50, inputs=u, burn_in=10, generator=torch.Generator().manual_seed(5))
    assert z1.shape == (4, 50, 2) and y1.shape == (4, 50, 3)
    torch.testing.assert_close(y1, y2)
