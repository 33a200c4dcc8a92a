"""LowRankRNN: the estimator's protocol, outputs and bad input."""

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from nwb_lrnn import BinnedData, FitDivergedError, LowRankRNN, NotFittedError
from nwb_lrnn.teachers import oscillator_teacher


@pytest.fixture(scope="module")
def small_fit():
    teacher = oscillator_teacher(10, 2, seed=1)
    data = teacher.sample(8, 40, random_state=0)
    est = LowRankRNN(rank=2, n_units=10, nonlinearity="tanh", n_particles=8, max_epochs=3,
                     batch_size=4, random_state=0, verbose=False).fit(data)
    return est, data


def test_fit_returns_self_and_fitted_attributes(small_fit):
    est, _ = small_fit
    assert est.model_.config.n_channels == 10
    assert len(est.history_.train_bound) == 3
    assert est.proposal_name_ == "optimal"  # auto for Gaussian observations
    assert "fitted" in repr(est)


def test_transform_shapes_and_determinism(small_fit):
    est, data = small_fit
    mean, std = est.transform(data, return_std=True)
    assert mean.shape == std.shape == (8, 40, 2)
    assert np.all(std >= 0)
    np.testing.assert_array_equal(mean, est.transform(data))  # default seed: repeatable
    filt = est.transform(data, smoothed=False)
    assert filt.shape == (8, 40, 2)
    np.testing.assert_allclose(filt[:, -1], mean[:, -1], rtol=1e-5, atol=1e-5)


def test_score_and_sample(small_fit):
    est, data = small_fit
    s = est.score(data)
    assert np.isfinite(s)
    gen = est.sample(3, 25, random_state=4)
    assert isinstance(gen, BinnedData) and gen.shape == (3, 25, 10)
    again, z = est.sample(3, 25, random_state=4, return_latents=True)
    np.testing.assert_array_equal(gen.values, again.values)
    assert z.shape == (3, 25, 2)
    assert not np.array_equal(gen.values, est.sample(3, 25, random_state=5).values)


def test_fit_accepts_plain_arrays():
    rng = np.random.default_rng(0)
    est = LowRankRNN(rank=1, n_units=4, max_epochs=2, n_particles=4, verbose=False,
                     random_state=0).fit(rng.normal(size=(4, 20, 3)))
    assert est.transform(rng.normal(size=(2, 20, 3))).shape == (2, 20, 1)
    counts = rng.poisson(1.0, size=(4, 20, 3))
    est = LowRankRNN(rank=1, n_units=4, max_epochs=2, n_particles=4, verbose=False,
                     random_state=0).fit(counts)
    assert est.model_config_.observation == "gaussian_sqrt" and est.proposal_name_ == "optimal"


def test_same_seed_same_fit():
    data = oscillator_teacher(6, 2).sample(4, 30, random_state=0)
    kw = dict(rank=2, n_units=6, max_epochs=2, n_particles=4, verbose=False, random_state=3)
    a = LowRankRNN(**kw).fit(data).parameters_
    b = LowRankRNN(**kw).fit(data).parameters_
    np.testing.assert_array_equal(a["U"], b["U"])
    np.testing.assert_array_equal(a["C"], b["C"])


def test_sklearn_clone_and_params():
    sklearn_base = pytest.importorskip("sklearn.base")
    est = LowRankRNN(rank=3, n_units=16, n_particles=7, random_state=2)
    twin = sklearn_base.clone(est)
    assert twin.get_params() == est.get_params() and twin is not est
    assert est.set_params(rank=2) is est and est.rank == 2
    with pytest.raises(ValueError, match="Invalid parameter 'ranks'"):
        est.set_params(ranks=2)


def test_parameters_round_trip_through_from_parameters(small_fit):
    est, _ = small_fit
    p = est.parameters_
    twin = LowRankRNN.from_parameters(**{k: v for k, v in p.items()})
    np.testing.assert_allclose(twin.sample(2, 30, random_state=1).values,
                               est.sample(2, 30, random_state=1).values, rtol=1e-4, atol=1e-4)


def test_validation_history_and_early_stopping():
    data = oscillator_teacher(6, 2).sample(10, 30, random_state=0)
    est = LowRankRNN(rank=2, n_units=6, max_epochs=40, n_particles=4, verbose=False,
                     validation_fraction=0.3, patience=2, learning_rate=0.5, lr_final=None,
                     random_state=0).fit(data)
    h = est.history_
    assert len(h.val_bound) == len(h.train_bound) >= 1
    assert h.stopped_early and len(h.train_bound) < 40


def test_window_training_on_one_long_recording():
    data = oscillator_teacher(6, 2).sample(1, 400, random_state=0)
    est = LowRankRNN(rank=2, n_units=6, max_epochs=2, n_particles=4, window=50,
                     steps_per_epoch=3, batch_size=5, verbose=False, random_state=0).fit(data)
    assert len(est.history_.train_bound) == 2
    assert est.transform(data).shape == (1, 400, 2)


def test_poisson_units_readout_and_inputs():
    rng = np.random.default_rng(0)
    counts = rng.poisson(0.5, size=(6, 30, 5))
    inputs = rng.normal(size=(6, 30, 2))
    data = BinnedData(counts, 0.02, "counts", inputs=inputs)
    est = LowRankRNN(rank=2, n_units=8, readout="units", max_epochs=2, n_particles=4,
                     encoder_causal=True, verbose=False, random_state=0).fit(data)
    assert est.parameters_["B"].shape == (8, 2)
    gen = est.sample(2, 10, inputs=rng.normal(size=(2, 10, 2)), random_state=0)
    assert gen.kind == "counts" and np.all(gen.values == np.round(gen.values))
    with pytest.raises(ValueError, match="fitted with 2 inputs"):
        est.sample(2, 10)


def test_nan_guard_restores_last_good_parameters():
    data = oscillator_teacher(6, 2).sample(4, 30, random_state=0)
    est = LowRankRNN(rank=2, n_units=6, max_epochs=5, n_particles=4, verbose=False,
                     random_state=0)
    calls = {"n": 0}
    orig = torch.optim.Adam.step

    def poisoned(self, *a, **k):  # the third step writes NaN into every parameter
        calls["n"] += 1
        out = orig(self, *a, **k)
        if calls["n"] == 3:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(float("nan"))
        return out

    torch.optim.Adam.step = poisoned
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # no torch warning leaks on the way
            with pytest.raises(FitDivergedError, match="non-finite.*last good parameters"):
                est.fit(data)
    finally:
        torch.optim.Adam.step = orig
    assert all(np.all(np.isfinite(v)) for v in est.parameters_.values()
               if isinstance(v, np.ndarray))
    assert np.isfinite(est.score(data))


# ----------------------------------------------------------------------------- bad input
def test_radam_fits_and_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from nwb_lrnn.inference import training
    data = oscillator_teacher(6, 2).sample(4, 30, random_state=0)
    kw = dict(rank=2, n_units=6, n_particles=4, verbose=False, random_state=3,
              learning_rate=0.02, lr_final=0.002)
    adam = LowRankRNN(max_epochs=4, **kw).fit(data).parameters_
    full = LowRankRNN(max_epochs=4, optimizer="radam", **kw).fit(data)
    # another optimiser, another path (RAdam's first steps are momentum-SGD steps)
    assert not np.allclose(full.parameters_["U"], adam["U"])
    assert np.isfinite(full.history_.train_bound).all()
    # stopped after 2 epochs, then resumed: the optimiser state comes back with the checkpoint
    ckpt = tmp_path / "radam.npz"
    save = training._save_checkpoint

    class Stop(Exception):
        pass

    def save_then_stop(path, epoch, *args, **kwargs):
        save(path, epoch, *args, **kwargs)
        if epoch == 2:
            raise Stop

    monkeypatch.setattr(training, "_save_checkpoint", save_then_stop)
    with pytest.raises(Stop):
        LowRankRNN(max_epochs=4, optimizer="radam", **kw).fit(data, checkpoint=ckpt)
    monkeypatch.setattr(training, "_save_checkpoint", save)
    resumed = LowRankRNN(max_epochs=4, optimizer="radam", **kw).fit(
        data, checkpoint=ckpt, resume=True)
    np.testing.assert_array_equal(resumed.parameters_["U"], full.parameters_["U"])
    # the same with until_epoch: cut at epoch 1 and 3, one fit's schedule and optimiser state
    cut = tmp_path / "cut.npz"
    est = LowRankRNN(max_epochs=4, optimizer="radam", **kw)
    for until in (1, 3, None):
        est.fit(data, checkpoint=cut, resume=True, until_epoch=until)
        assert len(est.history_.train_bound) == (until or 4)
        assert (est.stability_ is None) == (until is not None)  # checked once, at the end
    np.testing.assert_array_equal(est.parameters_["U"], full.parameters_["U"])
    assert training.checkpoint_epochs(cut) == 4
    with pytest.raises(ValueError, match="until_epoch needs checkpoint"):
        LowRankRNN(max_epochs=4, **kw).fit(data, until_epoch=2)
    with pytest.raises(ValueError, match="cannot be read"):
        training.checkpoint_epochs(tmp_path / "radam.npz.missing")


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(rank=0), ValueError, "rank must be >= 1, got 0"),
    (dict(rank=9, n_units=8), ValueError, r"rank must be between 1 and n_units \(8\), got 9"),
    (dict(rank=2.5), TypeError, r"rank must be an int, got float \(2.5\)"),
    (dict(observation="gamma"), ValueError,
     r"'observation'.*'auto', 'gaussian', 'poisson'.*got 'gamma'"),
    (dict(nonlinearity="sigmoid"), ValueError, r"'nonlinearity'.*'relu'.*got 'sigmoid'"),
    (dict(proposal="smart"), ValueError, r"'proposal'.*'optimal'.*got 'smart'"),
    (dict(resampling="stratified"), ValueError, r"'resampling'.*'systematic'.*got 'stratified'"),
    (dict(n_particles=0), ValueError, "n_particles must be >= 1, got 0"),
    (dict(learning_rate=-1.0), ValueError, "learning_rate must be > 0"),
    (dict(noise_cov="block"), ValueError, r"'noise_cov'.*'diag', 'full'.*got 'block'"),
    (dict(device="tpu"), ValueError, "device"),
    (dict(ess_threshold=1.5), ValueError, "ess_threshold must be <= 1"),
    (dict(window=500), ValueError, r"window \(500\) must be <="),
    (dict(optimizer="sgd"), ValueError, r"'optimizer'.*'adam', 'radam'.*got 'sgd'"),
])
def test_bad_settings_raise_clear_errors(kwargs, exc, match):
    data = oscillator_teacher(8, 2).sample(2, 20, random_state=0)
    base = dict(n_units=8, max_epochs=1, n_particles=2, verbose=False)
    base.update(kwargs)
    with pytest.raises(exc, match=match):
        LowRankRNN(**base).fit(data)


def test_bad_data_raise_clear_errors():
    est = LowRankRNN(rank=1, n_units=4, max_epochs=1, n_particles=2, verbose=False)
    with pytest.raises(ValueError, match=r"values.*dimension.*\(5,\)|dimension"):
        est.fit(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        est.fit(np.full((2, 10, 3), np.nan))
    with pytest.raises(TypeError, match="BinnedData, an MNE Raw/Epochs or an array"):
        est.fit({"not": "data"})
    # a path goes through nwb_lrnn.io.read: spikes need a bin size, a missing file is named
    with pytest.raises(ValueError, match="needs a bin size"):
        est.fit("recording.nwb")
    with pytest.raises(FileNotFoundError, match="missing.edf"):
        est.fit("missing.edf")
    cont = BinnedData(np.random.default_rng(0).normal(size=(2, 10, 3)), 0.01, "continuous")
    with pytest.raises(ValueError, match="observation='poisson' needs spike counts"):
        LowRankRNN(rank=1, n_units=4, observation="poisson").fit(cont)
    with pytest.raises(ValueError, match="proposal='optimal' needs observation='gaussian'"):
        LowRankRNN(rank=1, n_units=4, observation="poisson", proposal="optimal").fit(
            BinnedData(np.ones((2, 10, 3)), 0.01, "counts"))
    with pytest.raises(ValueError, match="counts"):
        BinnedData(-np.ones((2, 10, 3)), 0.01, "counts")


def test_unfitted_and_incompatible_use():
    est = LowRankRNN()
    for call in (lambda: est.transform(np.zeros((1, 5, 2))), lambda: est.sample(1, 5),
                 lambda: est.score(np.zeros((1, 5, 2))), lambda: est.parameters_):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()
    fitted = LowRankRNN.from_parameters(U=np.ones((4, 1)), V=np.ones((1, 4)) / 8, decay=0.5)
    with pytest.raises(ValueError, match="has 3 channels but the model was fitted on 4"):
        fitted.transform(np.zeros((1, 5, 3)))


@pytest.mark.parametrize("kwargs,match", [
    (dict(V=np.ones((2, 4))), r"V must have shape \(1, 4\)"),
    (dict(decay=1.5), r"decay must be a scalar or an array of 1 values in \(0, 1\)"),
    (dict(noise_z=-0.1), "noise_z must be positive"),
    (dict(h=np.zeros(3)), r"h must have shape \(4\)"),
    (dict(C=np.ones((3, 2))), r"C must have shape \(n_channels, 1\)"),
])
def test_from_parameters_bad_input(kwargs, match):
    base = dict(U=np.ones((4, 1)), V=np.ones((1, 4)))
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        LowRankRNN.from_parameters(**base)


def test_smoothed_spread_from_several_runs_is_not_degenerate():
    """One run's ancestral paths give a collapsed SD (path degeneracy); n_runs combines
    independent runs, and backward smoothing (the default) keeps every step's particles."""
    rng = np.random.default_rng(0)
    est = LowRankRNN.from_parameters(U=rng.normal(size=(8, 2)), V=rng.normal(size=(2, 8)) / 8,
                                     C=rng.normal(size=(4, 2)), d=np.zeros(4), noise_x=0.5,
                                     nonlinearity="tanh", n_particles=16, random_state=0)
    y = est.sample(1, 200, random_state=1)
    # seeded: without a seed the draws depend on the tests that ran before (global RNG)
    _, one = est.transform(y, return_std=True, random_state=2, smoother="paths")
    _, many = est.transform(y, return_std=True, n_runs=8, random_state=2, smoother="paths")
    _, filt = est.transform(y, return_std=True, smoothed=False, random_state=2)
    _, back = est.transform(y, return_std=True, random_state=2)
    early = slice(0, 100)
    assert many[0, early].mean() > 2 * one[0, early].mean()
    assert many[0, early].mean() < 1.2 * filt[0, early].mean()   # smoothing narrows, not widens
    assert back[0, early].mean() > 2 * one[0, early].mean()
    assert back[0, early].mean() < filt[0, early].mean()


def test_divergent_generation_is_a_clear_error():
    """An unstable network's samples blow up: one clear ValueError, Gaussian or Poisson."""
    kw = dict(U=np.eye(2), V=3 * np.eye(2), h=-np.ones(2), decay=0.9)
    for extra in ({"C": np.eye(2), "d": np.zeros(2), "noise_x": 0.1},
                  {"observation": "poisson", "C": 0.1 * np.eye(2), "d": np.zeros(2),
                   "bin_size": 0.02}):
        est = LowRankRNN.from_parameters(**kw, **extra)
        with pytest.raises(ValueError, match="diverged.*unstable"):
            est.sample(1, 2000)


def test_from_parameters_takes_numpy_and_torch_dtypes():
    import torch

    kw = dict(U=np.ones((4, 1)), V=np.ones((1, 4)) / 8, decay=0.5)
    for dt in (np.float64, np.dtype("float64"), torch.float64, "float64"):
        assert LowRankRNN.from_parameters(**kw, dtype=dt).parameters_["U"].dtype == np.float64
    assert LowRankRNN.from_parameters(**kw, dtype=np.float32).parameters_["U"].dtype == \
        np.float32
    with pytest.raises(ValueError, match="dtype"):
        LowRankRNN.from_parameters(**kw, dtype=np.int32)


def _snapshots_of_training(restore_best, val=True):
    """train() on quiet noise, validated on loud noise (so the validation bound gets worse as
    the observation noise shrinks to fit the training data): the parameters after every epoch
    and the history."""
    from nwb_lrnn.inference.proposals import make_proposal
    from nwb_lrnn.inference.training import TrainConfig, train
    from nwb_lrnn.model.rnn import LowRankRNNModel, ModelConfig

    torch.manual_seed(0)
    y = torch.randn(6, 40, 3)
    model = LowRankRNNModel(ModelConfig(rank=2, n_units=8, n_channels=3))
    proposal = make_proposal("bootstrap", model)
    snaps = []

    def on_epoch():  # called before each epoch: the state after the previous one
        snaps.append([p.detach().clone() for p in model.parameters()])

    cfg = TrainConfig(n_particles=4, learning_rate=0.05, lr_final=None, batch_size=2,
                      max_epochs=6, restore_best=restore_best)
    hist = train(model, proposal, 0.1 * y[:4], None, cfg,
                 generator=torch.Generator().manual_seed(1),
                 y_val=y[4:] if val else None, verbose=False, on_epoch=on_epoch)
    snaps.append([p.detach().clone() for p in model.parameters()])  # what fit ends with
    return hist, snaps


def _same(a, b):
    return all(torch.equal(x, z) for x, z in zip(a, b, strict=True))


def test_fit_keeps_the_best_validation_epoch():
    hist, snaps = _snapshots_of_training(True)
    plain, plain_snaps = _snapshots_of_training(False)  # the same run, last epoch kept
    assert hist.val_bound == plain.val_bound
    best = hist.best_epoch
    assert best == int(np.argmax(hist.val_bound))
    assert best < len(hist.val_bound) - 1  # the validation bound peaked before the end
    assert _same(snaps[-1], snaps[best + 1])  # the parameters after the best epoch
    assert not _same(plain_snaps[-1], snaps[best + 1])  # ...which are not the last epoch's
    assert hist.kept_epoch == best and plain.kept_epoch == len(plain.val_bound) - 1


def test_kept_epoch_of_a_history_written_before_it_was_recorded():
    from nwb_lrnn.inference.training import TrainConfig, TrainHistory, kept_epoch

    old = TrainHistory(train_bound=[1.0, 2.0, 3.0], val_bound=[1.0, 3.0, 2.0], best_epoch=1)
    assert kept_epoch(old, TrainConfig(restore_best=True)) == 1
    assert kept_epoch(old, TrainConfig(restore_best=False)) == 2
    assert kept_epoch(old, TrainConfig(restore_best=False, patience=5)) == 1
    assert kept_epoch(old, None) == 2
    old.kept_epoch = 0  # recorded: it wins over the rule
    assert kept_epoch(old, TrainConfig(restore_best=True)) == 0
    assert kept_epoch(TrainHistory(), TrainConfig()) is None
    # no validation data: the last epoch's parameters, restore_best or not
    assert _same(_snapshots_of_training(True, val=False)[1][-1],
                 _snapshots_of_training(False, val=False)[1][-1])


def test_restore_best_is_a_parameter_and_old_fits_say_they_kept_the_last_epoch():
    from nwb_lrnn.estimator import export_fit, import_fit

    assert LowRankRNN().get_params()["restore_best"] is True
    with pytest.raises(TypeError, match="restore_best"):
        LowRankRNN(restore_best="yes", max_epochs=1, verbose=False).fit(
            np.random.default_rng(0).normal(size=(4, 20, 2)))
    est = LowRankRNN(rank=1, n_units=4, max_epochs=1, n_particles=2, verbose=False,
                     random_state=0).fit(np.random.default_rng(0).normal(size=(4, 20, 2)))
    ex = export_fit(est)
    old = dataclasses.replace(
        ex, train_config={k: v for k, v in ex.train_config.items() if k != "restore_best"},
        estimator_params={k: v for k, v in ex.estimator_params.items() if k != "restore_best"})
    assert import_fit(ex).train_config_.restore_best is True
    again = import_fit(old)
    assert again.train_config_.restore_best is False and again.restore_best is False


def test_long_validation_part_is_scored_in_training_windows(caplog):
    data = oscillator_teacher(6, 2).sample(1, 400, random_state=0)
    est = LowRankRNN(rank=2, n_units=6, max_epochs=2, n_particles=4, window=20,
                     steps_per_epoch=2, validation_fraction=0.5, verbose=False, random_state=0)
    with caplog.at_level("INFO", logger="nwb_lrnn"):
        est.fit(data)
    assert "validation bound on 10 consecutive windows of 20 bins" in caplog.text
    h = est.history_
    assert len(h.val_bound) == 2 and np.isfinite(h.val_bound).all()
    # the same quantity as the training bound (windows from the initial state), within noise
    assert abs(h.val_bound[-1] - h.train_bound[-1]) < 0.5 * abs(h.train_bound[-1]) + 1
