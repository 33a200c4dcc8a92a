"""The ``nwb-lrnn`` command line.

    nwb-lrnn fit SOURCE [--rank R] [--units N] [--bin-size S] [--particles K] [--epochs E]
                        [--seed S] [--device D] [--out FILE.nwb] [--asset GLOB] ...
    nwb-lrnn info FIT.nwb
    nwb-lrnn generate FIT.nwb [--trials N] [--time T] [--out FILE]
    nwb-lrnn demo
    nwb-lrnn version

SOURCE is a local NWB file, an NWB URL, a dandiset (``DANDI:000128[/version]`` with
``--asset PATH_OR_GLOB``) or an EEG file MNE reads (EDF, BDF, FIF, BrainVision, EEGLAB).
A user error prints one line and exits with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

__all__ = ["build_parser", "main"]

EEG_SUFFIXES = (".edf", ".bdf", ".fif", ".fif.gz", ".vhdr", ".set", ".gdf")
_DANDI_RE = re.compile(r"^(DANDI:)?\d{6}(/[\w.]+)?$|dandiarchive\.org/dandiset/", re.I)


class CLIError(Exception):
    """A user error: printed as one line."""


def source_kind(source: str) -> str:
    """'dandi', 'eeg' or 'nwb' for a SOURCE argument."""
    low = source.lower()
    if _DANDI_RE.search(source) and not low.endswith(".nwb"):
        return "dandi"
    if low.endswith(EEG_SUFFIXES):
        return "eeg"
    return "nwb"


def load_source(args: argparse.Namespace):
    """Read SOURCE into BinnedData as the options say."""
    kind = source_kind(args.source)
    if kind == "eeg":
        import mne

        from .io import from_mne

        path = Path(args.source)
        if not path.exists():
            raise FileNotFoundError(f"EEG file not found: {path}")
        raw = mne.io.read_raw(str(path), preload=True, verbose="error")
        if args.bin_size:
            raw.resample(1.0 / args.bin_size, verbose="error")
        return from_mne(raw, picks="eeg")
    bin_size = args.bin_size or 0.02
    if kind == "dandi":
        from .io import read_dandi

        out = read_dandi(args.source, asset=args.asset, bin_size=bin_size, merge=True)
        return out
    from .io import read_nwb

    return read_nwb(args.source, bin_size=bin_size)


def _fit(args: argparse.Namespace) -> int:
    from . import LowRankRNN
    from .io import write_nwb

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = load_source(args)
    print(f"nwb-lrnn fit: {data}")
    long_recording = data.n_trials == 1
    window = args.window or (min(50, data.n_time) if long_recording else None)
    est = LowRankRNN(rank=args.rank, n_units=args.units, nonlinearity=args.nonlinearity,
                     n_particles=args.particles, max_epochs=args.epochs, window=window,
                     steps_per_epoch=args.steps_per_epoch or (50 if long_recording else None),
                     batch_size=args.batch_size, learning_rate=args.lr,
                     lr_final=args.lr / 100, random_state=args.seed, device=args.device,
                     verbose=not args.quiet)
    t0 = time.perf_counter()
    est.fit(data)
    dt = time.perf_counter() - t0
    out = Path(args.out) if args.out else Path(_default_out(args.source))
    write_nwb(est, out, data=data, overwrite=args.overwrite)
    print(f"  fitted in {dt:.1f} s: bound per step {est.history_.train_bound[-1]:.4f}")
    print(f"  wrote {out}")
    return 0


def _default_out(source: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", Path(source.rstrip("/")).name or "fit")
    for suffix in (".nwb", *EEG_SUFFIXES):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return f"{stem}_lrnn.nwb"


def _info(args: argparse.Namespace) -> int:
    from .io import read_fit

    est = read_fit(args.fit)
    cfg = est.model_config_
    h = est.history_
    print(f"{args.fit}: LowRankRNN rank {cfg.rank}, {cfg.n_units} units, "
          f"{cfg.n_channels} channels, {cfg.observation} observations, "
          f"nonlinearity {cfg.nonlinearity['name']}, bin {est.bin_size_ * 1e3:g} ms")
    if h.train_bound:
        print(f"  trained {len(h.train_bound)} epochs; final bound per step "
              f"{h.train_bound[-1]:.4f}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from .io import read_fit

    est = read_fit(args.fit)
    gen = est.sample(args.trials, args.time, burn_in=args.burn_in, random_state=args.seed)
    out = Path(args.out)
    if out.suffix == ".npy":
        import numpy as np

        np.save(out, gen.values)
    else:
        raise CLIError(f"--out must end in .npy for now, got {out.name!r}.")
    print(f"wrote {gen} to {out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import make_report

    data = None
    if args.data:
        ns = argparse.Namespace(source=args.data, bin_size=args.bin_size, asset=None)
        data = load_source(ns)
    out = Path(args.out) if args.out else Path(args.fit).with_suffix("").with_name(
        Path(args.fit).stem + "_report")
    index = make_report(args.fit, out, data=data)
    print(f"report written: {index}")
    return 0


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
    print(f"  fitted in {dt:.1f} s ({args.epochs} epochs)")
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

    p = sub.add_parser("fit", help="fit a model to an NWB file, a dandiset or an EEG file")
    p.add_argument("source", help="NWB file or URL, DANDI:000128[/version], or EEG file")
    p.add_argument("--asset", help="dandiset asset path or glob")
    p.add_argument("--rank", type=int, default=3)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--nonlinearity", default="relu")
    p.add_argument("--bin-size", type=float, default=None,
                   help="seconds (spikes: default 0.02; EEG: resample to 1/bin-size)")
    p.add_argument("--particles", type=int, default=32)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--window", type=int, default=None, help="training window in bins")
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", help="output NWB file (default: <source>_lrnn.nwb)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_fit)

    p = sub.add_parser("info", help="describe a fit stored in an NWB file")
    p.add_argument("fit")
    p.set_defaults(func=_info)

    p = sub.add_parser("generate", help="generate surrogate data from a fit")
    p.add_argument("fit")
    p.add_argument("--trials", type=int, default=1)
    p.add_argument("--time", type=int, default=1000)
    p.add_argument("--burn-in", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_generate)

    p = sub.add_parser("report", help="figures and an HTML page for a fit")
    p.add_argument("fit")
    p.add_argument("--data", help="the recorded data (same SOURCE forms as fit) for the "
                                  "data-vs-generated panels")
    p.add_argument("--bin-size", type=float, default=None)
    p.add_argument("--out", help="output folder (default: <fit>_report)")
    p.set_defaults(func=_report)

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
    except (CLIError, ValueError, TypeError, FileNotFoundError, FileExistsError,
            MemoryError, ConnectionError) as err:
        if args.debug:
            raise
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"nwb-lrnn: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
