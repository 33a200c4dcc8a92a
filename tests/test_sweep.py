"""nwb_lrnn.sweep: Ray Tune sweeps, many sessions, retries and resume after a killed worker."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nwb_lrnn import LowRankRNN
from nwb_lrnn.sweep import (
    CHECKPOINT_FILE,
    SweepResult,
    _split,
    run_trial,
    sweep,
    sweep_from_config,
    sweep_sessions,
)

from .nwb_factory import write_nwbfile

torch.set_num_threads(1)
TINY = {"n_units": 8, "n_particles": 8, "max_epochs": 3, "batch_size": 8}


def _teacher_data(n_trials=6, n_time=40, seed=1):
    teacher = LowRankRNN.from_parameters(
        U=np.random.default_rng(0).normal(size=(8, 2)),
        V=np.random.default_rng(1).normal(size=(2, 8)) / 8, h=np.zeros(8), decay=0.9,
        nonlinearity="tanh", noise_z=0.1, random_state=0)
    return teacher.sample(n_trials, n_time, random_state=seed)


@pytest.fixture(scope="module")
def data():
    return _teacher_data()


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    yield ray
    if started:
        ray.shutdown()


# ---------------------------------------------------------------------------- without Ray
def test_import_does_not_import_ray():
    code = "import sys, nwb_lrnn, nwb_lrnn.sweep; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_package_level_sweep_is_callable(data, tmp_path):
    import nwb_lrnn

    res = nwb_lrnn.sweep(data, search_space={"rank": [2]}, fixed_params={**TINY, "max_epochs": 1},
                         out_dir=tmp_path, backend="serial")
    assert isinstance(res, SweepResult) and res.best["rank"] == 2


def test_resume_from_checkpoint_gives_the_uninterrupted_fit(data, tmp_path):
    params = {**TINY, "rank": 2, "max_epochs": 4, "random_state": 3}
    full = run_trial(params, data, chunk_epochs=2, nwb_path=tmp_path / "full.nwb")

    class Stop(Exception):
        pass

    def stop_after_first(report, ckpt):
        (tmp_path / "ckpt").mkdir()
        shutil.copyfile(ckpt, tmp_path / "ckpt" / CHECKPOINT_FILE)
        raise Stop

    with pytest.raises(Stop):
        run_trial(params, data, chunk_epochs=2, on_chunk=stop_after_first)
    resumed = run_trial(params, data, chunk_epochs=2, checkpoint_dir=tmp_path / "ckpt",
                        nwb_path=tmp_path / "resumed.nwb")
    assert resumed["start_epoch"] == 2 and resumed["restored"] and resumed["epochs"] == 4
    assert resumed["val_bound"] == full["val_bound"]
    from nwb_lrnn import read_fit

    a, b = read_fit(tmp_path / "full.nwb"), read_fit(tmp_path / "resumed.nwb")
    assert len(b.history_.train_bound) == 4
    np.testing.assert_array_equal(b.parameters_["U"], a.parameters_["U"])
    assert b.history_.train_bound == a.history_.train_bound
    # the chunks are one fit: the same as LowRankRNN.fit on the same split, bitwise (CPU)
    train, val = _split(data, 0.2, 3)
    one = LowRankRNN(**params, verbose=False).fit(train, validation_data=val)
    np.testing.assert_array_equal(one.parameters_["U"], a.parameters_["U"])
    assert one.history_.val_bound == a.history_.val_bound
    assert a.history_.kept_epoch == one.history_.kept_epoch
    assert a.train_config_.restore_best is True
    with pytest.raises(FileNotFoundError, match="holds no fit.ckpt.npz"):
        run_trial(params, data, checkpoint_dir=tmp_path)


def test_serial_backend_and_summary_files(data, tmp_path):
    res = sweep(data, search_space={"rank": [1, 2]}, fixed_params=TINY,
                out_dir=tmp_path, backend="serial")
    assert list(res.table["rank"]) == [1, 2] and (res.table["status"] == "ok").all()
    assert all(Path(p).is_file() for p in res.table["nwb_path"])
    import pandas as pd

    csv = pd.read_csv(tmp_path / "summary.csv")
    assert len(csv) == 2 and "val_bound" in csv
    again = SweepResult.load(tmp_path)
    assert again.best["trial_id"] == res.best["trial_id"]
    assert json.loads((tmp_path / "summary.json").read_text())["metric"] == "val_bound"


def test_metrics_dstsp_and_co_bps(data):
    out = run_trial({**TINY, "rank": 2, "max_epochs": 2}, data, metric="dstsp")
    assert np.isfinite(out["dstsp"]) and out["dstsp"] >= 0
    rng = np.random.default_rng(0)
    from nwb_lrnn import BinnedData

    counts = BinnedData(rng.poisson(2.0, size=(6, 30, 5)), 0.05, "counts")
    out = run_trial({**TINY, "rank": 2, "max_epochs": 2}, counts, metric="co_bps")
    assert np.isfinite(out["co_bps"])
    with pytest.raises(ValueError, match="co_bps"):
        run_trial({**TINY, "rank": 2, "max_epochs": 1}, data, metric="co_bps")


def test_clear_errors(data, tmp_path):
    with pytest.raises(ValueError, match="metric"):
        sweep(data, search_space={}, metric="mse", out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown LowRankRNN parameter"):
        sweep(data, search_space={"lr": [0.1]}, out_dir=tmp_path)
    with pytest.raises(TypeError, match="data_or_sources"):
        sweep(3, search_space={}, out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown sweep config"):
        sweep_from_config({"source": "a.nwb", "out_dir": str(tmp_path), "bogus": 1})
    with pytest.raises(ValueError, match="bin size"):
        _ = sweep(["missing.nwb"], search_space={}, out_dir=tmp_path, backend="serial").best


# ---------------------------------------------------------------------------- with Ray
def test_grid_on_ray_with_a_failing_trial(ray_local, data, tmp_path):
    # rank 20 > n_units 8 fails in every attempt; the others finish
    res = sweep(data, search_space={"rank": [1, 2, 20]}, fixed_params=TINY, out_dir=tmp_path,
                max_retries=1, experiment_name="grid")
    t = res.table.set_index("rank")
    assert set(t.index) == {1, 2, 20}
    assert t.loc[20, "status"] == "error" and "rank" in t.loc[20, "error"]
    ok = res.table[res.table["status"] == "ok"]
    assert len(ok) == 2 and ok["val_bound"].notna().all()
    names = [Path(p).name for p in ok["nwb_path"]]
    assert len(set(names)) == 2 and all(n.startswith("trial_") for n in names)
    assert res.best["rank"] in (1, 2)
    est = res.best_estimator()
    assert est.model_config_.rank == res.best["rank"]
    assert not glob.glob(str(tmp_path / "*.tmp*"))  # atomic writes leave nothing behind


def test_sessions_from_nwb_paths_each_read_by_its_trial(ray_local, tmp_path):
    paths = [write_nwbfile(tmp_path / f"s{i}.nwb", seed=i, with_obs_intervals=False)
             for i in range(2)]
    res = sweep_sessions([str(p) for p in paths], out_dir=tmp_path / "fits",
                         estimator_params={**TINY, "rank": 2, "max_epochs": 2},
                         read_kwargs={"bin_size": 0.1}, experiment_name="sessions")
    assert sorted(res.table["session"]) == sorted(str(p) for p in paths)
    assert (res.table["status"] == "ok").all(), res.table["error"].tolist()
    assert (tmp_path / "fits" / "summary.json").is_file()
    assert len(glob.glob(str(tmp_path / "fits" / "trial_*.nwb"))) == 2
    # one winner per session, never one across sessions
    assert sorted(res.best_by_session["session"]) == sorted(str(p) for p in paths)
    with pytest.raises(ValueError, match="not comparable; use best_by_session"):
        _ = res.best


def test_sweep_from_config_with_tune_distribution(ray_local, data, tmp_path):
    # the config's source dict name -> BinnedData goes through Ray's object store
    res = sweep_from_config({"sources": {"a": data}, "out_dir": str(tmp_path),
                             "search_space": {"learning_rate": {"loguniform": [1e-3, 1e-2]}},
                             "fixed_params": {**TINY, "rank": 2, "max_epochs": 2},
                             "num_samples": 2, "experiment_name": "cfg"})
    assert len(res.table) == 2 and (res.table["status"] == "ok").all()
    lrs = res.table["learning_rate"]
    assert ((lrs >= 1e-3) & (lrs <= 1e-2)).all()


def test_killed_worker_resumes_from_its_checkpoint(ray_local, tmp_path):
    big = _teacher_data(n_trials=16, n_time=150, seed=2)
    params = {**TINY, "rank": 2, "max_epochs": 6, "n_particles": 16}
    exp = tmp_path / "ray_results" / "kill"
    killed: list[int] = []

    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            # the second checkpoint: Tune has registered the first one by then (a report
            # blocks until the driver fetched it), so the retry must resume from a checkpoint
            for meta in glob.glob(str(exp / "*" / "checkpoint_000001" / "trial.json")):
                try:
                    pid = json.loads(Path(meta).read_text())["pid"]
                    os.kill(pid, signal.SIGKILL)
                except (OSError, ValueError, KeyError):
                    continue
                killed.append(pid)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    res = sweep(big, search_space={"random_state": [0, 1]}, fixed_params=params,
                out_dir=tmp_path, chunk_epochs=1, max_retries=2, experiment_name="kill")
    thread.join(5)
    assert killed, "no checkpoint appeared to kill the worker at"
    t = res.table
    assert len(t) == 2 and (t["status"] == "ok").all(), t["error"].tolist()
    assert (t["epochs"] == 6).all()
    resumed = t[t["restored"].astype(bool)]
    assert len(resumed) >= 1, t[["trial_id", "start_epoch", "pid"]]
    assert (resumed["start_epoch"] > 0).all()
    assert all(p != killed[0] for p in resumed["pid"])
    est = res.best_estimator()
    assert len(est.history_.train_bound) == 6


def test_asha_stops_trials_behind_at_a_rung(ray_local, data, tmp_path):
    res = sweep(data, search_space={"random_state": list(range(6))},
                fixed_params={**TINY, "rank": 2, "max_epochs": 4}, chunk_epochs=1,
                out_dir=tmp_path, scheduler="asha", experiment_name="asha")
    t = res.table
    assert set(t["status"]) <= {"ok", "stopped"}, t[["status", "error"]]
    stopped, ok = t[t["status"] == "stopped"], t[t["status"] == "ok"]
    assert len(ok) >= 1 and len(stopped) >= 1, t[["status", "epochs"]]
    assert (stopped["epochs"] < 4).all() and stopped["val_bound"].notna().all()
    assert (ok["epochs"] == 4).all() and all(Path(p).is_file() for p in ok["nwb_path"])
    assert res.best["status"] == "ok"
    with pytest.raises(ValueError, match="needs backend='ray'"):
        sweep(data, out_dir=tmp_path, backend="serial", scheduler="asha")
