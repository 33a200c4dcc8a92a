"""The ``nwb-lrnn`` command line.

Subcommands available now: ``demo`` (teacher–student fit on simulated data) and ``version``.
User errors print one line and exit with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from . import LowRankRNN
    from .analysis import correlation_similarity, latent_noise_in_observation_space
    from .teachers import oscillator_teacher

    if args.threads:
        torch.set_num_threads(args.threads)
    print("nwb-lrnn demo: teacher–student fit (rank-2 teacher, 20 units, Gaussian observations)")
    teacher = oscillator_teacher(20, 2, seed=args.seed)
    data = teacher.sample(args.trials, 150, burn_in=50, random_state=args.seed + 1)
    print(f"  data: {data}")
    student = LowRankRNN(rank=2, n_units=20, nonlinearity="tanh", n_particles=32,
                         max_epochs=args.epochs, batch_size=8, learning_rate=0.03,
                         lr_final=0.003, random_state=args.seed, verbose=not args.quiet)
    t0 = time.perf_counter()
    student.fit(data)
    dt = time.perf_counter() - t0
    sd_t = latent_noise_in_observation_space(teacher.parameters_)
    sd_s = latent_noise_in_observation_space(student.parameters_)
    gen_t = teacher.sample(32, 1000, burn_in=100, random_state=7).values
    gen_s = student.sample(32, 1000, burn_in=100, random_state=7).values
    r = correlation_similarity(gen_t, gen_s)
    print(f"  fitted in {dt:.1f} s ({args.epochs} epochs, "
          f"{1000 * dt / max(1, len(student.history_.train_bound)) / 4:.1f} ms per step)")
    print(f"  SMC bound per step: teacher {teacher.score(data):.3f}, "
          f"student {student.score(data):.3f}")
    print("  latent noise SD in observation space (invariant to latent coordinates):")
    for i, (a, b) in enumerate(zip(sd_t, sd_s, strict=True)):
        print(f"    direction {i}: teacher {a:.3f}  student {b:.3f}  "
              f"({100 * (b - a) / a:+.1f} %)")
    print(f"  observation noise SD: teacher 0.300, student "
          f"{np.mean(student.parameters_['noise_x']):.3f} (mean over channels)")
    print(f"  pairwise unit correlations, generated data: r = {r:.4f}")
    return 0


def _version(args: argparse.Namespace) -> int:
    from . import __version__

    print(f"nwb-lrnn {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nwb-lrnn",
        description="Fit stochastic low-rank RNNs to neural data with variational SMC.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="teacher–student fit on simulated data")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--trials", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_demo)
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        if args.debug:
            raise
        print(f"nwb-lrnn: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
