"""The README's examples on the bundled real files: they train, stay bounded, warn of nothing."""

import warnings
from pathlib import Path

import pytest

from nwb_lrnn import LowRankRNN, read_nwb
from nwb_lrnn.baselines import compare_to_baselines

DATA = Path(__file__).parent / "data"


def test_nwb_example_trains_on_the_bundled_recording():
    # README "From an NWB file to a shared fit", on the bundled 3-unit recording (one trial of
    # 10 874 bins at 100 ms; the README's 20 ms bins give 54 367 and take longer)
    data = read_nwb(DATA / "A8604-211122.nwb", bin_size=0.1)
    est = LowRankRNN(rank=3, n_units=64, random_state=0, max_epochs=4, validation_fraction=0.2,
                     verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing leaks from inside the package
        est.fit(data)
    assert est.train_config_.window == 100  # one long recording: windows chosen automatically
    assert est.stable_
    train, test = est.split(data)
    rows = {r["model"]: r for r in compare_to_baselines(est, train, test)}
    assert est.model_config_.observation == "gaussian_sqrt"  # 'auto' for counts
    # a margin over the constant-rate Poisson model's one-step prediction error on held-out
    # data (measured: 1.187 against 1.307; the GLM on the last bin 1.202)
    assert rows["lowrank_rnn"]["mse_1"] < rows["poisson_rate"]["mse_1"] - 0.05


def test_eeg_example_trains_on_the_bundled_recording(raw):
    # README "Other sources": est.fit(raw, picks="eeg") with the clipped ReLU (fast settings)
    est = LowRankRNN(rank=3, n_units=32, n_particles=8, max_epochs=3, window=50,
                     steps_per_epoch=5, validation_fraction=0.2, random_state=0, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est.fit(raw, picks="eeg")
    h = est.history_.train_bound
    assert h[-1] > h[0]  # the bound improves within three short epochs
    v = est.history_.val_bound
    assert len(v) == 3 and est.history_.kept_epoch == max(range(3), key=v.__getitem__)
    assert est.stable_
    fake = est.sample_raw(500, random_state=0)
    assert fake.info["nchan"] == 64


def test_array_example_from_the_readme():
    import numpy as np

    from nwb_lrnn import BinnedData

    data = BinnedData(np.random.default_rng(0).poisson(2.0, (20, 100, 30)), bin_size=0.02,
                      kind="counts")
    est = LowRankRNN(rank=2, n_units=64, n_particles=32, max_epochs=3, random_state=0,
                     verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est.fit(data)
    assert est.transform(data).shape == (20, 100, 2)
    surrogate = est.sample(10, 500, burn_in=200, random_state=1)
    assert surrogate.values.shape == (10, 500, 30)
    twin = LowRankRNN.from_parameters(**est.parameters_)
    assert twin.sample(2, 10, random_state=0).values.shape == (2, 10, 30)
    with pytest.raises(ValueError):
        est.sample(0, 10)
