"""The fused filter loops of this checkout against those of another git revision, in one process.

Loads ``nwb_lrnn/inference/fused.py`` as it is at ``--rev`` (``git show``), and times the
optimiser step of bench_step's configurations with the old and the current loops in alternating
repetitions (same model, data, thread count and process): the ratio of the medians is measured
in this run, whatever the load. Only the loops differ; everything else is this checkout's.

Run by hand (not a test):
    .venv/bin/python benchmarks/bench_loops_ab.py --rev HEAD~1 [--reps 40] [--configs eeg ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_step

from nwb_lrnn.inference import fused

LOOPS = ("OptimalLoop", "EncoderPoissonLoop")


def _old_module(rev: str):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = subprocess.run(["git", "-C", root, "show", f"{rev}:nwb_lrnn/inference/fused.py"],
                         capture_output=True, text=True)
    if src.returncode != 0:
        raise SystemExit(f"--rev {rev}: {src.stderr.strip()}")
    path = os.path.join(tempfile.mkdtemp(), "fused_old.py")
    with open(path, "w") as f:
        f.write(src.stdout)
    spec = importlib.util.spec_from_file_location("nwb_lrnn.inference._fused_old", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _time_config(name: str, args, variants: dict) -> dict[str, float]:
    """Median step time per variant, the variants alternating step by step."""
    step, _ = bench_step.build_step(name, args.encoder)

    times = {k: [] for k in variants}
    keys = list(variants)
    for i in range(2 * (bench_step.WARMUP + args.reps)):
        k = keys[i % 2]
        for n, cls in zip(LOOPS, variants[k], strict=True):
            setattr(fused, n, cls)
        t0 = time.perf_counter()
        step()
        if i >= 2 * bench_step.WARMUP:
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", required=True)
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    # the AR-noise configurations have no fused loop (their steps run unfused in both)
    fused = [c for c in bench_step.CONFIGS if c not in bench_step.PACKAGE_ONLY]
    parser.add_argument("--configs", nargs="+", default=fused, choices=list(bench_step.CONFIGS))
    parser.add_argument("--encoder", choices=list(bench_step.ENCODERS), default="reference")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    old = _old_module(args.rev)
    variants = {args.rev: tuple(getattr(old, n) for n in LOOPS),
                "this checkout": tuple(getattr(fused, n) for n in LOOPS)}
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start")
    for name in args.configs:
        med = _time_config(name, args, variants)
        keys = list(variants)
        print(f"{name:<11} {args.rev}: {1e3 * med[keys[0]]:7.2f} ms   this checkout: "
              f"{1e3 * med[keys[1]]:7.2f} ms   ratio {med[keys[0]] / med[keys[1]]:.2f}×")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
