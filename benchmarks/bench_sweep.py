"""Throughput of sweeps: K tiny fits on a local Ray (2 CPUs) vs one after another in-process.

Usage::

    .venv/bin/python benchmarks/bench_sweep.py [--trials 8] [--cpus 2] [--epochs 20]

Prints trials per hour both ways and their ratio. Ray's start-up is timed separately (it is
paid once per process, not per sweep). Each trial uses one torch thread.
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


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n-time", type=int, default=100)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("ray", "nwb_lrnn"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(1)

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
