"""torch.compile of the whole optimiser step against the eager step, one configuration of
bench_step.py at a time (particle filter, backward, Adam, clipping, as bench_step times it).

Prints the eager median, the first compiled call (the compile), the compiled median, the load
average, and how dynamo split the step (graphs and graph breaks):

    .venv/bin/python benchmarks/bench_compile.py [--config eeg] [--reps 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main(argv: list[str] | None = None) -> int:
    from bench_step import CONFIGS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="eeg")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    import torch._dynamo as dynamo
    from bench_step import build_step

    torch.set_num_threads(args.threads)
    step, _ = build_step(args.config)

    def median_ms(fn) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1e3 * float(np.median(times))

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.config}; load {load}")
    print(f"eager:    {median_ms(step):8.2f} ms a step")
    compiled = torch.compile(step)
    t0 = time.perf_counter()
    compiled()
    print(f"compile:  {time.perf_counter() - t0:8.1f} s (the first compiled call)")
    print(f"compiled: {median_ms(compiled):8.2f} ms a step")
    stats = dynamo.utils.counters["stats"]
    breaks = dynamo.utils.counters["graph_break"]
    print(f"dynamo: {stats.get('unique_graphs', 0)} graphs, {sum(breaks.values())} graph breaks "
          f"of {len(breaks)} kinds:")
    for reason, n in breaks.most_common():
        print(f"  {n} x {reason.splitlines()[0][:100]}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
