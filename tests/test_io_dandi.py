"""read_dandi / open_url against a local DANDI-compatible server serving real NWB files."""

from __future__ import annotations

import os

os.environ["DANDI_NO_ET"] = "1"

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dandi")
pytest.importorskip("pynwb")

from nwb_lrnn.io.dandi import parse_dandiset, read_dandi
from nwb_lrnn.io.nwb import read_nwb
from nwb_lrnn.io.remote import RemoteReadError, download, open_url

from .dandi_server import DandiServer, make_dandi_folder
from .nwb_factory import spikes_in, units_bytes, write_nwbfile

PYNAPPLE = Path(__file__).parent / "data" / "A8604-211122.nwb"
VERSION = "0.220113.0408"
PYN_ASSET = "sub-A8604/sub-A8604_ses-211122.nwb"
BIG_ASSET = "sub-big/sub-big_ses-1_ecephys.nwb"
S1, S2 = "sub-m1/sub-m1_ses-1_ecephys.nwb", "sub-m1/sub-m1_ses-2_ecephys.nwb"
WINDOW = (0.0, 60.0)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("nwb")
    big = write_nwbfile(d / "big.nwb", n_units=40, duration=300.0, rate=10.0, seed=3,
                        acquisition_mb=40)
    s1 = write_nwbfile(d / "s1.nwb", seed=1)
    s2 = write_nwbfile(d / "s2.nwb", seed=2)
    return {"big": big, "s1": s1, "s2": s2}


def _serve(files, srv: DandiServer) -> DandiServer:
    srv.add_dandiset("000128", {PYN_ASSET: PYNAPPLE}, version=VERSION)
    srv.add_dandiset("000200", {BIG_ASSET: files["big"], S1: files["s1"], S2: files["s2"]})
    srv.add_dandiset("000300", {"../evil.nwb": files["s1"]}, version=None)
    return srv


@pytest.fixture(scope="module")
def server(files):
    with _serve(files, DandiServer()) as srv:
        yield srv


@pytest.fixture
def fresh(files):
    """A server of its own, for fault injection."""
    with _serve(files, DandiServer()) as srv:
        yield srv


# ------------------------------------------------------------------ identifiers
@pytest.mark.parametrize("ref, version", [
    ("000128", VERSION), ("DANDI:000128", VERSION), (f"DANDI:000128/{VERSION}", VERSION),
    ("https://dandiarchive.org/dandiset/000128", VERSION),
    (f"https://dandiarchive.org/dandiset/000128/{VERSION}", VERSION),
    ("DANDI:000128/draft", "draft"),
])
def test_id_forms(server, tmp_path, ref, version):
    data = read_dandi(ref, bin_size=0.05, time_range=WINDOW, api_url=server.api_url,
                      cache_dir=tmp_path)
    assert data.shape[:2] == (1, 1200)
    p = data.provenance
    assert (p["dandiset"], p["version"], p["asset_path"]) == ("000128", version, PYN_ASSET)
    assert p["asset_id"] and p["api_url"] == server.api_url
    assert len(p["digest"]["dandi:sha2-256"]) == 64


def test_parse_dandiset_errors():
    assert parse_dandiset("dandi:000128/") == ("000128", None)
    with pytest.raises(ValueError, match="not a dandiset reference"):
        parse_dandiset("12")


def test_counts_match_local_file(server, tmp_path):
    data = read_dandi("DANDI:000128", bin_size=0.05, time_range=WINDOW,
                      api_url=server.api_url, cache_dir=tmp_path)
    local = read_nwb(PYNAPPLE, bin_size=0.05, time_range=WINDOW)
    np.testing.assert_array_equal(data.values, local.values)
    np.testing.assert_array_equal(data.channel_ids, local.channel_ids)
    counts = data.values.sum(axis=(0, 1))
    for row in range(data.n_channels):
        assert counts[row] == spikes_in(PYNAPPLE, row, *WINDOW)
    assert counts.sum() > 0


# ------------------------------------------------------------------ bytes read
def test_large_file_units_read_few_bytes(server, files, tmp_path):
    big = files["big"]
    size, ub = big.stat().st_size, units_bytes(big)
    server.reset_counters()
    data = read_dandi("000200", asset=BIG_ASSET, bin_size=0.1, api_url=server.api_url,
                      cache_dir=tmp_path)
    served = server.served(big)
    assert data.n_channels == 40
    assert size > 40e6
    print(f"\nbig file: {size} B, units datasets {ub} B, served {served} B")
    assert served < 0.05 * size, (served, size)
    assert served < 2 * ub, (served, ub)
    # the same counter on the client side
    with open_url(data.provenance["content_url"]) as f:
        import h5py

        with h5py.File(f, "r") as h5:
            n = h5["units/spike_times"].shape[0]
            h5["units/spike_times"][:]
        assert n > 0 and 0 < f.bytes_read < 2 * ub


def test_cache_reuse(server, files, tmp_path):
    read_dandi("000200", asset=S1, bin_size=0.1, api_url=server.api_url, cache_dir=tmp_path)
    server.reset_counters()
    again = read_dandi("000200", asset=S1, bin_size=0.1, api_url=server.api_url,
                       cache_dir=tmp_path)
    assert again.n_channels == 4
    assert server.served(files["s1"]) <= 64 * 1024  # the preflight only


# ------------------------------------------------------------------ selection
def test_glob_two_assets_and_merge(server, tmp_path):
    kw = dict(bin_size=0.1, api_url=server.api_url, cache_dir=tmp_path)
    out = read_dandi("000200", asset="sub-m1/*.nwb", **kw)
    assert isinstance(out, list) and len(out) == 2
    assert [d.provenance["asset_path"] for d in out] == [S1, S2]
    merged = read_dandi("000200", asset="sub-m1/*.nwb", merge=True, align_to="start_time",
                        **kw)
    assert merged.n_trials == 10 and merged.n_channels == 4  # 3 of 8 trials unobserved
    assert list(merged.trials["session"][[0, -1]]) == [S1, S2]
    with pytest.raises(ValueError, match="same number of units"):
        read_dandi("000200", merge=True, **kw)


def test_unknown_asset_lists_close_match(server, tmp_path):
    with pytest.raises(ValueError, match="sub-m1_ses-1_ecephys.nwb"):
        read_dandi("000200", asset="sub-m1/sub-m1_ses-1_ecephy.nwb", bin_size=0.1,
                   api_url=server.api_url, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="Close matches"):
        read_dandi("000200", asset="sub-zz/*.nwb", bin_size=0.1, api_url=server.api_url,
                   cache_dir=tmp_path)


def test_unknown_dandiset(server, tmp_path):
    with pytest.raises(ValueError, match="999999"):
        read_dandi("999999", bin_size=0.1, api_url=server.api_url, cache_dir=tmp_path)


def test_path_traversal_rejected(server, tmp_path):
    with pytest.raises(ValueError, match="unsafe asset path"):
        read_dandi("000200", asset="../evil.nwb", bin_size=0.1, api_url=server.api_url,
                   cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unsafe asset path"):
        read_dandi("000300", bin_size=0.1, api_url=server.api_url, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_local_dandi_download_folder(files, tmp_path):
    folder = make_dandi_folder(tmp_path, "000200", {S1: files["s1"], S2: files["s2"]})
    one = read_dandi(str(folder), asset=S1, bin_size=0.1)
    assert one.provenance["dandiset"] == "000200" and one.provenance["asset_path"] == S1
    np.testing.assert_array_equal(one.values, read_nwb(files["s1"], bin_size=0.1).values)
    both = read_dandi(folder, asset="sub-*/*.nwb", bin_size=0.1)
    assert len(both) == 2
    with pytest.raises(ValueError, match="Close matches"):
        read_dandi(folder, asset="sub-m1/nope.nwb", bin_size=0.1)


# ------------------------------------------------------------------ faults
def test_no_range_support(fresh, files, tmp_path):
    fresh.no_range = True
    with pytest.raises(RemoteReadError, match="range requests"):
        read_dandi("000128", bin_size=0.05, time_range=WINDOW, api_url=fresh.api_url,
                   cache_dir=tmp_path)
    # the client hangs up instead of reading the whole body (a small file can still sit
    # whole in the socket buffers, so the check uses the 40 MB one)
    with pytest.raises(RemoteReadError, match="range requests"):
        read_dandi("000200", asset=BIG_ASSET, bin_size=0.05, time_range=WINDOW,
                   api_url=fresh.api_url, cache_dir=tmp_path)
    assert fresh.served(files["big"]) < files["big"].stat().st_size / 2
    # the way out the message names: download whole, into the cache folder
    data = read_dandi("000128", bin_size=0.05, time_range=WINDOW, api_url=fresh.api_url,
                      cache_dir=tmp_path, download=True)
    assert (tmp_path / "dandi" / "000128" / VERSION / PYN_ASSET).is_file()
    np.testing.assert_array_equal(
        data.values, read_nwb(PYNAPPLE, bin_size=0.05, time_range=WINDOW).values)


def test_retries_after_503(fresh, tmp_path):
    fresh.fail_next = 2
    data = read_dandi("000128", bin_size=0.05, time_range=WINDOW, api_url=fresh.api_url,
                      cache_dir=tmp_path)
    assert fresh.fail_next == 0 and data.n_channels > 0
    fresh.fail_next = 10
    url = f"{fresh.url}/files/{next(iter(fresh.dandisets['000128']['assets'].values())).blob}/x"
    with pytest.raises(RemoteReadError, match=r"failed after 2 attempt.*503"):
        open_url(url, retries=1)


def test_unreachable_server(files, tmp_path):
    srv = _serve(files, DandiServer()).start()
    api_url = srv.api_url
    srv.stop()
    t0 = time.monotonic()
    with pytest.raises(RemoteReadError, match="cannot reach"):
        read_dandi("000128", bin_size=0.05, api_url=api_url, cache_dir=tmp_path)
    with pytest.raises(RemoteReadError, match=r"127\.0\.0\.1"):
        open_url(api_url.replace("/api", "/files/x/y.nwb"), cache_dir=tmp_path)
    assert time.monotonic() - t0 < 20
    with pytest.raises(ValueError, match="http"):
        open_url("ftp://example.org/x.nwb")


def test_dropped_connection_leaves_no_partial_block(fresh, files, tmp_path):
    fresh.drop_after = 300_000
    with pytest.raises(RemoteReadError, match="connection dropped|failed after") as info:
        read_dandi("000200", asset=BIG_ASSET, bin_size=0.1, api_url=fresh.api_url,
                   cache_dir=tmp_path)
    assert "127.0.0.1" in str(info.value) or "sub-big" in str(info.value)
    blocks = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".blk" for p in blocks)
    for p in blocks:
        assert p.suffix in (".blk", ".json"), p
        if p.suffix == ".blk":
            assert p.stat().st_size == 64 * 1024, p
    # once the connection is healthy the cache is completed and the read succeeds
    fresh.drop_after = None
    data = read_dandi("000200", asset=BIG_ASSET, bin_size=0.1, api_url=fresh.api_url,
                      cache_dir=tmp_path)
    assert data.n_channels == 40


def test_download_atomic(fresh, tmp_path):
    a = fresh.dandisets["000128"]["assets"][PYN_ASSET]
    url = f"{fresh.url}/files/{a.blob}/x.nwb"
    out = download(url, tmp_path / "d" / "f.nwb")
    assert out.read_bytes() == PYNAPPLE.read_bytes()
    fresh.drop_after = 1000
    with pytest.raises(RemoteReadError, match="downloading"):
        download(url, tmp_path / "g.nwb", retries=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_open_url_bytes_exact_and_concurrent_cache(server, files, tmp_path):
    import threading

    a = server.dandisets["000200"]["assets"][S1]
    url = f"{server.url}/files/{a.blob}/x.nwb"
    want = files["s1"].read_bytes()
    rng = np.random.default_rng(0)
    with open_url(url, block_size=4096) as f:
        assert f.size == len(want) and f.seekable() and f.readable()
        for _ in range(50):
            pos, n = int(rng.integers(0, len(want))), int(rng.integers(0, 20000))
            f.seek(pos)
            assert f.read(n) == want[pos:pos + n] and f.tell() == min(pos + n, len(want))
        f.seek(-10, os.SEEK_END)
        assert f.read() == want[-10:]
        buf = bytearray(100)
        f.seek(5)
        assert f.readinto(buf) == 100 and bytes(buf) == want[5:105]
    assert f.closed
    out = []

    def reader():
        with open_url(url, cache_dir=tmp_path, block_size=4096) as g:
            out.append(g.read())

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [want] * 4
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]


# ------------------------------------------------------------------ sweeps over a dandiset
def test_a_dandiset_sweep_resolves_its_assets_once_whatever_the_seeds(server, tmp_path):
    """Each session of the dandiset is a sweep source; the API is asked on the driver only."""
    from nwb_lrnn.sweep import sweep

    counts = {}
    for seeds in ([0], [0, 1, 2]):
        server.reset_counters()
        res = sweep({"dandiset": "DANDI:000200", "asset": "sub-m1/*.nwb"},
                    search_space={"random_state": seeds},
                    fixed_params={"rank": 1, "n_units": 4, "n_particles": 4, "max_epochs": 1},
                    read_kwargs={"bin_size": 0.1, "api_url": server.api_url,
                                 "cache_dir": str(tmp_path / f"c{len(seeds)}")},
                    out_dir=tmp_path / f"s{len(seeds)}", backend="serial")
        t = res.table
        assert sorted(set(t["session"])) == [S1, S2] and len(t) == 2 * len(seeds)
        assert (t["status"] == "ok").all(), t["error"].tolist()
        api = [p for _, p, _ in server.requests
               if p.startswith("/api") and p != "/api/info/"]  # the client checks once
        # metadata on the driver; one download redirect per session read (serial: once)
        counts[len(seeds)] = sum(not p.endswith("/download/") for p in api)
        assert sum(p.endswith("/download/") for p in api) == 2
        assert len(res.best_by_session) == 2
        with pytest.raises(ValueError, match="not comparable"):
            res.best  # noqa: B018
    assert counts[1] == counts[3] > 0, counts
