"""Bytes and time to read an NWB file's Units over HTTP: the package's reader against fsspec
and remfile, on the same file served by the local test server, in the same run.

Serves a ~43 MB NWB file (Units + 40 MB of raw acquisition data) from ``tests/dandi_server.py``
on 127.0.0.1 and reads its Units table through each reader (cold, no disk cache): prints the
bytes the server sent, that figure over the Units datasets' size, the number of requests and
the wall time. The figures decide which reader ``nwb_lrnn.io.remote.open_url`` uses.

    .venv/bin/python benchmarks/bench_remote_readers.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DANDI_NO_ET", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import fsspec
    import remfile

    from nwb_lrnn.io.nwb import read_nwb
    from nwb_lrnn.io.remote import open_url
    from tests.dandi_server import DandiServer
    from tests.nwb_factory import units_bytes, write_nwbfile

    with tempfile.TemporaryDirectory() as tmp:
        big = write_nwbfile(Path(tmp) / "big.nwb", n_units=40, duration=300.0, rate=10.0,
                            seed=3, acquisition_mb=40)
        size, ub = big.stat().st_size, units_bytes(big)
        asset = "sub-big/sub-big_ses-1_ecephys.nwb"
        with DandiServer() as srv:
            srv.add_dandiset("000200", {asset: big})
            a = srv.dandisets["000200"]["assets"][asset]
            url = f"{srv.url}/files/{a.blob}/{Path(asset).name}"
            readers = {
                "nwb_lrnn open_url (64 KiB blocks)": lambda: open_url(url),
                "fsspec http, blockcache 64 KiB": lambda: fsspec.filesystem("http").open(
                    url, block_size=65536, cache_type="blockcache"),
                "fsspec http, readahead 64 KiB": lambda: fsspec.filesystem("http").open(
                    url, block_size=65536, cache_type="readahead"),
                "fsspec http, default (5 MiB)": lambda: fsspec.filesystem("http").open(url),
                "remfile (default chunks)": lambda: remfile.File(url),
            }
            print(f"file {size / 1e6:.1f} MB, Units datasets {ub / 1e6:.3f} MB; load average "
                  f"{os.getloadavg()[0]:.2f}")
            print(f"{'reader':<38}{'bytes':>12}{'/ Units':>9}{'time s':>8}")
            for name, make in readers.items():
                srv.reset_counters()
                t0 = time.perf_counter()
                fh = make()
                try:
                    data = read_nwb(fh, bin_size=0.05)
                finally:
                    fh.close()
                dt = time.perf_counter() - t0
                n = srv.served(big)
                print(f"{name:<38}{n:>12d}{n / ub:>9.2f}{dt:>8.2f}   ({data.n_channels} units)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
