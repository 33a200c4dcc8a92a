"""Time, peak memory and linear solves of the exact fixed-point search.

Runs :func:`nwb_lrnn.analysis.fixed_points.find_fixed_points` on random networks of the sizes the
reference implementation (mackelab/smc_rnns) was measured on, one torch thread, and prints the
time, the peak resident memory of a fresh process per case, the number of R × R systems solved
against Zaslavsky's bound on the number of regions, and the speed-up over the reference figures.

    python benchmarks/bench_fixed_points.py            # every case
    python benchmarks/bench_fixed_points.py --quick    # the two smallest

Networks: U ~ N(0, 1) (N × R), V ~ N(0, 1) · g / N with g = 2 (R × N), h ~ N(0, 0.5²), a = 0.9 —
the scale the model is initialised at, with several fixed points of each stability.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

REFERENCE = {  # seconds, mackelab/smc_rnns, same machine class, 1 thread
    ("relu", 60, 2): 0.14, ("relu", 512, 2): 35.6, ("relu", 128, 3): 73.0,
    ("relu", 40, 4): 20.0, ("relu", 256, 3): 300.0,  # did not finish in 300 s (10.6 GiB)
}
CASES = [("relu", 60, 2), ("relu", 512, 2), ("relu", 128, 3), ("relu", 256, 3),
         ("relu", 40, 4), ("clipped_relu", 512, 3)]


def one(nl: str, N: int, R: int, seed: int, method: str) -> dict:
    import numpy as np
    import torch

    from nwb_lrnn import LowRankRNN
    from nwb_lrnn.analysis.fixed_points import find_fixed_points

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    est = LowRankRNN.from_parameters(U=rng.normal(size=(N, R)),
                                     V=rng.normal(size=(R, N)) * 2.0 / np.sqrt(N),
                                     h=0.5 * rng.normal(size=N), decay=0.9, nonlinearity=nl)
    t0 = time.perf_counter()
    fp = find_fixed_points(est, method=method, verbose=False)
    sec = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts: dict[str, int] = {}
    for s in fp.stability:
        counts[s] = counts.get(s, 0) + 1
    return {"nl": nl, "N": N, "R": R, "method": fp.method, "seconds": sec, "peak_mib": peak,
            "n_fp": len(fp), "types": counts, "n_solves": fp.stats.get("n_solves"),
            "zaslavsky": fp.stats.get("zaslavsky_bound")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="only the two smallest cases")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="auto")
    p.add_argument("--case", help="internal: run one case 'nl,N,R' and print JSON")
    a = p.parse_args()
    if a.case:
        nl, N, R = a.case.split(",")
        print(json.dumps(one(nl, int(N), int(R), a.seed, a.method)))
        return
    cases = CASES[:1] + CASES[4:5] if a.quick else CASES
    print(f"{'network':<22}{'method':>8}{'time s':>9}{'ref s':>8}{'speed-up':>10}{'peak MiB':>10}"
          f"{'solves':>12}{'Zaslavsky':>14}  fixed points")
    for nl, N, R in cases:
        out = subprocess.run([sys.executable, __file__, "--case", f"{nl},{N},{R}", "--seed",
                              str(a.seed), "--method", a.method], capture_output=True, text=True)
        if out.returncode:
            print(f"{nl} ({N}, {R}) failed:\n{out.stderr}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ref = REFERENCE.get((nl, N, R))
        ratio = f"{ref / r['seconds']:.0f}×" if ref else "—"
        if (nl, N, R) == ("relu", 256, 3):
            ratio = f">{ratio}"
        types = ", ".join(f"{v} {k}" for k, v in sorted(r["types"].items()))
        found = f"{r['n_fp']} ({types})"
        print(f"{nl + f' ({N}, {R})':<22}{r['method']:>8}{r['seconds']:>9.3f}"
              f"{(ref or float('nan')):>8.2f}{ratio:>10}{r['peak_mib']:>10.0f}"
              f"{r['n_solves']:>12}{r['zaslavsky']:>14}  {found}")


if __name__ == "__main__":
    main()
