"""A short fit alone and beside CPU-bound competitor processes: the slowdown on a busy machine.

Each fit runs in a fresh child process (so torch's thread pools start as a user's would): the
main job's EEG model (the bundled S001R01 recording, ``nwb-lrnn demo``'s settings) for a few
epochs. The fit is timed alone, then beside ``--competitors`` processes that each spin one CPU
(``while True: pass``), which this script starts before and kills after the fit. Printed per
thread setting: time alone, time beside the competitors, the slowdown, and the load average.

``--threads auto`` is the package's own choice; a number forces that many torch threads
(``nwb_lrnn.set_num_threads``). The ``used`` column is the count the fit started with,
alone / beside the competitors. ``--env KEY=VALUE`` sets an environment variable in the child
(e.g. ``OMP_WAIT_POLICY=ACTIVE`` to see what spinning threads cost).

Run by hand (not a test), on an otherwise idle machine:

    .venv/bin/python benchmarks/bench_contention.py [--epochs 3] [--threads auto 1 2]
        [--competitors 1] [--reps 1] [--units 96] [--particles 10]

``--units 1024 --particles 64`` is a fit large enough for two threads to pay on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
import nwb_lrnn
from nwb_lrnn.cli import DEMO_SETTINGS, sample_eeg_path
from nwb_lrnn.io import from_mne, read_eeg
threads = sys.argv[1]
if threads != "auto":
    nwb_lrnn.set_num_threads(int(threads))
cfg = dict(DEMO_SETTINGS["full"]); cfg.pop("n_time")
cfg["max_epochs"] = int(sys.argv[2])
cfg["n_units"], cfg["n_particles"] = int(sys.argv[3]), int(sys.argv[4])
data = from_mne(read_eeg(sample_eeg_path(), verbose="error"), picks="eeg", verbose="error")
est = nwb_lrnn.LowRankRNN(nonlinearity="clipped_relu", noise_cov="full", proposal="optimal",
                          random_state=0, verbose=False, **cfg)
used = nwb_lrnn.get_num_threads(cfg["n_particles"] * cfg["batch_size"] * cfg["n_units"])
t1 = time.perf_counter()
est.fit(data)
t2 = time.perf_counter()
print(json.dumps({"fit_s": t2 - t1, "startup_s": t1 - t0,
                  "torch_threads": used}))
"""


def _fit_once(threads: str, args: argparse.Namespace, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, threads, str(args.epochs),
                          str(args.units), str(args.particles)], check=True,
                         capture_output=True, text=True, env={**os.environ, **env}, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _start_competitors(n: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    time.sleep(1.0)  # let them reach the scheduler's steady state
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs of 20 optimiser steps")
    ap.add_argument("--threads", nargs="+", default=["auto", "1", "2"])
    ap.add_argument("--units", type=int, default=96, help="N (the main job: 96)")
    ap.add_argument("--particles", type=int, default=10, help="K (the main job: 10)")
    ap.add_argument("--competitors", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the child")
    args = ap.parse_args(argv)
    env = dict(kv.split("=", 1) for kv in args.env)
    print(f"CPUs: {os.cpu_count()}  affinity: {len(os.sched_getaffinity(0))}  "
          f"load before: {os.getloadavg()[0]:.2f}  env: {env or '-'}")
    print(f"{'threads':>8} {'used':>5} {'alone s':>9} {'busy s':>9} {'slowdown':>9} "
          f"{'load (busy)':>12}")
    for threads in args.threads:
        for _ in range(args.reps):
            alone = _fit_once(threads, args, env)
            procs = _start_competitors(args.competitors)
            try:
                busy = _fit_once(threads, args, env)
                load = os.getloadavg()[0]
            finally:
                _stop(procs)
            used = f"{alone['torch_threads']}/{busy['torch_threads']}"
            print(f"{threads:>8} {used:>5} {alone['fit_s']:9.2f} "
                  f"{busy['fit_s']:9.2f} {busy['fit_s'] / alone['fit_s']:8.2f}x "
                  f"{load:12.2f}", flush=True)
            time.sleep(2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
