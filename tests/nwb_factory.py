"""Small NWB files written with pynwb for the reader tests."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def make_nwbfile(*, n_units=4, duration=20.0, rate=8.0, seed=0, with_trials=True,
                 with_obs_intervals=True, with_electrodes=True, with_units=True,
                 empty_unit=False, acquisition_mb=0.0):
    """An in-memory NWBFile with Units (+ trials, obs_intervals, electrodes)."""
    from pynwb import NWBFile, TimeSeries
    from pynwb.file import Subject

    rng = np.random.default_rng(seed)
    nwb = NWBFile(session_description="nwb_lrnn reader test", identifier=f"test-{seed}",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
                  subject=Subject(subject_id="m1", species="Mus musculus", sex="M",
                                  age="P90D"))
    if with_electrodes:
        device = nwb.create_device(name="probe")
        group = nwb.create_electrode_group(name="shank0", description="shank",
                                           location="CA1", device=device)
        for i in range(n_units):
            nwb.add_electrode(x=float(i), y=2.0 * i, z=-1.0, location="CA1", group=group)
    if with_units:
        nwb.add_unit_column(name="quality", description="sorting quality")
        for i in range(n_units):
            n = 0 if (empty_unit and i == n_units - 1) else rng.poisson(rate * duration)
            times = np.sort(rng.uniform(0, duration, n))
            kw = {}
            if with_obs_intervals:
                kw["obs_intervals"] = ([[0.0, duration]] if i != 1
                                       else [[0.0, duration / 2], [duration * 0.75, duration]])
            if with_electrodes:
                kw["electrodes"] = [i]
            nwb.add_unit(spike_times=times, quality="good" if i % 2 == 0 else "mua", **kw)
    if with_trials:
        nwb.add_trial_column(name="cue_time", description="cue onset")
        nwb.add_trial_column(name="condition", description="condition label")
        for k in range(8):
            start = 1.0 + 2.2 * k
            nwb.add_trial(start_time=start, stop_time=start + 2.0, cue_time=start + 0.5,
                          condition="left" if k % 2 else "right")
    if acquisition_mb:
        n = int(acquisition_mb * 2**20 / 4 / 8)
        data = rng.standard_normal((n, 8)).astype(np.float32)
        nwb.add_acquisition(TimeSeries(name="raw", data=data, unit="V", rate=30000.0,
                                       description="large raw data"))
    return nwb


def write_nwbfile(path: Path, **kwargs) -> Path:
    from pynwb import NWBHDF5IO

    nwb = make_nwbfile(**kwargs)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return Path(path)


def spikes_in(path, unit_row: int, t0: float, t1: float) -> int:
    """Number of spikes of a unit (row) in [t0, t1), read with h5py directly."""
    import h5py

    with h5py.File(path, "r") as f:
        idx = f["units/spike_times_index"][:]
        st = f["units/spike_times"][:]
    start = 0 if unit_row == 0 else idx[unit_row - 1]
    s = st[start:idx[unit_row]]
    return int(np.count_nonzero((s >= t0) & (s < t1)))


def units_bytes(path) -> int:
    """Bytes the datasets of the file's Units table take on disk (the least a reader of the
    spike times has to fetch)."""
    import h5py

    total = 0
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            nonlocal total
            if isinstance(obj, h5py.Dataset):
                total += obj.id.get_storage_size()
        f["units"].visititems(visit)
    return total


#: CLI fit options for a fit of a few seconds (tests of the command's plumbing, not of fits)
TINY_FIT_ARGS = ["--bin-size", "0.1", "--units", "6", "--rank", "2", "--window", "20",
                 "--steps-per-epoch", "1", "--particles", "4", "--quiet"]
SESSION_PATHS = ("sub-a/sub-a_ses-1_ecephys.nwb", "sub-b/sub-b_ses-1_ecephys.nwb")


def add_two_sessions(server, folder: Path, identifier: str) -> tuple[Path, Path]:
    """Two sessions whose neurons differ (3 and 5 units) as dandiset ``identifier`` of a
    :class:`~tests.dandi_server.DandiServer`; returns their local files."""
    s1 = write_nwbfile(Path(folder) / "s1.nwb", n_units=3, seed=1)
    s2 = write_nwbfile(Path(folder) / "s2.nwb", n_units=5, seed=2)
    server.add_dandiset(identifier, dict(zip(SESSION_PATHS, (s1, s2), strict=True)))
    return s1, s2
