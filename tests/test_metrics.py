"""The paper's measures: D_stsp, D_H, bits per spike."""

import numpy as np
import pytest

from nwb_lrnn import metrics


def test_dstsp_zero_for_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 3))
    same = metrics.dstsp(x, rng.normal(size=(3000, 3)), random_state=1)
    near = metrics.dstsp(x, rng.normal(size=(3000, 3)) + 0.5, random_state=1)
    far = metrics.dstsp(x, rng.normal(size=(3000, 3)) + 3.0, random_state=1)
    assert abs(same) < 0.05 and same < near < far
    # two Gaussians N(0, (1+σ²) I) and N(μ, (1+σ²) I): KL = |μ|² / (2 (1 + σ²)) in the limit
    assert far == pytest.approx(3 * 9 / (2 * 2), rel=0.15)


def test_dstsp_binned_and_chunking_agree():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5000, 2)), rng.normal(size=(5000, 2)) * 1.5
    assert metrics.dstsp(a, b, method="binned") > metrics.dstsp(a, a[::-1], method="binned")
    g1 = metrics.dstsp(a, b, random_state=3, chunk_size=7)
    g2 = metrics.dstsp(a, b, random_state=3, chunk_size=1000)
    assert g1 == pytest.approx(g2, rel=1e-9)
    with pytest.raises(ValueError, match="method='binned' is for 1–3 channels"):
        metrics.dstsp(rng.normal(size=(10, 5)), rng.normal(size=(10, 5)), method="binned")
    with pytest.raises(ValueError, match="same number of channels, got 2 and 3"):
        metrics.dstsp(a, rng.normal(size=(10, 3)))


def test_dstsp_drop_underflow_leaves_out_draws_far_from_every_generated_point():
    # recorded data in two clusters 30 σ apart; the generated data cover only the first one
    rng = np.random.default_rng(2)
    far = np.array([30.0, 0.0])
    a = np.concatenate([rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) + far])
    b = rng.normal(size=(1000, 2))
    exact = metrics.dstsp(a, b, random_state=0, n_samples=400)
    dropped = metrics.dstsp(a, b, random_state=0, n_samples=400, drop_underflow=True)
    # exact: half the draws sit ~30 σ from every generated point (log ratio ~ 30²/2)
    assert exact > 100
    # the paper's code keeps only the draws near the shared cluster, where p_true = p_gen / 2
    assert dropped == pytest.approx(np.log(0.5), abs=0.15)
    # when nothing underflows the two agree exactly
    c = rng.normal(size=(1000, 2)) + 0.5
    assert metrics.dstsp(a[:500], c, random_state=1, drop_underflow=True) == pytest.approx(
        metrics.dstsp(a[:500], c, random_state=1), rel=1e-12)
    # nothing left to average: NaN, not an error
    assert np.isnan(metrics.dstsp(a[500:], b, random_state=0, drop_underflow=True))


def test_hellinger_spectrum():
    t = np.arange(4000) / 100.0
    rng = np.random.default_rng(0)
    alpha = np.sin(2 * np.pi * 10 * t)[:, None] + 0.3 * rng.normal(size=(4000, 2))
    alpha2 = np.sin(2 * np.pi * 10 * t + 1.0)[:, None] + 0.3 * rng.normal(size=(4000, 2))
    beta = np.sin(2 * np.pi * 25 * t)[:, None] + 0.3 * rng.normal(size=(4000, 2))
    same = metrics.hellinger_spectrum(alpha, alpha2)
    diff = metrics.hellinger_spectrum(alpha, beta)
    assert 0 <= same < 0.1 < diff <= 1
    assert metrics.hellinger_spectrum(alpha, alpha) == pytest.approx(0, abs=1e-6)
    assert metrics.hellinger_spectrum(alpha, beta, per_channel=True).shape == (2,)


def test_bits_per_spike():
    rng = np.random.default_rng(0)
    rates = rng.uniform(0.1, 2.0, size=(20, 50, 8))
    spikes = rng.poisson(rates).astype(float)
    good = metrics.bits_per_spike(rates, spikes)
    null = np.broadcast_to(spikes.mean((0, 1), keepdims=True), spikes.shape)
    assert good > 0.05
    assert metrics.bits_per_spike(null, spikes) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        metrics.bits_per_spike(rates[:, :10], spikes)
    with pytest.raises(ValueError, match="no spike"):
        metrics.bits_per_spike(rates, np.zeros_like(spikes))


def test_hann_smooth_keeps_constant_and_length():
    x = np.ones((100, 2))
    np.testing.assert_allclose(metrics.hann_smooth(x, 15), x)
    assert metrics.hann_smooth(np.random.default_rng(0).normal(size=100), 15).shape == (100,)


def test_eeg_scores_follow_the_paper_settings():
    from nwb_lrnn import LowRankRNN

    rng = np.random.default_rng(0)
    est = LowRankRNN.from_parameters(U=rng.normal(size=(8, 2)), V=rng.normal(size=(2, 8)) / 8,
                                     C=rng.normal(size=(4, 2)), d=np.zeros(4), noise_x=0.3,
                                     nonlinearity="tanh", decay=0.9)
    data = est.sample(1, 3000, burn_in=500, random_state=5).values[0]
    data = (data - data.mean(0)) / data.std(0)
    s = metrics.eeg_scores(est, metrics.hann_smooth(data, 15), n_steps=3000, burn_in=500,
                           n_samples=200)
    assert s["finite"] and 0 <= s["dh"] < 0.2 and np.isfinite(s["dstsp"])
    assert s["dstsp_published"] <= s["dstsp"] + 1e-12
    # a model that diverges gets NaN scores, not an exception
    wild = LowRankRNN.from_parameters(U=np.eye(2), V=3 * np.eye(2), h=-np.ones(2), decay=0.9,
                                      C=np.eye(2), d=np.zeros(2), noise_x=0.1)
    bad = metrics.eeg_scores(wild, data[:, :2], n_steps=500, burn_in=100, n_samples=50)
    assert not bad["finite"] and np.isnan(bad["dh"])
