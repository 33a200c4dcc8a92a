"""Teacher–student: does a fitted student recover the teacher's fixed points and stability?

Fits students (the package's estimator, tanh like the teacher) to data sampled from
``nwb_lrnn.teachers.oscillator_teacher`` (one stable focus near the origin) and prints, for the
teacher and every student: the fixed points found (count, kind, stability, largest |λ|), the
fit's bound on the training data, and whether the noise-free dynamics end at a fixed point or a
cycle. The latents are defined up to an invertible linear map, which leaves the eigenvalues and
the stability of fixed points unchanged, so those are compared directly.

    .venv/bin/python benchmarks/bench_teacher_fixed_points.py [--seeds 0 1] [--epochs 30]
        [--trials 32] [--time 150] [--observation gaussian] [--validation 0.2] [--threads 1]
        [--growth 0.1] [--readout units|affine] [--batch-size 8]

The Poisson teacher reads each neuron out of one RNN unit (rate = softplus(β_i tanh(u_iᵀ z −
h_i) + b_i), ``readout='units'``); its students do the same unless ``--readout affine``
(rate = softplus(C z + d), the package's default for counts, a model the teacher is not in).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def describe(est) -> str:
    from nwb_lrnn import find_fixed_points

    fp = find_fixed_points(est, verbose=False)
    parts = []
    for i in range(len(fp.z)):
        lam = np.abs(fp.eigenvalues[i]).max()
        parts.append(f"{fp.stability[i]} {fp.kind[i]} (|λ|max {lam:.3f})")
    # noise-free run from a few states: does it settle (fixed point) or keep moving (cycle)?
    import torch

    tr = est.model_.transition
    z = torch.randn(8, est.model_config_.rank, generator=torch.Generator().manual_seed(0),
                    dtype=next(tr.parameters()).dtype)
    with torch.no_grad():
        for _ in range(3000):
            z = tr.mean(z)
        z2 = z
        for _ in range(50):
            z2 = tr.mean(z2)
    moving = float((z2 - z).abs().max())
    end = "settles" if moving < 1e-6 else f"keeps moving ({moving:.2g} over 50 steps)"
    return f"{len(fp.z)} fixed point(s): " + "; ".join(parts) + f"; noise-free run {end}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--time", type=int, default=150)
    ap.add_argument("--observation", choices=("gaussian", "poisson"), default="gaussian")
    ap.add_argument("--validation", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--lr-final", type=float, default=0.003)
    ap.add_argument("--growth", type=float, default=0.15,
                    help="the teacher's growth (0.15: an unstable focus and a limit cycle; "
                         "0.1: a stable focus)")
    ap.add_argument("--readout", choices=("units", "affine"), default=None,
                    help="the Poisson students' readout (default: the teacher's, 'units')")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import nwb_lrnn
    from nwb_lrnn import LowRankRNN
    from nwb_lrnn.teachers import oscillator_teacher

    nwb_lrnn.set_num_threads(args.threads)
    for seed in args.seeds:
        if args.observation == "gaussian":
            teacher = oscillator_teacher(20, 2, seed=seed, growth=args.growth)
            n_units = 20
        else:
            rng = np.random.default_rng(seed)
            teacher = oscillator_teacher(40, 2, observation="poisson", bin_size=0.05,
                                         bias=rng.uniform(0, 10, 40),
                                         gain=rng.uniform(5, 15, 40), seed=seed + 2,
                                         growth=args.growth)
            n_units = 40
        data = teacher.sample(args.trials, args.time, burn_in=50, random_state=seed + 100)
        print(f"seed {seed} teacher: {describe(teacher)}; bound {teacher.score(data):.4f} "
              f"(load {os.getloadavg()[0]:.2f})")
        t0 = time.perf_counter()
        # the teacher's own likelihood, so that the two bounds compare ('auto' would pick
        # gaussian_sqrt for counts, a density of transformed counts)
        extra = {}
        if args.observation == "poisson":
            extra["readout"] = args.readout or "units"
        student = LowRankRNN(rank=2, n_units=n_units, nonlinearity="tanh", n_particles=32,
                             observation=args.observation, **extra,
                             max_epochs=args.epochs, batch_size=args.batch_size,
                             learning_rate=args.lr, lr_final=args.lr_final,
                             validation_fraction=args.validation, random_state=seed,
                             verbose=False).fit(data)
        what = f", readout {extra['readout']}" if extra else ""
        print(f"seed {seed} student ({args.epochs} epochs{what}, "
              f"{time.perf_counter() - t0:.0f} s): "
              f"{describe(student)}; bound {student.score(data):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
