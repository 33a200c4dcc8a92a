"""Does a fitted network generate bounded data, and are fixed points of given networks exact?

Two figures the README quotes, printed by one script (no timings: load does not matter):

1. ReLU against clipped-ReLU students of one tanh teacher (rank 2, 20 units, 8 trials x 100
   bins): the training bound per step of the last epoch and the largest |z| of a free run of
   ``--steps`` steps relative to the largest |z| of the data's posterior.
2. The residual ``max |decay z + V phi(U z - h) - z|`` of the exact fixed points of random
   float64 networks, found in float64 (``from_parameters`` keeps the dtype) and in float32.

Run: ``python benchmarks/bench_generation.py [--epochs 3 30] [--steps 1000]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np


def _teacher_data():
    from nwb_lrnn import LowRankRNN

    rng = np.random.default_rng(0)
    teacher = LowRankRNN.from_parameters(U=rng.normal(size=(20, 2)),
                                         V=rng.normal(size=(2, 20)) / 20, decay=0.9,
                                         nonlinearity="tanh", noise_z=0.1, random_state=0)
    return teacher.sample(8, 100, random_state=1)


def students(epochs: list[int], steps: int) -> None:
    from nwb_lrnn import LowRankRNN

    data = _teacher_data()
    print(f"students of a tanh teacher (8 x 100 bins), free run of {steps} steps x 2:")
    for n_ep in epochs:
        for phi in ("relu", "clipped_relu"):
            est = LowRankRNN(rank=2, n_units=20, max_epochs=n_ep, random_state=0,
                             verbose=False, nonlinearity=phi)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(data)
                r = est.check_generation(data, n_time=steps, warn=False)
            print(f"  {n_ep:3d} epochs, {phi:12s}: bound/step {est.history_.train_bound[-1]:.2f}, "
                  f"largest |z| {r['ratio']:.3g}x the data's "
                  f"({'bounded' if r['stable'] else 'NOT bounded'})")


def exact_fixed_points(n_networks: int) -> None:
    from nwb_lrnn import LowRankRNN, find_fixed_points

    worst = {"float64": 0.0, "float32": 0.0}
    found = 0
    for seed in range(n_networks):
        rng = np.random.default_rng(seed)
        N, R = 30, 2
        U, V = rng.normal(size=(N, R)), rng.normal(size=(R, N)) * 2 / np.sqrt(N)
        h = 0.5 * rng.normal(size=N)
        for dtype in worst:
            est = LowRankRNN.from_parameters(U=U, V=V, h=h, decay=0.9, dtype=dtype,
                                             nonlinearity="relu")
            z = find_fixed_points(est, verbose=False).z
            if len(z):
                res = np.abs(0.9 * z + np.maximum(z @ U.T - h, 0) @ V.T - z).max()
                worst[dtype] = max(worst[dtype], float(res))
                found += dtype == "float64"
    print(f"exact fixed points of {n_networks} random ReLU networks (30 units, rank 2; "
          f"{found} fixed points): largest residual float64 {worst['float64']:.1e}, "
          f"float32 {worst['float32']:.1e}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, nargs="+", default=[3, 30])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--networks", type=int, default=20)
    args = ap.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f}")
    students(args.epochs, args.steps)
    exact_fixed_points(args.networks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
