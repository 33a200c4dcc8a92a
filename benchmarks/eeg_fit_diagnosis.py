"""Which half of a fitted EEG model misses the held-out data: its latents or its noise?

Reads a fit written by ``bench_real.py --save DIR`` (DIR/rank<R>.nwb) and the recording it was
fitted to, takes the same held-out part, and swaps the halves of generated data:

- the fit's generated data (latents and noise), per draw, with the generated latents' mean
  and variance beside the posterior latents' of the training and held-out parts;
- the posterior latents of the held-out part plus the fit's generated noise (the noise alone
  judged);
- the fit's generated latents plus the held-out part's posterior residual (the latents
  alone judged);
- for a model with AR or VAR noise, how far the noise's stationary covariance Σ_e lies from the
  covariance of the training part's posterior residual (eigenvalues of Γ^-1/2 Σ_e Γ^-1/2; 1
  where they agree);
- the fit with its noise's A and Σ_η replaced by a least-squares VAR(1) of the training part's
  posterior residual (validation bound and generated data before and after);
- two stretches of the recording itself scored as if generated (what D_stsp gives data of the
  same subject).

Prints D_stsp and D_H against the held-out part. No fitting; about a minute.

    .venv/bin/python benchmarks/eeg_fit_diagnosis.py DIR/rank3.nwb EDF [--draws 5]
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fit", help="a fit file written by bench_real.py --save")
    ap.add_argument("source", help="the EEG file it was fitted to")
    ap.add_argument("--draws", type=int, default=5)
    args = ap.parse_args(argv)

    import nwb_lrnn
    from nwb_lrnn import metrics
    from nwb_lrnn.cli import load_source

    est = nwb_lrnn.read_fit(args.fit)
    data = load_source(argparse.Namespace(source=args.source, bin_size=None, asset=None,
                                          eeg_preprocessing="zscore"))
    train, test = est.split(data)
    tr, te = train.values[0].astype(float), test.values[0].astype(float)
    obs = est.model_.observation
    C, d = obs.C.detach().double().numpy(), obs.d.detach().double().numpy()
    print(f"{args.fit}: observation {est.observation}, rank {est.rank}; held-out {len(te)} "
          f"bins; load average {os.getloadavg()[0]:.2f}")

    def score(x):
        return metrics.dstsp(te, x, random_state=0), metrics.hellinger_spectrum(te, x)

    z_tr = np.asarray(est.transform(train, random_state=0))[0]
    z_te = np.asarray(est.transform(test, random_state=0))[0]
    res_tr, res_te = tr - z_tr @ C.T - d, te - z_te @ C.T - d
    print(f"variance summed over channels: training {tr.var(0).sum():.1f}, held-out "
          f"{te.var(0).sum():.1f}; posterior residual {res_tr.var(0).sum():.1f} / "
          f"{res_te.var(0).sum():.1f}")
    print(f"posterior latents' variance: training {np.round(z_tr.var(0), 3)}, held-out "
          f"{np.round(z_te.var(0), 3)}")
    rows = {"generated": [], "posterior latents + generated noise": [],
            "generated latents + posterior residual": []}
    for s in range(args.draws):
        gen, zg = est.sample(1, len(te), burn_in=500, random_state=s, return_latents=True)
        g, zg = gen.values[0].astype(float), np.asarray(zg)[0]
        noise = g - zg @ C.T - d
        rows["generated"].append(score(g))
        rows["posterior latents + generated noise"].append(score(z_te @ C.T + d + noise))
        rows["generated latents + posterior residual"].append(score(zg @ C.T + d + res_te))
        print(f"  draw {s}: D_stsp {rows['generated'][-1][0]:.3f}  D_H "
              f"{rows['generated'][-1][1]:.3f}; generated latents' mean {np.round(zg.mean(0), 2)}"
              f", variance {np.round(zg.var(0), 3)}; noise variance {noise.var(0).sum():.1f}")
    for name, vals in rows.items():
        v = np.asarray(vals)
        print(f"{name:42s} D_stsp {v[:, 0].mean():.3f} ± {v[:, 0].std(ddof=1):.3f}   "
              f"D_H {v[:, 1].mean():.3f} ± {v[:, 1].std(ddof=1):.3f}")
    if getattr(obs, "noise_memory", False):
        Se = obs.stationary_cov().detach().double().numpy()
        G = np.cov(res_tr.T)
        Li = np.linalg.inv(np.linalg.cholesky(G))
        w = np.linalg.eigvalsh(Li @ Se @ Li.T)
        print(f"noise's stationary covariance against the training residual's: eigenvalues "
              f"{w.min():.2f} (min) {np.median(w):.2f} (median) {w.max():.2f} (max)")
    if getattr(obs, "noise_memory", False) and hasattr(obs, "_set_noise"):
        noise_refit(est, obs, train, test, res_tr, z_te, C, d, score, args.draws)
    n = len(te)
    for name, seg in (("the recording's first stretch", tr[:n]),
                      ("the stretch just before the held-out part", tr[-n:])):
        dv, hv = score(seg)
        print(f"{name:42s} D_stsp {dv:.3f}           D_H {hv:.3f}")
    return 0


def noise_refit(est, obs, train, test, res_tr, z_te, C, d, score, draws):
    """The fit with its VAR(1) noise (A, Σ_η) replaced by the least-squares VAR(1) of the
    training part's posterior residual (the latents held fixed): validation bound and
    generated data before and after."""
    import torch

    from nwb_lrnn.baselines import VAR

    noise = VAR(1).fit(res_tr[None])
    A = noise.coef_[:-1].T
    Sig = noise.cov_
    before = est.score(test, random_state=0)
    held = {k: v.detach().clone() for k, v in obs.state_dict().items()}
    obs._set_noise(torch.as_tensor(A), torch.as_tensor(Sig))
    after = est.score(test, random_state=0)
    print(f"noise refitted to the training residual (least-squares VAR(1)): validation bound "
          f"{before:.3f} -> {after:.3f} per bin; training {est.score(train, random_state=0):.3f}")
    rows = {"refitted noise: generated": [], "posterior latents + refitted noise": []}
    for s in range(draws):
        gen, zg = est.sample(1, len(z_te), burn_in=500, random_state=s, return_latents=True)
        g, zg = gen.values[0].astype(float), np.asarray(zg)[0]
        rows["refitted noise: generated"].append(score(g))
        noise = g - zg @ C.T - d
        rows["posterior latents + refitted noise"].append(score(z_te @ C.T + d + noise))
    for name, vals in rows.items():
        v = np.asarray(vals)
        print(f"{name:42s} D_stsp {v[:, 0].mean():.3f} ± {v[:, 0].std(ddof=1):.3f}   "
              f"D_H {v[:, 1].mean():.3f} ± {v[:, 1].std(ddof=1):.3f}")
    obs.load_state_dict(held)


if __name__ == "__main__":
    raise SystemExit(main())
