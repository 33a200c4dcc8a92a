"""A 100-neuron, 1-hour session at 20 ms bins, end to end.

Writes a synthetic NWB file (100 units, 1 h, spikes from a rank-2 latent process so there is
structure to find), then times each stage in one process and prints time and peak memory:

1. ``read_nwb`` at 20 ms bins (180 000 bins × 100 units),
2. the fit (Poisson observation, CNN encoder proposal, random windows of 200 bins),
3. posterior latents of the whole hour (``transform``),
4. generating one hour of surrogate spikes (``sample``),
5. writing the results file (``write_nwb``) and the fixed points.

    python benchmarks/bench_session.py            # 20 epochs
    python benchmarks/bench_session.py --quick    # 10 minutes of data, 2 epochs

Measured (2-core VM, 1 thread, 2.18 M spikes): read_nwb 0.7 s; fit 160 s (20 × 50 steps of
16 windows × 200 bins, K = 32); transform of all 180 000 bins 24 s; sampling one hour 5 s;
fixed points 0.04 s; write_nwb 120 s (it stores latents with the spread of 4 filter runs and
generated data); peak RSS 2.3 GiB (at write_nwb; 0.9 GiB after the fit).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_session(path: Path, n_units: int, duration: float, seed: int = 0) -> int:
    """Units whose rates follow a slow rank-2 oscillation; returns the number of spikes."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject

    rng = np.random.default_rng(seed)
    dt = 0.001
    t = np.arange(0.0, duration, dt)
    phase = 2 * np.pi * 0.5 * t + 0.3 * np.cumsum(rng.normal(size=t.size)) * np.sqrt(dt)
    z = np.stack([np.cos(phase), np.sin(phase)], 1)
    W = rng.normal(size=(2, n_units))
    rates = 5.0 * np.exp(0.6 * z @ W)  # Hz
    nwb = NWBFile(session_description="bench_session synthetic session", identifier="bench",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
                  subject=Subject(subject_id="s1", species="Mus musculus", sex="U",
                                  age="P90D"))
    total = 0
    for i in range(n_units):
        spikes = t[rng.random(t.size) < rates[:, i] * dt]
        total += spikes.size
        nwb.add_unit(spike_times=spikes)
    nwb.units.resolution = dt
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--make", help="internal: write the synthetic session to this path")
    p.add_argument("--duration", type=float, default=3600.0)
    a = p.parse_args()
    if a.make:
        print(make_session(Path(a.make), 100, a.duration))
        return
    import torch

    from nwb_lrnn import LowRankRNN, find_fixed_points, read_nwb, write_nwb

    torch.set_num_threads(a.threads)
    n_units, duration = 100, (600.0 if a.quick else 3600.0)
    epochs = 2 if a.quick else a.epochs
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "session.nwb"
        t0 = time.perf_counter()
        # written by a child process, so that its arrays do not count in this one's peak
        out = subprocess.run([sys.executable, __file__, "--make", str(src), "--duration",
                              str(duration)], capture_output=True, text=True, check=True)
        n_spikes = int(out.stdout.strip().splitlines()[-1])
        print(f"synthetic session: {n_units} units, {duration / 3600:.2f} h, {n_spikes:,} spikes "
              f"({time.perf_counter() - t0:.1f} s to write)")

        def stage(name, fn):
            t = time.perf_counter()
            out = fn()
            rows.append((name, time.perf_counter() - t, _peak_mib()))
            return out

        data = stage("read_nwb (20 ms bins)", lambda: read_nwb(src, bin_size=0.02))
        est = LowRankRNN(rank=2, n_units=64, observation="poisson", proposal="encoder",
                         nonlinearity="clipped_relu",
                         n_particles=32, window=200, batch_size=16, steps_per_epoch=50,
                         max_epochs=epochs, random_state=0, verbose=False)
        stage(f"fit ({epochs} epochs × 50 steps)", lambda: est.fit(data))
        stage("transform (whole session)", lambda: est.transform(data))
        stage("sample (1 session)", lambda: est.sample(1, data.n_time, random_state=1))
        fp = stage("find_fixed_points", lambda: find_fixed_points(est, verbose=False))
        stage("write_nwb", lambda: write_nwb(est, Path(tmp) / "fit.nwb", data=data,
                                             fixed_points=fp))
    print(f"\n{'stage':<32}{'seconds':>10}{'peak RSS MiB':>15}")
    for name, sec, peak in rows:
        print(f"{name:<32}{sec:>10.2f}{peak:>15.0f}")
    print(f"{'total':<32}{sum(r[1] for r in rows):>10.2f}")
    print(f"data: {data.shape} (trials, bins, units); fixed points: {len(fp)}")


if __name__ == "__main__":
    main()
