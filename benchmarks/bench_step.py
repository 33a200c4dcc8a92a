"""One optimiser step of the VSMC fit on the three benchmark configurations (EEG; Gaussian
teacher-student; Poisson counts with the CNN encoder).

Prints, per configuration and thread count: the median (and min) time per optimiser step
(forward particle filter + backward + Adam), the peak resident memory of a process that ran only
that configuration, the ratio to the reference implementation's figure (mackelab/smc_rnns,
measured on this machine class with 1 torch thread), and the distance from the FLOP bound
(the step's floating-point work divided by the machine's measured single-precision matmul rate).

Run by hand (not a test):  .venv/bin/python benchmarks/bench_step.py [--reps 40] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REFERENCE_S = {"eeg": 0.143, "gauss_ts": 0.263, "poisson_ts": 0.576}

CONFIGS = {
    # name: (model kwargs, proposal, K, batch, T)
    "eeg": (dict(rank=3, n_units=512, n_channels=64, nonlinearity="clipped_relu"),
            "optimal", 10, 10, 50),
    "gauss_ts": (dict(rank=2, n_units=20, n_channels=20, nonlinearity="relu"),
                 "optimal", 64, 10, 75),
    "poisson_ts": (dict(rank=2, n_units=40, n_channels=40, observation="poisson",
                        bin_size=0.05, nonlinearity="relu"), "encoder", 64, 10, 200),
}


def step_flops(name: str) -> float:
    """Floating-point operations of one optimiser step (dominant terms; backward = 2× forward).

    Per time step and particle: the transition's two products (2·2·R·N), the proposal's R×R
    products and the observation (Gaussian: folded into R-dim quadratic forms, 2·R²; Poisson:
    η = C z, 2·R·C, plus about 10 flops per channel for the link and likelihood).
    """
    kw, prop, K, B, T = CONFIGS[name]
    R, N, C = kw["rank"], kw["n_units"], kw["n_channels"]
    per = 4 * R * N + 6 * R * R + 4 * N
    if prop == "encoder":
        per += 2 * R * C + 10 * C
    return 3.0 * per * K * B * T


def _measure_peak_gflops() -> float:
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    n = 20
    for _ in range(n):
        a @ b
    return 2 * 1024**3 * n / (time.perf_counter() - t) / 1e9


def _run_one(name: str, threads: int, reps: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from nwb_lrnn.inference import make_proposal, particle_filter
    from nwb_lrnn.inference.training import _adam
    from nwb_lrnn.model import LowRankRNNModel, ModelConfig

    kw, prop, K, B, T = CONFIGS[name]
    g = torch.Generator().manual_seed(0)
    model = LowRankRNNModel(ModelConfig(**kw), generator=g)
    proposal = make_proposal(prop, model, generator=g)
    y = model.sample(B, T, generator=g)[1]
    params = list(model.parameters()) + list(proposal.parameters())
    opt = _adam(params, 1e-3)
    times = []
    for i in range(reps + 5):
        t0 = time.perf_counter()
        res = particle_filter(model, proposal, y, n_particles=K, generator=g)
        loss = -res.log_marginal.mean() / T
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    return {"median_s": float(np.median(times)), "min_s": float(np.min(times)),
            "peak_rss_mib": peak, "gflops": _measure_peak_gflops()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_run_one(args.child[0], int(args.child[1]), args.reps)))
        return
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"capability {torch.backends.cpu.get_cpu_capability()}")
    header = (f"{'config':<11} {'thr':>3} {'median ms':>10} {'min ms':>8} {'ref ms':>7} "
              f"{'speed-up':>8} {'peak MiB':>9} {'MFLOP':>7} {'bound ms':>9} {'×bound':>7}")
    print(header)
    print("-" * len(header))
    for name in args.configs:
        for threads in args.threads:
            out = subprocess.run([sys.executable, __file__, "--reps", str(args.reps),
                                  "--child", name, str(threads)], capture_output=True,
                                 text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            flops = step_flops(name)
            bound = flops / (r["gflops"] * 1e9)
            ref = REFERENCE_S[name]
            print(f"{name:<11} {threads:>3} {1e3 * r['median_s']:>10.2f} "
                  f"{1e3 * r['min_s']:>8.2f} {1e3 * ref:>7.0f} {ref / r['median_s']:>7.1f}× "
                  f"{r['peak_rss_mib']:>9.0f} {flops / 1e6:>7.1f} {1e3 * bound:>9.3f} "
                  f"{r['median_s'] / bound:>6.0f}×")
    print("\nspeed-up = reference (1 thread) / our median; ×bound = our median / FLOP bound "
          "(the step's flops at the measured 1024² sgemm rate of the same thread count).")


if __name__ == "__main__":
    main()
