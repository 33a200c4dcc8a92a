"""Which observation noise can a rank-R latent model of EEG have and still match the data?

Fixes the latents at their best possible values — the held-out part projected on the training
part's top-R principal axes — and adds noise of several kinds fitted to the training residual:
white with each channel's SD (what ``observation='gaussian'`` generates), AR(1) per channel with
independent innovations, AR(1) with innovations correlated across channels (what
``observation='gaussian_ar1'`` generates) and a VAR(1) of the residual; then latents generated
by a VAR(1) and a VAR(5) fitted to the training latents, with the correlated AR(1) noise (what
a model whose latent dynamics are linear could reach). Prints D_stsp and D_H
against the held-out part (mean ± SD over draws), beside a VAR(1) of the data. No model is
fitted: a noise kind that misses with the true latents cannot be rescued by better latent
dynamics.

    .venv/bin/python benchmarks/eeg_noise_oracle.py EDF [--ranks 3 5] [--draws 5]
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="an EEG file MNE reads (z-scored per channel on reading)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--held-out", type=float, default=0.2, help="fraction at the end")
    args = ap.parse_args(argv)

    from nwb_lrnn import metrics
    from nwb_lrnn.baselines import VAR
    from nwb_lrnn.io.sources import read

    x = read(args.source).values[0].astype(float)
    n = round((1 - args.held_out) * len(x))  # as BinnedData.split_time
    tr, te = x[:n], x[n:]
    T, CH = te.shape
    print(f"{args.source}: {x.shape[0]} bins x {CH} channels, the last {T} held out; "
          f"load average {os.getloadavg()[0]:.2f}")

    def score(name, gens):
        d = [metrics.dstsp(te, g, random_state=0) for g in gens]
        h = [metrics.hellinger_spectrum(te, g) for g in gens]
        print(f"  {name:48s} D_stsp {np.mean(d):.3f} ± {np.std(d, ddof=1):.3f}   "
              f"D_H {np.mean(h):.3f} ± {np.std(h, ddof=1):.3f}", flush=True)

    seeds = range(args.draws)
    var1 = VAR(1).fit(tr[None])
    score("VAR(1) of the data", [var1.sample(1, T, burn_in=500, random_state=s)[0]
                                 for s in seeds])
    mu = tr.mean(0)
    _, _, vt = np.linalg.svd(tr - mu, full_matrices=False)
    for R in args.ranks:
        C = vt[:R].T
        resid = (tr - mu) - ((tr - mu) @ C) @ C.T
        latent = ((te - mu) @ C) @ C.T + mu
        a = (resid[1:] * resid[:-1]).sum(0) / (resid[:-1] ** 2).sum(0)
        innov = resid[1:] - a * resid[:-1]

        def ar1(seed, L, a=a):
            rng = np.random.default_rng(seed)
            e, out = np.zeros(CH), np.empty((T + 300, CH))
            for t in range(T + 300):
                e = a * e + L @ rng.standard_normal(CH)
                out[t] = e
            return out[300:]

        print(f"rank {R} (the latents explain {1 - resid.var() / (tr - mu).var():.1%} of the "
              f"training variance):")
        score("latents + white noise (each channel's SD)",
              [latent + resid.std(0) * np.random.default_rng(s).standard_normal((T, CH))
               for s in seeds])
        score("latents + AR(1) noise, independent innovations",
              [latent + ar1(s, np.diag(innov.std(0))) for s in seeds])
        score("latents + AR(1) noise, correlated innovations",
              [latent + ar1(s, np.linalg.cholesky(np.cov(innov.T))) for s in seeds])
        var_noise = VAR(1).fit(resid[None])
        score("latents + VAR(1) noise",
              [latent + var_noise.sample(1, T, burn_in=300, random_state=s)[0] for s in seeds])
        # generated instead of true latents: the best a linear latent model could do
        L_innov = np.linalg.cholesky(np.cov(innov.T))
        z_tr = (tr - mu) @ C
        for p in (1, 5):
            var_z = VAR(p).fit(z_tr[None])
            score(f"VAR({p}) latents + AR(1) noise, correlated",
                  [var_z.sample(1, T, burn_in=500, random_state=100 + s)[0] @ C.T + mu
                   + ar1(s, L_innov) for s in seeds])
            score(f"VAR({p}) latents + VAR(1) noise",
                  [var_z.sample(1, T, burn_in=500, random_state=100 + s)[0] @ C.T + mu
                   + var_noise.sample(1, T, burn_in=300, random_state=s)[0] for s in seeds])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
