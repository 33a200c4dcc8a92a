"""The bundled macaque M1 reaching recording (benchmarks/data, counts in 50 ms bins) as NWB.

Writes a Units table (spike times placed uniformly inside their 50 ms bins, seeded; see
benchmarks/data/README.md) with the recording's observation interval, and the hand velocity
and position as SpatialSeries in a ``behavior`` processing module, then reads the file back
with ``nwb_lrnn.read_nwb(bin_size=0.05)`` and checks that the counts are the published ones.

    .venv/bin/python benchmarks/m1_to_nwb.py OUT.nwb [--min-rate 0] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

MAT = Path(__file__).parent / "data" / "m1_stevenson_2011.mat"
BIN = 0.05


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--mat", type=Path, default=MAT)
    ap.add_argument("--min-rate", type=float, default=0.0,
                    help="keep units firing at least this many spikes per second")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import pynwb
    from pynwb.behavior import SpatialSeries
    from pynwb.file import Subject
    from scipy.io import loadmat

    from nwb_lrnn import read_nwb

    m = loadmat(args.mat)
    counts = np.asarray(m["spikes"], dtype=np.int64)  # (units, bins)
    t = np.asarray(m["time"], dtype=np.float64).ravel()
    n_bins = counts.shape[1]
    start = float(t[0])
    edges = start + BIN * np.arange(n_bins + 1)  # the bins the counts were made in
    if np.abs(t - edges[:-1]).max() > 1e-3:
        raise SystemExit(f"{args.mat}: time stamps are not a {BIN} s grid")
    duration = n_bins * BIN
    keep = counts.sum(1) / duration >= args.min_rate
    rng = np.random.default_rng(args.seed)
    nwb = pynwb.NWBFile(
        session_description="Macaque M1 during 2-D reaching (Stevenson et al. 2011), as "
                            "distributed in KordingLab/spykesML: counts in 50 ms bins; spike "
                            "times placed uniformly inside their bins.",
        identifier="m1_stevenson_2011", session_start_time=datetime(2011, 1, 1,
                                                                     tzinfo=timezone.utc),
        experiment_description="Original session start time unknown; set to 2011-01-01.",
        related_publications=["doi:10.1152/jn.00626.2010"])
    nwb.subject = Subject(subject_id="stevenson2011", species="Macaca mulatta",
                          description="as published; no further metadata distributed")
    for n in np.flatnonzero(keep):
        k = counts[n]
        bins = np.repeat(np.arange(n_bins), k)
        times = edges[bins] + rng.uniform(0.0, BIN, bins.size)
        # keep the spike in its bin whatever the float rounding at the right edge
        times = np.minimum(times, np.nextafter(edges[bins + 1], -np.inf))
        nwb.add_unit(spike_times=np.sort(times), obs_intervals=[[start, start + duration]])
    beh = nwb.create_processing_module("behavior", "hand kinematics")
    for name, key, unit in (("hand_vel", "handVel", "m/s"), ("hand_pos", "handPos", "m")):
        beh.add(SpatialSeries(name=name, data=np.asarray(m[key][:2].T, dtype=np.float64),
                              timestamps=t + BIN / 2, reference_frame="as published",
                              unit=unit, description=f"{key} at the bin centres"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with pynwb.NWBHDF5IO(str(args.out), "w") as io:
        io.write(nwb)
    back = read_nwb(args.out, bin_size=BIN)
    got = np.asarray(back.values[0]).T
    if got.shape != counts[keep].shape or not np.array_equal(got, counts[keep]):
        raise SystemExit(f"{args.out}: re-binned counts differ from the published ones "
                         f"({got.shape} vs {counts[keep].shape})")
    print(f"wrote {args.out}: {int(keep.sum())} units, {n_bins} bins of {BIN * 1e3:g} ms, "
          f"{int(counts[keep].sum())} spikes; re-binned counts equal the published ones")
    return 0


if __name__ == "__main__":
    sys.exit(main())
