"""The bundled macaque reaching recordings (benchmarks/data, counts in 50 ms bins) as NWB.

Two recordings as KordingLab/spykesML distributes them: ``m1`` (primary motor cortex,
Stevenson et al. 2011, 171 units) and ``s1`` (somatosensory cortex, 52 units, the S1 data
set of Benjamin et al. 2018). Writes a Units table (spike times placed uniformly inside their
50 ms bins, seeded; see benchmarks/data/README.md) with the recording's observation interval,
and the hand velocity and position as SpatialSeries ``hand_vel`` and ``hand_pos`` in a
``behavior`` processing module, then reads the file back with
``nwb_lrnn.read_nwb(bin_size=0.05)`` and checks that the counts are the published ones.

    .venv/bin/python benchmarks/spykes_to_nwb.py OUT.nwb [--dataset m1|s1] [--min-rate 0]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
BIN = 0.05

# name: (file, counts key and layout, velocity key, position key, NWB metadata)
DATASETS = {
    "m1": dict(
        file="m1_stevenson_2011.mat", units_first=True, vel="handVel", pos="handPos",
        description="Macaque M1 during 2-D reaching (Stevenson et al. 2011), as distributed in "
                    "KordingLab/spykesML: counts in 50 ms bins; spike times placed uniformly "
                    "inside their bins.",
        identifier="m1_stevenson_2011", year=2011, subject="stevenson2011",
        publications=["doi:10.1152/jn.00626.2010"]),
    "s1": dict(
        file="s1_data.mat", units_first=False, vel="vel", pos="pos",
        description="Macaque somatosensory cortex during 2-D reaching, the S1 data set of "
                    "Benjamin et al. 2018 as distributed in KordingLab/spykesML: counts in "
                    "50 ms bins (the bin size is not stated there: the distributed velocity "
                    "is the central difference of the position over 0.049-0.050 s); spike "
                    "times placed uniformly inside their bins.",
        identifier="s1_benjamin_2018", year=2018, subject="benjamin2018_s1",
        publications=["doi:10.3389/fncom.2018.00056"]),
}


def load(dataset: str, mat: Path | None = None):
    """(counts (units, bins) int64, bin start times (bins,), velocity (bins, 2),
    position (bins, 2)) of a bundled recording."""
    from scipy.io import loadmat

    spec = DATASETS[dataset]
    m = loadmat(mat or DATA / spec["file"])
    counts = np.asarray(m["spikes"])
    if not spec["units_first"]:
        counts = counts.T
    if not np.array_equal(counts, np.round(counts)) or counts.min() < 0:
        raise SystemExit(f"{dataset}: 'spikes' are not non-negative integer counts")
    counts = counts.astype(np.int64)
    n_bins = counts.shape[1]
    if "time" in m:
        t = np.asarray(m["time"], dtype=np.float64).ravel()
        if np.abs(t - (t[0] + BIN * np.arange(n_bins))).max() > 1e-3:
            raise SystemExit(f"{dataset}: time stamps are not a {BIN} s grid")
    else:
        t = BIN * np.arange(n_bins)

    def kin(key):
        a = np.asarray(m[key], dtype=np.float64)
        a = a if a.shape[0] == n_bins else a.T
        return a[:, :2]  # M1's third row is zero

    return counts, t, kin(spec["vel"]), kin(spec["pos"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="m1")
    ap.add_argument("--mat", type=Path, default=None, help="the .mat file (default: bundled)")
    ap.add_argument("--min-rate", type=float, default=0.0,
                    help="keep units firing at least this many spikes per second")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import pynwb
    from pynwb.behavior import SpatialSeries
    from pynwb.file import Subject

    from nwb_lrnn import read_nwb

    spec = DATASETS[args.dataset]
    counts, t, vel, pos = load(args.dataset, args.mat)
    n_bins = counts.shape[1]
    start = float(t[0])
    edges = start + BIN * np.arange(n_bins + 1)  # the bins the counts were made in
    duration = n_bins * BIN
    keep = counts.sum(1) / duration >= args.min_rate
    rng = np.random.default_rng(args.seed)
    nwb = pynwb.NWBFile(
        session_description=spec["description"], identifier=spec["identifier"],
        session_start_time=datetime(spec["year"], 1, 1, tzinfo=timezone.utc),
        experiment_description=f"Original session start time unknown; set to "
                               f"{spec['year']}-01-01.",
        related_publications=spec["publications"])
    nwb.subject = Subject(subject_id=spec["subject"], species="Macaca mulatta",
                          description="as published; no further metadata distributed")
    for n in np.flatnonzero(keep):
        k = counts[n]
        bins = np.repeat(np.arange(n_bins), k)
        times = edges[bins] + rng.uniform(0.0, BIN, bins.size)
        # keep the spike in its bin whatever the float rounding at the right edge
        times = np.minimum(times, np.nextafter(edges[bins + 1], -np.inf))
        nwb.add_unit(spike_times=np.sort(times), obs_intervals=[[start, start + duration]])
    beh = nwb.create_processing_module("behavior", "hand kinematics")
    for name, values, key, unit in (("hand_vel", vel, spec["vel"], "as published"),
                                    ("hand_pos", pos, spec["pos"], "as published")):
        beh.add(SpatialSeries(name=name, data=values, timestamps=t + BIN / 2,
                              reference_frame="as published", unit=unit,
                              description=f"{key} at the bin centres"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with pynwb.NWBHDF5IO(str(args.out), "w") as io:
        io.write(nwb)
    back = read_nwb(args.out, bin_size=BIN)
    got = np.asarray(back.values[0]).T
    if got.shape != counts[keep].shape or not np.array_equal(got, counts[keep]):
        raise SystemExit(f"{args.out}: re-binned counts differ from the published ones "
                         f"({got.shape} vs {counts[keep].shape})")
    print(f"wrote {args.out}: {args.dataset}, {int(keep.sum())} units, {n_bins} bins of "
          f"{BIN * 1e3:g} ms, {int(counts[keep].sum())} spikes; re-binned counts equal the "
          f"published ones")
    return 0


if __name__ == "__main__":
    sys.exit(main())
