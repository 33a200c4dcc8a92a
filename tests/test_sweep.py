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


def test_adopt_continues_a_checkpoint_of_another_learning_rate(data, tmp_path):
    """resume='adopt' (PBT's exploit step): another fit's checkpoint of the same data and
    model, with another learning rate and seed, is continued on this fit's schedule; plain
    resume refuses it, and a checkpoint of another model is refused either way."""
    train, val = _split(data, 0.2, 0)
    ck = tmp_path / "donor.npz"
    base = {**TINY, "rank": 2, "max_epochs": 6, "verbose": False}
    donor = LowRankRNN(**base, learning_rate=1e-3, random_state=0)
    donor.fit(train, validation_data=val, checkpoint=ck, until_epoch=2)
    shutil.copyfile(ck, tmp_path / "kept.npz")
    taker = LowRankRNN(**base, learning_rate=2e-2, random_state=1)
    with pytest.raises(ValueError, match="other training settings .*learning_rate"):
        taker.fit(train, validation_data=val, checkpoint=ck, resume=True, until_epoch=4)
    taker.fit(train, validation_data=val, checkpoint=ck, resume="adopt", until_epoch=4)
    assert len(taker.history_.train_bound) == 4
    assert taker.history_.train_bound[:2] == donor.history_.train_bound
    # the donor continued on its own schedule ends elsewhere: the rate was really changed
    donor.fit(train, validation_data=val, checkpoint=tmp_path / "kept.npz", resume=True,
              until_epoch=4)
    assert donor.history_.train_bound[:2] == taker.history_.train_bound[:2]
    assert donor.history_.train_bound[2:] != taker.history_.train_bound[2:]
    with pytest.raises(ValueError, match="resume must be True, False or 'adopt'"):
        taker.fit(train, validation_data=val, checkpoint=ck, resume="yes")
    other = LowRankRNN(**{**base, "n_units": 9}, learning_rate=2e-2)
    with pytest.raises(ValueError, match="another model"):
        other.fit(train, validation_data=val, checkpoint=tmp_path / "kept.npz",
                  resume="adopt")


def test_population_based_training_exploits_within_a_session(ray_local, data, tmp_path):
    res = sweep(data, search_space={"learning_rate": [1e-3, 3e-3, 1e-2, 3e-2]},
                fixed_params={**TINY, "rank": 2, "max_epochs": 6}, chunk_epochs=1,
                out_dir=tmp_path, scheduler="pbt", experiment_name="pbt")
    t = res.table
    assert (t["status"] == "ok").all(), t[["status", "error"]]
    assert (t["epochs"] == 6).all()
    # the bottom of the population continued from the top's checkpoints
    assert t["restored"].any() and (t.loc[t["restored"], "start_epoch"] > 0).all()
    assert res.best["status"] == "ok" and Path(res.best["nwb_path"]).is_file()
    with pytest.raises(ValueError, match="mutates learning_rate or lr_final"):
        sweep(data, search_space={"rank": [1, 2]}, out_dir=tmp_path, scheduler="pbt")
    with pytest.raises(ValueError, match="give max_epochs in fixed_params"):
        sweep(data, search_space={"learning_rate": [1e-3], "max_epochs": [2, 4]},
              out_dir=tmp_path, scheduler="pbt")


def test_cli_fits_a_dandisets_sessions_as_ray_tasks(ray_local, tmp_path, capsys, monkeypatch):
    """`nwb-lrnn fit DANDI:... --backend ray`: one Ray task per session, assets resolved on the
    driver (the tasks ask the API for nothing but their download), one results file per
    session under the serial path's names, a summary with the real metric."""
    import csv

    from nwb_lrnn.cli import main
    from nwb_lrnn.io.fit_nwb import summarize_fit

    from .dandi_server import DandiServer
    from .nwb_factory import TINY_FIT_ARGS, add_two_sessions

    monkeypatch.setenv("DANDI_NO_ET", "1")
    out = tmp_path / "fits"
    with DandiServer() as srv:
        s1, _ = add_two_sessions(srv, tmp_path, "000201")
        args = ["fit", "DANDI:000201", "--api-url", srv.api_url, "--cache-dir",
                str(tmp_path / "cache"), "--epochs", "2", *TINY_FIT_ARGS, "--backend", "ray",
                "--out", str(out)]
        assert main(args) == 0, capsys.readouterr().err
        text = capsys.readouterr().out
        api = [p for _, p, _ in srv.requests if p.startswith("/api") and p != "/api/info/"]
        downloads = [p for p in api if p.endswith("/download/")]
        assert len(downloads) == 2  # one per task; the metadata was asked on the driver
    assert "2 sessions, one Ray task each" in text and "not ranked" in text
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert [r["units"] for r in rows] == ["3", "5"]
    assert all(r["node_id"] for r in rows)
    for r in rows:
        info = summarize_fit(out / r["results"])
        assert info["model"]["n_channels"] == int(r["units"])
        assert float(r["val_bound"]) == pytest.approx(
            next(m[1] for m in info["metrics"] if m[0] == "sweep_val_bound"))
    assert {r["results"] for r in rows} == {"sub-a_ses-1_ecephys_lrnn.nwb",
                                            "sub-b_ses-1_ecephys_lrnn.nwb"}
    # a single recording is not a set of sessions
    assert main(["fit", str(s1), "--backend", "ray", "--epochs", "1"]) == 2
    assert "are for the sessions of a dandiset" in capsys.readouterr().err


TWO_NODES = r"""
import json, sys, time
from ray.cluster_utils import Cluster
import ray
from nwb_lrnn.sweep import sweep
c = Cluster(initialize_head=True, connect=False,
            head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                            "include_dashboard": False})
c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
try:
    ray.init(address=c.address, log_to_driver=False)
    deadline = time.time() + 60
    while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.time() < deadline:
        time.sleep(0.5)
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    res = sweep(json.loads(sys.argv[1]), read_kwargs={"bin_size": 0.1},
                search_space={"random_state": [0, 1]},
                fixed_params={"rank": 2, "n_units": 8, "n_particles": 4, "max_epochs": 2,
                              "window": 20, "steps_per_epoch": 1},
                out_dir=sys.argv[2], address=c.address, experiment_name="two_nodes")
    t = res.table
    print(json.dumps({"nodes": nodes, "status": t["status"].tolist(),
                      "node_id": t["node_id"].tolist(), "session": t["session"].tolist(),
                      "errors": [str(e) for e in t["error"].tolist()]}))
finally:
    ray.shutdown()
    c.shutdown()
"""


@pytest.mark.slow
def test_a_sweep_runs_on_both_nodes_of_a_two_node_cluster(tmp_path):
    """A head and a worker node (one CPU each) on 127.0.0.1: a sweep over two sessions runs
    trials on both. Ray replaces 127.0.0.1 by this machine's outward address unless it is told
    to keep loopback (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0), which a sandbox may not route."""
    pytest.importorskip("ray")
    paths = [str(write_nwbfile(tmp_path / f"s{i}.nwb", seed=i, with_obs_intervals=False))
             for i in range(2)]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    out = subprocess.run([sys.executable, "-c", TWO_NODES, json.dumps(paths),
                          str(tmp_path / "fits")], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(got["nodes"]) == 2
    assert got["status"] == ["ok"] * 4, got["errors"]
    assert sorted(set(got["session"])) == sorted(paths)
    assert set(got["node_id"]) == set(got["nodes"]), got  # trials ran on both nodes
