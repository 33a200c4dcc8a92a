"""A real recording, fitted at several ranks, beside simple baselines on the same held-out part.

Takes any file the command line reads (an NWB file with Units, an EEG file MNE reads). For every
rank it fits the package's default model on the first 80 % (trials, or the time of one long
recording), and prints on the held-out 20 %: the log-likelihood per bin (the RNN's SMC bound,
the baselines' exact one-step density), the 1- and k-step-ahead prediction errors, the
generated-vs-held-out measures (continuous: D_stsp, D_H; counts: rate correlation, Fano
ratio), and whether a free run of 10x the training length stays bounded. With ``--behavior
NAME`` (an NWB TimeSeries/SpatialSeries such as hand velocity) it also prints the
cross-validated ridge R² of decoding it from the posterior latents, against PCA and factor
analysis latents of the same dimension.

    .venv/bin/python benchmarks/bench_real.py FILE [--ranks 2 3 4 5] [--epochs 150]
        [--bin-size 0.05] [--behavior hand_vel hand_pos] [--units 64] [--threads 1]
        [--paper]   # the paper's EEG training recipe (N=512, K=10, full noise, 1e-3 -> 1e-6)

Run by hand (one fit at a time; a few minutes per rank for a 100-neuron, 1-hour session).
A real recording with behaviour ships in benchmarks/data (``spykes_to_nwb.py`` makes it an NWB
file); ``--paper`` trains with the paper's EEG recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path


def _settings(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a bare word: a string
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 3, 4, 5])
    ap.add_argument("--units", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--particles", type=int, default=32)
    ap.add_argument("--bin-size", type=float, default=None)
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--steps-per-epoch", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-2, help="initial learning rate")
    ap.add_argument("--lr-final", type=float, default=1e-3)
    ap.add_argument("--noise-cov", choices=("diag", "full"), default="diag")
    ap.add_argument("--paper", action="store_true",
                    help="the paper's EEG recipe: 512 units, 10 particles, batch 10, windows "
                         "of 50, 50 steps an epoch, full latent noise, Adam 1e-3 -> 1e-6 "
                         "(give --epochs; the paper ran 1500)")
    ap.add_argument("--k", type=int, default=5, help="horizon of the k-step prediction")
    ap.add_argument("--behavior", nargs="+", default=[],
                    help="NWB behaviour series to decode (e.g. hand_vel hand_pos)")
    ap.add_argument("--decode-runs", type=int, default=1,
                    help="filter runs averaged for the decoded latents (transform n_runs)")
    ap.add_argument("--resample", type=float, default=None, metavar="HZ",
                    help="EEG only: resample to HZ with MNE before fitting (e.g. 160)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--last-epoch", action="store_true",
                    help="keep the last epoch's parameters (restore_best=False), not the best "
                         "validation epoch's")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="other LowRankRNN settings, VALUE as JSON (e.g. readout='\"units\"' "
                         "decay_per_dim=true)")
    ap.add_argument("--load", type=Path, default=None, metavar="DIR",
                    help="measure the fits DIR/rank{R}.nwb written by --save instead of fitting")
    ap.add_argument("--save", type=Path, default=None,
                    help="folder to write each fit to (rank<R>.nwb, with its data)")
    args = ap.parse_args(argv)
    if args.paper:
        args.units, args.particles, args.batch_size, args.window = 512, 10, 10, 50
        args.steps_per_epoch, args.noise_cov, args.lr, args.lr_final = 50, "full", 1e-3, 1e-6

    import nwb_lrnn
    from nwb_lrnn.baselines import (
        compare_decoding,
        compare_to_baselines,
        comparison_metrics,
        decoding_metrics,
        format_comparison,
    )
    from nwb_lrnn.cli import load_source

    if args.threads:
        nwb_lrnn.set_num_threads(args.threads)
    ns = argparse.Namespace(source=args.source, bin_size=args.bin_size, asset=None,
                            eeg_preprocessing="zscore")
    if args.resample:  # any file mne.io.read_raw reads, resampled, then z-scored per channel
        from nwb_lrnn.io import from_mne, read_eeg

        raw = read_eeg(args.source).resample(args.resample, verbose="error")
        data = from_mne(raw)
    else:
        data = load_source(ns)
    print(f"{args.source}: {data}; load average {os.getloadavg()[0]:.2f}")
    behaviors = {}
    if args.behavior:
        from nwb_lrnn.io import read_behavior

        behaviors = {b: read_behavior(args.source, b, like=data) for b in args.behavior}
    long = data.n_trials == 1
    base_rows = None
    for rank in args.ranks:
        est = nwb_lrnn.LowRankRNN(
            rank=rank, n_units=args.units, n_particles=args.particles, max_epochs=args.epochs,
            window=args.window or (100 if long else None),
            steps_per_epoch=args.steps_per_epoch or (50 if long else None),
            batch_size=args.batch_size, learning_rate=args.lr, lr_final=args.lr_final,
            noise_cov=args.noise_cov, validation_fraction=0.2, random_state=args.seed,
            restore_best=not args.last_epoch,
            verbose=False, **_settings(args.set))
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if args.load is not None:  # a fit saved by --save: measured again, not refitted
                est = nwb_lrnn.read_fit(args.load / f"rank{rank}.nwb")
            else:
                est.fit(data)
        train, test = est.split(data)
        # the baselines do not depend on the rank: fitted once, on the same split
        rows = compare_to_baselines(est, train, test, k=args.k, random_state=args.seed,
                                    baselines=base_rows is None)
        base_rows = rows[1:] if base_rows is None else base_rows
        rows = rows[:1] + base_rows
        dec = (compare_decoding(est, data, behaviors, n_runs=args.decode_runs)
               if behaviors else None)
        if args.save is not None:  # with the comparisons, as nwb-lrnn fit stores them
            args.save.mkdir(parents=True, exist_ok=True)
            nwb_lrnn.write_nwb(est, args.save / f"rank{rank}.nwb", data=data, overwrite=True,
                               include=("model", "metrics"),
                               metrics={**comparison_metrics(rows),
                                        **(decoding_metrics(dec) if dec else {})})
        st = est.stability_
        took = (f"read from {args.load}" if args.load is not None
                else f"fitted in {time.perf_counter() - t0:.0f} s")
        print(f"\nrank {rank}: {took} "
              f"(load {os.getloadavg()[0]:.2f}); free run of {st['n_time']} steps x "
              f"{st['n_trials']}: {'bounded' if st['stable'] else 'NOT bounded'} "
              f"(largest |z| {st['ratio']:.3g}x the data's, scale "
              f"{st.get('scale_ratio') or float('nan'):.3g}x)"
              + (f"; {len(caught)} warning(s)" if caught else ""))
        h = est.history_
        if h.val_bound:
            print(f"validation bound best at epoch {h.best_epoch + 1} of {len(h.val_bound)} "
                  f"({h.val_bound[h.best_epoch]:.4f}; last {h.val_bound[-1]:.4f}); the fit "
                  f"holds epoch {len(h.val_bound) if args.last_epoch else h.best_epoch + 1}")
        print(format_comparison(rows, k=args.k))
        if dec:
            for name in behaviors:
                print(f"decoding {name}, R² (cross-validated ridge, {rank} latents each): "
                      + ", ".join(f"{r['model']} {r[name]:.3f}" for r in dec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
