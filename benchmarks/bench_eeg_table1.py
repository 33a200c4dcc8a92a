"""The paper's Table 1 EEG row (VSMC, rank 3) from the raw EDF, with our estimator.

Pipeline: ``S001R01.edf`` -> :func:`nwb_lrnn.io.preprocess_eeg_paper` (the recipe of the
published ``EEG_data_smoothed.npy``) -> ``LowRankRNN(rank=3, n_units=512, clipped ReLU, K=10,
optimal proposal, Gaussian observations, windows of 50 bins, batch 10, 50 steps per epoch,
learning rate decayed exponentially)`` -> generate -> D_stsp and D_H with the paper's settings
(Pals et al. 2024, and their evaluation code):

- generate ``2400 + 10000`` steps and drop the first 2400;
- smooth the generated data with a 15-sample Hann window (:func:`nwb_lrnn.metrics.hann_smooth`)
  and z-score each channel;
- D_stsp: Gaussian-kernel KL, sigma = 1, 1000 Monte Carlo samples, up to 10 000 time steps;
- D_H: Hellinger distance of power spectra smoothed with sigma = 20.

Each fit is scored against the published array (``EEG_data_smoothed.npy``) and against our own
preprocessing of the EDF (they agree to float32 precision, so the two columns should match).
The table prints per seed, then the medians, the training time per fit and the ratios to the
reference (D_stsp 2.15, D_H 0.105, 3.1 h per 1500-epoch fit).

Training follows the reference's EEG script (mackelab/smc_rnns, train_scripts/eeg): the model
is trained on the z-scored raw EEG (``--train-data zscored``) and evaluated against the smoothed
array; Adam from 1e-3 decayed exponentially to 1e-6, no gradient clipping, a full latent noise
covariance. One epoch takes 0.61 s on one thread of this 2-core machine when nothing else runs
(measured: 1400 epochs in 834-881 s), so the reference's 1500 epochs fit in about 15 minutes;
that is the default (``--epochs 500`` is a shorter check).

D_stsp is printed twice: exact (every Monte Carlo draw counts) and "as published", computed as
the paper's evaluation code does (``dstsp(..., drop_underflow=True)``: densities in float32,
draws whose density underflows to 0 left out). The reference's 2.15 was computed the second
way; on these fits it leaves out 1-3 of the 1000 draws (recorded states far from every
generated point, log ratios of 75-82 each), which lowers the estimate by 0-0.5.

Measured (1500 epochs, two fits at a time on the 2 cores, 1 thread each):

- Adam, lr 1e-3 -> 1e-6 (the default), seeds 0-19 (20 seeds, as many as the reference's
  published fits; the number was fixed before seeds 6-19 ran):
  D_stsp as published 1.886 / 2.272 / 1.941 / 2.234 / 2.256 / 2.124 / 1.944 / 2.244 / 1.850 /
  1.845 / 2.091 / 2.219 / 2.029 / 2.059 / 2.151 / 1.838 / 1.894 / 1.908 / 2.024 / 1.872
  -> median 2.03 (MAD 0.14);
  exact 1.966 / 2.272 / 2.026 / 2.450 / 2.496 / 2.199 / 2.092 / 2.855 / 1.918 / 1.903 / 2.441 /
  2.399 / 2.273 / 2.272 / 2.547 / 2.583 / 1.971 / 1.999 / 2.148 / 2.023 -> median 2.24;
  D_H 0.108 / 0.097 / 0.079 / 0.104 / 0.151 / 0.094 / 0.123 / 0.127 / 0.094 / 0.094 / 0.084 /
  0.107 / 0.078 / 0.085 / 0.129 / 0.084 / 0.091 / 0.079 / 0.105 / 0.097 -> median 0.096;
  986-1350 s per fit (0.66-0.90 s per epoch: two fits share the cores, and the machine's speed
  varied between rounds; seeds 8 and 15 also shared them with a test run).
  The first 6 seeds alone gave 2.18 as published: the spread between seeds is larger than the
  gap to the reference.
- RAdam (``--optimizer radam``), seeds 0 and 3: 1.888 and 2.176 as published (exact 1.969 and
  2.453): the same fits as with Adam to within 0.01 (exact).
- Adam, lr 3e-3 -> 3e-6 (``--lr 3e-3 --lr-final 3e-6``), seeds 0-5: as published 1.903 / 2.292 /
  1.980 / 2.118 / 2.361 / 2.244 -> median 2.18 (exact median 2.31); D_H median 0.102.

Reference (20 fits): D_stsp 2.15 (MAD 0.12, range 1.89-2.60), D_H 0.105. All three targets are
met (D_stsp compared as the reference computed it; the exact estimate's median is 2.24).

Run by hand (not a test)::

    .venv/bin/python benchmarks/bench_eeg_table1.py --quick          # < 1 min smoke run
    .venv/bin/python benchmarks/bench_eeg_table1.py --seeds 1        # one real fit
    .venv/bin/python benchmarks/bench_eeg_table1.py --seeds 5 --epochs 1500
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np
import torch

REF_DSTSP = 2.15
REF_DH = 0.105
REF_HOURS_PER_FIT = 3.1
REF_EPOCHS = 1500
BURN_IN = 2400
EVAL_STEPS = 10000

ROOT = pathlib.Path(__file__).resolve().parents[1]
CANDIDATES = [ROOT / "tests" / "data", ROOT.parent / "shared" / "data" / "eeg"]


def find_file(name: str) -> pathlib.Path:
    for folder in CANDIDATES:
        if (folder / name).exists():
            return folder / name
    sys.exit(f"{name} not found in {[str(c) for c in CANDIDATES]}")


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-12)


def evaluate(est, refs: dict[str, np.ndarray], *, seed: int, n_steps: int,
             n_samples: int) -> dict[str, float]:
    """D_stsp (exact and as published) and D_H of one fit against each reference array."""
    from nwb_lrnn.metrics import dstsp, hann_smooth, hellinger_spectrum

    gen = est.sample(1, n_steps, burn_in=BURN_IN, random_state=seed).values[0]
    if not np.isfinite(gen).all():
        return {f"{k}_{name}": float("nan") for name in refs for k in ("dstsp", "dpub", "dh")}
    gen = zscore(hann_smooth(gen, 15))
    out = {}
    for name, ref in refs.items():
        for key, drop in (("dstsp", False), ("dpub", True)):
            out[f"{key}_{name}"] = dstsp(ref, gen, sigma=1.0, n_samples=n_samples,
                                         max_time=EVAL_STEPS, random_state=seed,
                                         drop_underflow=drop)
        out[f"dh_{name}"] = hellinger_spectrum(ref, gen, smoothing=20.0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="number of fits (seeds 0..n-1)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per fit (default 1500; 3 with --quick)")
    parser.add_argument("--units", type=int, default=None, help="N (default 512; 64 --quick)")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="optimiser steps per epoch (default 50; 10 with --quick)")
    parser.add_argument("--lr", type=float, default=1e-3, help="initial learning rate")
    parser.add_argument("--noise-cov", choices=("full", "diag"), default="full",
                        help="latent noise covariance (the reference: full)")
    parser.add_argument("--grad-clip", type=float, default=None,
                        help="gradient-norm clipping (the reference: none)")
    parser.add_argument("--train-data", choices=("zscored", "smoothed"), default="zscored",
                        help="train on the z-scored raw EEG (as the reference) or on the "
                             "smoothed array the evaluation uses")
    parser.add_argument("--lr-final", type=float, default=1e-6,
                        help="learning rate after the last epoch (exponential decay)")
    parser.add_argument("--optimizer", choices=("adam", "radam"), default="adam",
                        help="the reference trains with RAdam")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true",
                        help="tiny run (2 seeds, 3 epochs, N=64) to check the pipeline")
    parser.add_argument("--json", type=pathlib.Path, default=None,
                        help="also write the per-seed results here (updated after each fit)")
    parser.add_argument("--save-dir", type=pathlib.Path, default=None,
                        help="write each fitted model to DIR/eeg_table1_seed<N>.nwb")
    parser.add_argument("--rescore", action="store_true",
                        help="score the fits saved in --save-dir instead of fitting")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from nwb_lrnn import LowRankRNN
    from nwb_lrnn.io.eeg import preprocess_eeg_paper

    seeds = 2 if args.quick and args.seeds == 5 else args.seeds
    epochs = args.epochs or (3 if args.quick else 1500)
    n_units = args.units or (64 if args.quick else 512)
    steps = args.steps_per_epoch or (10 if args.quick else 50)
    n_samples = 200 if args.quick else 1000
    # the reference generates as many steps as the evaluation data has (at most 10 000)
    n_steps = 2000 if args.quick else min(EVAL_STEPS, len(np.load(
        find_file("EEG_data_smoothed.npy"), mmap_mode="r")))

    edf = find_file("S001R01.edf")
    data = preprocess_eeg_paper(edf, verbose="error")
    if args.train_data == "zscored":
        from nwb_lrnn.io import from_mne, read_eeg

        train = from_mne(read_eeg(edf, verbose="error"), picks="eeg", verbose="error")
    else:
        train = data
    published = np.load(find_file("EEG_data_smoothed.npy")).astype(np.float64)
    ours = data.values[0].astype(np.float64)
    refs = {"paper": published, "ours": ours}
    print(f"data: {edf} -> {data.shape}; max |ours - published| = "
          f"{np.abs(ours - published).max():.2e}")
    print(f"settings: rank 3, N={n_units}, clipped_relu, K=10, optimal proposal, window 50, "
          f"batch 10, {steps} steps/epoch, {epochs} epochs, lr {args.lr:g} -> "
          f"{args.lr_final:g}, {args.optimizer}, noise {args.noise_cov}, grad clip "
          f"{args.grad_clip}, trained on "
          f"the {args.train_data} data, {args.threads} torch thread(s)")
    print(f"evaluation: drop {BURN_IN} steps, {n_steps} generated steps, Hann 15 + z-score, "
          f"D_stsp sigma=1 ({n_samples} MC samples, <= {EVAL_STEPS} steps), D_H sigma=20\n")

    rows = []
    header = (f"{'seed':>4} {'epochs':>6} {'fit s':>8} {'s/epoch':>8} {'bound':>8} "
              f"{'Dstsp pap':>9} {'Dpub pap':>8} {'D_H pap':>8} "
              f"{'Dstsp our':>9} {'Dpub our':>8} {'D_H our':>8}")
    print(header, flush=True)
    for seed in range(args.first_seed, args.first_seed + seeds):
        saved = args.save_dir / f"eeg_table1_seed{seed}.nwb" if args.save_dir else None
        if args.rescore:
            if saved is None or not saved.exists():
                sys.exit(f"--rescore needs the fit of seed {seed} in --save-dir ({saved})")
            from nwb_lrnn import read_fit

            est, fit_s = read_fit(saved), float("nan")
        else:
            est = LowRankRNN(rank=3, n_units=n_units, observation="gaussian",
                             nonlinearity="clipped_relu", n_particles=10, proposal="optimal",
                             max_epochs=epochs, learning_rate=args.lr, lr_final=args.lr_final,
                             batch_size=10, steps_per_epoch=steps, window=50, device="cpu",
                             noise_cov=args.noise_cov, grad_clip=args.grad_clip,
                             optimizer=args.optimizer, random_state=seed, verbose=False)
            t0 = time.perf_counter()
            est.fit(train)
            fit_s = time.perf_counter() - t0
            if saved is not None:
                from nwb_lrnn import write_nwb

                saved.parent.mkdir(parents=True, exist_ok=True)
                write_nwb(est, saved, include=("model",), overwrite=True)
        t1 = time.perf_counter()
        scores = evaluate(est, refs, seed=seed, n_steps=n_steps, n_samples=n_samples)
        eval_s = time.perf_counter() - t1
        n_ep = len(est.history_.train_bound) if est.history_ is not None else epochs
        bound = est.history_.train_bound[-1] if est.history_ is not None else float("nan")
        row = {"seed": seed, "epochs": n_ep, "fit_s": fit_s, "eval_s": eval_s,
               "s_per_epoch": fit_s / max(1, n_ep), "final_bound": bound, **scores}
        rows.append(row)
        print(f"{seed:>4} {row['epochs']:>6} {fit_s:>8.1f} {row['s_per_epoch']:>8.2f} "
              f"{bound:>8.3f} {row['dstsp_paper']:>9.3f} {row['dpub_paper']:>8.3f} "
              f"{row['dh_paper']:>8.4f} {row['dstsp_ours']:>9.3f} {row['dpub_ours']:>8.3f} "
              f"{row['dh_ours']:>8.4f}", flush=True)
        if args.json is not None:
            args.json.write_text(json.dumps(rows, indent=1))

    def med(key: str) -> float:
        return float(np.nanmedian([r[key] for r in rows]))

    def mad(key: str) -> float:
        v = np.array([r[key] for r in rows])
        return float(np.nanmedian(np.abs(v - np.nanmedian(v))))

    print("\nmedian over seeds (MAD):")
    for name in ("paper", "ours"):
        ds, dp, dh = med(f"dstsp_{name}"), med(f"dpub_{name}"), med(f"dh_{name}")
        print(f"  vs {name:<5}: D_stsp {ds:.3f} ({mad(f'dstsp_{name}'):.3f}) | D_stsp as "
              f"published {dp:.3f} ({mad(f'dpub_{name}'):.3f}), ratio to reference "
              f"{dp / REF_DSTSP:.2f} | D_H {dh:.4f} ({mad(f'dh_{name}'):.4f}), "
              f"ratio {dh / REF_DH:.2f}")
    fit_h = med("fit_s") / 3600
    per_epoch = med("s_per_epoch")
    print(f"  training time per fit: {med('fit_s'):.1f} s ({epochs} epochs; "
          f"{per_epoch:.2f} s/epoch, {per_epoch / steps:.4f} s/step); reference "
          f"{REF_HOURS_PER_FIT} h for {REF_EPOCHS} epochs")
    print(f"  ratio of time per fit to the reference: {fit_h / REF_HOURS_PER_FIT:.3f} "
          f"(same number of epochs: "
          f"{per_epoch * REF_EPOCHS / 3600 / REF_HOURS_PER_FIT:.3f})")
    print(f"  reference: D_stsp {REF_DSTSP} (MAD 0.12), D_H {REF_DH} (MAD 0.012)")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
