"""Streaming and binning benchmark.

1. Streaming: serves a large NWB file (Units + ~40 MB of raw acquisition data) from the local
   DANDI-compatible test server (``tests/dandi_server.py``) and reads its Units with
   ``read_dandi``; prints the bytes transferred and the wall time, against the size of the
   Units datasets (target: < 2x) and against the file size. Also prints the same read from the
   local file, and a second streamed read with a warm block cache.
2. Binning: throughput of ``nwb_lrnn.io.binning.bin_spike_times`` for 1000 units x 1 hour of
   Poisson 5 Hz spikes at 1, 5, 20 and 50 ms bins. The hour is binned in consecutive chunks
   whose output stays under ~300 MB (an hour at 1 ms for 1000 units would be 14 GB of
   float32); the time to slice the spike trains per chunk is included.

Run by hand (not a test), from the repository root::

    .venv/bin/python benchmarks/bench_streaming.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DANDI_NO_ET", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

CHUNK_BYTES = 300 * 2**20


def bench_streaming(quick: bool) -> None:
    from nwb_lrnn.io.dandi import read_dandi
    from nwb_lrnn.io.nwb import read_nwb
    from tests.dandi_server import DandiServer
    from tests.nwb_factory import units_bytes, write_nwbfile

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n_units, duration = (20, 200.0) if quick else (40, 300.0)
        t0 = time.perf_counter()
        big = write_nwbfile(tmp / "big.nwb", n_units=n_units, duration=duration, rate=10.0,
                            seed=3, acquisition_mb=40)
        print(f"wrote test file in {time.perf_counter() - t0:.1f} s")
        size, ub = big.stat().st_size, units_bytes(big)
        asset = "sub-big/sub-big_ses-1_ecephys.nwb"
        with DandiServer() as srv:
            srv.add_dandiset("000200", {asset: big})
            cache = tmp / "cache"
            rows = []
            for label, cache_dir in (("streamed, cold cache", cache),
                                     ("streamed, warm cache", cache)):
                srv.reset_counters()
                t0 = time.perf_counter()
                data = read_dandi("000200", asset=asset, bin_size=0.05,
                                  api_url=srv.api_url, cache_dir=cache_dir)
                dt = time.perf_counter() - t0
                rows.append((label, srv.served(big), dt))
            t0 = time.perf_counter()
            read_nwb(big, bin_size=0.05)
            rows.append(("local file", 0, time.perf_counter() - t0))
    print(f"\nstreaming: file {size / 1e6:.2f} MB, Units datasets {ub / 1e6:.3f} MB, "
          f"{data.n_channels} units, {data.n_time} bins of 50 ms")
    print(f"{'read':<22}{'bytes':>12}{'/ Units':>9}{'/ file':>9}{'time s':>9}")
    for label, nbytes, dt in rows:
        print(f"{label:<22}{nbytes:>12d}{nbytes / ub:>9.2f}{nbytes / size:>9.3%}{dt:>9.3f}")
    ratio = rows[0][1] / ub
    print(f"cold-cache bytes / Units bytes = {ratio:.2f} (target < 2): "
          f"{'OK' if ratio < 2 else 'ABOVE TARGET'}")
    print("(wall times include the DANDI API calls to the local server; the 'local file' "
          "read reads the same Units from disk)")


def bench_binning(quick: bool) -> None:
    from nwb_lrnn.io.binning import bin_spike_times

    n_units, duration, rate = (200, 600.0, 5.0) if quick else (1000, 3600.0, 5.0)
    rng = np.random.default_rng(0)
    spikes = [np.sort(rng.uniform(0.0, duration, rng.poisson(rate * duration)))
              for _ in range(n_units)]
    n_spikes = sum(s.size for s in spikes)
    print(f"\nbinning: {n_units} units x {duration:.0f} s, Poisson {rate:g} Hz "
          f"({n_spikes / 1e6:.1f} M spikes), float32 output in chunks of <= "
          f"{CHUNK_BYTES / 2**20:.0f} MB")
    print(f"{'bin ms':>7}{'n bins':>10}{'chunks':>8}{'wall s':>9}{'Mspikes/s':>11}"
          f"{'Mbins*units/s':>15}")
    for bin_ms in (1, 5, 20, 50):
        bin_size = bin_ms / 1000
        n_bins = round(duration / bin_size)
        chunk = max(1, min(n_bins, CHUNK_BYTES // (4 * n_units)))
        total = 0.0
        t0 = time.perf_counter()
        for b0 in range(0, n_bins, chunk):
            nb = min(chunk, n_bins - b0)
            lo, hi = b0 * bin_size, (b0 + nb) * bin_size
            sub = [s[np.searchsorted(s, lo):np.searchsorted(s, hi)] for s in spikes]
            out = bin_spike_times(sub, bin_size=bin_size, starts=lo, n_bins=nb)
            total += float(out.sum(dtype=np.float64))
            del out
        dt = time.perf_counter() - t0
        n_chunks = -(-n_bins // chunk)
        assert abs(total - n_spikes) <= n_spikes * 1e-6, (total, n_spikes)
        print(f"{bin_ms:>7}{n_bins:>10}{n_chunks:>8}{dt:>9.2f}{n_spikes / dt / 1e6:>11.1f}"
              f"{n_bins * n_units / dt / 1e6:>15.1f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes (20 units streamed, 200 units x 10 min binned)")
    ap.add_argument("--skip-binning", action="store_true")
    ap.add_argument("--skip-streaming", action="store_true")
    args = ap.parse_args(argv)
    if not args.skip_streaming:
        bench_streaming(args.quick)
    if not args.skip_binning:
        bench_binning(args.quick)


if __name__ == "__main__":
    main()
