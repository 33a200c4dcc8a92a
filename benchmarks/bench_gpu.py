"""Optimiser steps and a whole fit on CUDA: the one prepared script for a GPU machine.

For bench_step's three configurations (EEG; Gaussian teacher-student; Poisson with the
reference's encoder) and two large networks (N = 4096 units, K = 256 particles, batch 64;
Gaussian with the optimal proposal, and Poisson with the encoder), it times the optimiser
step (particle filter, backward, Adam; ``torch.cuda.synchronize`` around each) and reports the
peak GPU memory (``torch.cuda.max_memory_allocated``) of each. Then it runs the estimator's
whole path on the device once — ``LowRankRNN(device=...).fit`` for a few epochs with the
generation check, ``transform``, ``sample``, ``score`` — and checks that the results are finite
and that the fitted model scores the data on the CPU as on the device (to the Monte Carlo
noise of the bound: the two devices draw different random numbers).

    python benchmarks/bench_gpu.py                     # CUDA (exits with a message if none)
    python benchmarks/bench_gpu.py --device cpu --reps 2 --configs eeg --fit-epochs 1  # dry run

Prints a table and, when the environment variable OUT names a folder, writes ``gpu.json``
there. One step of each configuration is timed ``--reps`` times after ``--warmup`` steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_step
import numpy as np
import torch

LARGE = {
    "large_gauss": (dict(rank=3, n_units=4096, n_channels=64, nonlinearity="clipped_relu",
                         noise_cov="full"), "optimal", 256, 64, 50),
    "large_poisson": (dict(rank=3, n_units=4096, n_channels=128, observation="poisson",
                           bin_size=0.05, nonlinearity="clipped_relu"), "encoder", 256, 64,
                      100),
}
CONFIGS = {**bench_step.CONFIGS, **LARGE}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(name: str, device: torch.device, reps: int, warmup: int) -> dict:
    kw, prop, K, B, T = CONFIGS[name]
    step0, _ = bench_step.build_step(name, "reference", device, configs=CONFIGS)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> float:
        return float(step0())

    for _ in range(warmup):
        step()
    _sync(device)
    times, losses = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        losses.append(step())
        _sync(device)
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else float("nan"))
    return {"config": name, "N": kw["n_units"], "R": kw["rank"], "C": kw["n_channels"],
            "K": K, "B": B, "T": T, "proposal": prop, "median_ms": 1e3 * float(np.median(times)),
            "min_ms": 1e3 * float(np.min(times)), "peak_gpu_mib": peak,
            "finite": bool(np.all(np.isfinite(losses)))}


def whole_fit(device: torch.device, epochs: int) -> dict:
    """The estimator's path on ``device``: fit, transform, sample, score; compared with the
    same fitted model moved to the CPU."""
    from nwb_lrnn import LowRankRNN
    from nwb_lrnn.estimator import export_fit, import_fit
    from nwb_lrnn.teachers import oscillator_teacher

    data = oscillator_teacher(16, 2).sample(16, 100, random_state=0)
    t0 = time.perf_counter()
    est = LowRankRNN(rank=2, n_units=64, n_particles=64, max_epochs=epochs, device=str(device),
                     validation_fraction=0.25, random_state=0, verbose=False).fit(data)
    _sync(device)
    fit_s = time.perf_counter() - t0
    lat = est.transform(data)
    smp = est.sample(4, 200, random_state=1).values
    sc = est.score(data)
    cpu = import_fit(export_fit(est), device="cpu")  # the same fitted model, on the CPU
    sc_cpu = cpu.score(data)
    # one fitted model on two devices: the bound per bin is a Monte Carlo estimate on each
    # (different random numbers), so they agree to its noise, not bitwise
    return {"fit_seconds": fit_s, "epochs": epochs, "stable": est.stable_,
            "latents_finite": bool(np.isfinite(lat).all()),
            "sample_finite": bool(np.isfinite(smp).all()), "score": float(sc),
            "score_on_cpu": float(sc_cpu),
            "scores_agree": bool(abs(sc - sc_cpu) <= 0.02 * abs(sc_cpu) + 0.02),
            "device": str(est.model_.transition.U_t.device)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--fit-epochs", type=int, default=5)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device here (torch.cuda.is_available() is False); "
                         "run it on a GPU machine, or pass --device cpu for a dry run.")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device {name}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    print(f"{'config':<14} {'N':>5} {'K':>4} {'B':>3} {'T':>4} {'median ms':>10} {'min ms':>8} "
          f"{'peak GPU MiB':>12} finite")
    for c in args.configs:
        try:
            r = time_steps(c, device, args.reps, args.warmup)
        except torch.cuda.OutOfMemoryError as err:  # say so and go on
            r = {"config": c, "error": f"out of memory: {err}"[:200]}
            print(f"{c:<14} {r['error']}")
            rows.append(r)
            continue
        rows.append(r)
        print(f"{c:<14} {r['N']:>5} {r['K']:>4} {r['B']:>3} {r['T']:>4} {r['median_ms']:>10.2f} "
              f"{r['min_ms']:>8.2f} {r['peak_gpu_mib']:>12.0f} {r['finite']}")
    out = os.environ.get("OUT")

    def save(fit):  # after the steps and again after the fit: a failure keeps what ran
        if out:
            with open(os.path.join(out, "gpu.json"), "w") as f:
                json.dump({"device": name, "torch": torch.__version__, "steps": rows,
                           "fit": fit}, f, indent=1)

    save(None)
    try:
        fit = whole_fit(device, args.fit_epochs)
    except Exception as err:  # say what failed, keep the step figures
        fit = {"error": f"{type(err).__name__}: {err}"[:500]}
    print("whole fit:", json.dumps(fit))
    save(fit)
    ok = (all(r.get("finite") for r in rows) and "error" not in fit and fit["latents_finite"]
          and fit["sample_finite"] and fit["scores_agree"])
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
