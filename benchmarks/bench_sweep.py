"""Throughput of sweeps: K tiny fits on a local Ray (2 CPUs) vs one after another in-process;
and, with ``--dandi-sessions N``, what a sweep over a whole dandiset costs the DANDI server.

Usage::

    .venv/bin/python benchmarks/bench_sweep.py [--trials 8] [--cpus 2] [--epochs 20]
    .venv/bin/python benchmarks/bench_sweep.py --dandi-sessions 24 --seeds 1 3 [--ray]

The first prints trials per hour both ways and their ratio. Ray's start-up is timed separately
(it is paid once per process, not per sweep). Each trial uses one torch thread.

The second serves N small NWB sessions (40 units, 60 s) from the local DANDI test server of the
test suite (``tests/dandi_server.py``, 127.0.0.1 only) and sweeps the whole dandiset once per
``--seeds`` count (1-epoch fits: the fits are not what is measured), printing the DANDI API
metadata requests, the download requests and the file bytes served per session and per trial.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

import numpy as np
import torch

from nwb_lrnn import LowRankRNN
from nwb_lrnn.sweep import sweep

logger = logging.getLogger("bench_sweep")


def _data(n_trials: int, n_time: int):
    teacher = LowRankRNN.from_parameters(
        U=np.random.default_rng(0).normal(size=(16, 2)),
        V=np.random.default_rng(1).normal(size=(2, 16)) / 16, h=np.zeros(16), decay=0.9,
        nonlinearity="tanh", noise_z=0.1, random_state=0)
    return teacher.sample(n_trials, n_time, random_state=1)


def dandi_costs(n_sessions: int, seeds: list[int], use_ray: bool, cpus: int) -> dict:
    """API requests and bytes served for sweeps over an n-session dandiset, per seed count."""
    import sys
    from pathlib import Path

    os.environ.setdefault("DANDI_NO_ET", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.dandi_server import DandiServer
    from tests.nwb_factory import write_nwbfile

    out = {}
    with tempfile.TemporaryDirectory() as tmp, DandiServer() as srv:
        files = {}
        for i in range(n_sessions):
            f = write_nwbfile(Path(tmp) / f"s{i}.nwb", n_units=40, duration=60.0, rate=5.0,
                              seed=i)
            files[f"sub-{i:02d}/sub-{i:02d}_ses-1_ecephys.nwb"] = f
        srv.add_dandiset("000999", files)
        if use_ray:
            import ray

            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        for k in seeds:
            srv.reset_counters()
            res = sweep({"dandiset": "DANDI:000999"}, search_space={"random_state": list(range(k))},
                        fixed_params={"rank": 1, "n_units": 4, "n_particles": 4, "max_epochs": 1},
                        read_kwargs={"bin_size": 0.1, "api_url": srv.api_url,
                                     "cache_dir": f"{tmp}/cache{k}"},
                        out_dir=f"{tmp}/sweep{k}", backend="ray" if use_ray else "serial")
            ok = int((res.table["status"] == "ok").sum())
            api = [p for _, p, _ in srv.requests if p.startswith("/api")]
            meta = sum(not p.endswith("/download/") for p in api)
            dl = sum(p.endswith("/download/") for p in api)
            served = sum(srv.served(f) for f in files.values())
            trials = len(res.table)
            out[k] = {"trials": trials, "ok": ok, "api_metadata": meta, "downloads": dl,
                      "bytes_per_session": served / n_sessions}
            logger.info("%d sessions x %d seed(s) = %d trials (%d ok): %d API metadata "
                        "requests (%.2f a trial), %d download redirects (%.2f a trial), "
                        "%.0f kB served per session (files %.0f kB each)", n_sessions, k,
                        trials, ok, meta, meta / trials, dl, dl / trials,
                        served / n_sessions / 1e3,
                        np.mean([Path(f).stat().st_size for f in files.values()]) / 1e3)
        if use_ray:
            ray.shutdown()
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n-time", type=int, default=100)
    ap.add_argument("--dandi-sessions", type=int, default=0,
                    help="measure a sweep over a dandiset of this many sessions instead")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 3],
                    help="with --dandi-sessions: seed counts to compare")
    ap.add_argument("--ray", action="store_true", help="with --dandi-sessions: on Ray")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("ray", "nwb_lrnn", "dandi"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(1)
    if args.dandi_sessions:
        logging.getLogger("nwb_lrnn").setLevel(logging.ERROR)  # no Subject in these files
        return dandi_costs(args.dandi_sessions, args.seeds, args.ray, args.cpus)

    data = _data(16, args.n_time)
    fixed = {"rank": 2, "n_units": 16, "n_particles": 16, "max_epochs": args.epochs,
             "batch_size": 8}
    space = {"random_state": list(range(args.trials))}
    kw = {"fixed_params": fixed, "chunk_epochs": max(1, args.epochs // 4)}

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        serial = sweep(data, search_space=space, out_dir=f"{tmp}/serial", backend="serial",
                       **kw)
        t_serial = time.perf_counter() - t0

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        t_init = time.perf_counter() - t0
        t0 = time.perf_counter()
        on_ray = sweep(data, search_space=space, out_dir=f"{tmp}/ray", **kw)
        t_ray = time.perf_counter() - t0
        ray.shutdown()

    assert (serial.table["status"] == "ok").all() and (on_ray.table["status"] == "ok").all()
    k = args.trials
    res = {"serial_trials_per_hour": k / t_serial * 3600,
           "ray_trials_per_hour": k / t_ray * 3600,
           "ray_incl_startup_trials_per_hour": k / (t_ray + t_init) * 3600}
    res["ratio"] = res["ray_trials_per_hour"] / res["serial_trials_per_hour"]
    logger.info("%d trials (rank 2, N 16, K 16, %d epochs, 16 trials x %d bins), %d CPUs",
                k, args.epochs, args.n_time, args.cpus)
    logger.info("serial, in-process : %6.1f s  %8.0f trials/h", t_serial,
                res["serial_trials_per_hour"])
    logger.info("Ray (%d CPUs)       : %6.1f s  %8.0f trials/h  (+ %.1f s Ray start-up: "
                "%.0f trials/h)", args.cpus, t_ray, res["ray_trials_per_hour"], t_init,
                res["ray_incl_startup_trials_per_hour"])
    logger.info("ratio Ray / serial : %.2fx", res["ratio"])
    res["serial_fit_seconds"] = float(serial.table["seconds"].mean())
    res["ray_fit_seconds"] = float(on_ray.table["seconds"].mean())
    logger.info("mean seconds inside a trial: serial %.2f, Ray %.2f (load average %.1f)",
                res["serial_fit_seconds"], res["ray_fit_seconds"], os.getloadavg()[0])
    return res


if __name__ == "__main__":
    main()
