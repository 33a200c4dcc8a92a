"""DANDI servers that are slow, strict or hostile, driven through the real `dandi` client and
the package's reader: signed expiring URLs on a second host, embargoed dandisets, 429 with
Retry-After, redirects out of http(s), slow-loris bodies, endless bodies, lying ranges and
tampered bytes. Every server listens on 127.0.0.1; every loop is bounded."""

from __future__ import annotations

import os

os.environ["DANDI_NO_ET"] = "1"

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dandi")

from nwb_lrnn.io.dandi import read_dandi
from nwb_lrnn.io.nwb import read_nwb
from nwb_lrnn.io.remote import RemoteReadError, download, open_url

from .dandi_server import DandiServer
from .nwb_factory import write_nwbfile

ASSET = "sub-m1/sub-m1_ses-1_ecephys.nwb"


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    return write_nwbfile(tmp_path_factory.mktemp("nwb") / "s1.nwb", seed=1, duration=60.0)


@pytest.fixture
def srv(rec):
    with DandiServer(signed=True) as s:
        s.add_dandiset("000200", {ASSET: rec})
        s.add_dandiset("000201", {ASSET: rec}, embargoed=True)
        yield s


def _asset(srv, d="000200"):
    return srv.dandisets[d]["assets"][ASSET]


def _download_url(srv, d="000200"):
    return f"{srv.api_url}/assets/{_asset(srv, d).id}/download/"


def test_cross_host_signed_redirect_is_followed_and_counts_match(srv, rec, tmp_path):
    data = read_dandi("000200", asset=ASSET, bin_size=0.1, api_url=srv.api_url,
                      cache_dir=tmp_path)
    np.testing.assert_array_equal(data.values, read_nwb(rec, bin_size=0.1).values)
    ports = {p for p, _, _ in srv.headers_seen}
    assert len(ports) == 2  # the API host and the storage host
    assert data.provenance["content_url"] == _download_url(srv)
    assert data.provenance["digest_verified"] is False  # streamed: not claimed as checked


def test_an_expired_signed_url_is_renewed(srv, rec):
    srv.url_lifetime = 1.0
    with open_url(_download_url(srv), block_size=4096) as f:
        f.read(4096)
        time.sleep(2.2)  # the signed URL the preflight was sent to has expired
        f.seek(f.size - 4096)
        tail = f.read(4096)
    assert tail == rec.read_bytes()[-4096:]
    statuses = [path for port, path, _ in srv.headers_seen if "download" in path]
    assert len(statuses) >= 2  # the download URL was asked again for a fresh signature


def test_embargoed_dandiset_needs_the_token_and_it_stays_on_the_api_host(srv, tmp_path,
                                                                          monkeypatch):
    monkeypatch.delenv("DANDI_API_KEY", raising=False)
    with pytest.raises((RemoteReadError, ValueError), match="DANDI_API_KEY"):
        read_dandi("000201", asset=ASSET, bin_size=0.1, api_url=srv.api_url,
                   cache_dir=tmp_path)
    monkeypatch.setenv("DANDI_API_KEY", srv.token)
    srv.headers_seen.clear()
    data = read_dandi("000201", asset=ASSET, bin_size=0.1, api_url=srv.api_url,
                      cache_dir=tmp_path / "c2")
    assert data.n_channels == 4
    storage_port = int(srv.storage_url.rsplit(":", 1)[1])
    seen = [(p, auth) for p, _, auth in srv.headers_seen]
    assert any(auth == f"token {srv.token}" for p, auth in seen if p != storage_port)
    assert all(auth is None for p, auth in seen if p == storage_port)


def test_429_with_retry_after_is_waited_for(srv):
    srv.too_many_next = 2
    t0 = time.monotonic()
    with open_url(_download_url(srv)) as f:
        assert f.read(8)[:4] == b"\x89HDF"
    assert time.monotonic() - t0 >= 1.9  # two waits of Retry-After: 1


@pytest.mark.parametrize("location", ["LOCAL", "file://LOCAL", "ftp://127.0.0.1:21/x.nwb",
                                      "gopher://127.0.0.1:70/x", "http://127.0.0.1:99999/x",
                                      "http://127.0.0.1:abc/x"])
def test_redirects_out_of_http_never_reach_the_local_disk(srv, rec, tmp_path, location):
    local = write_nwbfile(tmp_path / "local_secret.nwb", seed=9)
    srv.redirect_location = location.replace("LOCAL", str(local))
    with pytest.raises(RemoteReadError) as info:
        read_dandi("000200", asset=ASSET, bin_size=0.1, api_url=srv.api_url,
                   cache_dir=tmp_path / "cache")
    msg = str(info.value)
    if location == "LOCAL":  # a path is a relative URL on the same host: 404 there
        assert "HTTP 404" in msg
        assert any(path == str(local) for _, path, _ in srv.headers_seen)
    elif location.startswith("http"):  # a broken URL is a RemoteReadError, not a traceback
        assert "not a usable URL" in msg or "failed after" in msg
    else:
        assert "not an http(s) URL" in msg


def test_a_relative_redirect_is_legal(srv, rec):
    a = _asset(srv)
    srv.signed = False
    srv.redirect_location = f"../../../../files/{a.blob}/s1.nwb"  # from /api/assets/ID/download/
    with open_url(_download_url(srv)) as f:
        assert f.size == rec.stat().st_size


def test_slow_loris_body_meets_the_deadline(srv):
    srv.trickle_s = 0.5
    t0 = time.monotonic()
    with pytest.raises(RemoteReadError, match="deadline"):
        open_url(_download_url(srv), timeout=2.0, retries=0)
    assert time.monotonic() - t0 < 10


def test_a_range_answer_claiming_a_terabyte_is_refused_before_reading(srv):
    srv.claim_total = 2**40
    with pytest.raises(RemoteReadError, match=r"asked for bytes 0-65535.*refused"):
        open_url(_download_url(srv), retries=0)


def test_an_endless_body_is_capped(srv, tmp_path):
    srv.endless = True
    with pytest.raises(RemoteReadError, match="sent more than"):
        download(_download_url(srv), tmp_path / "x.nwb", max_bytes=2 << 20, retries=0)
    assert not list(tmp_path.iterdir())
    # streamed reads take exactly what they asked for and drop the connection
    with open_url(_download_url(srv), retries=0) as f:
        assert f.bytes_read <= 65536


def test_tampered_download_is_refused_and_a_tampered_cache_entry_dropped(srv, rec, tmp_path):
    a = _asset(srv)
    srv.tamper = True
    target = tmp_path / "s1.nwb"
    with pytest.raises(RemoteReadError, match="SHA-256"):
        download(_download_url(srv), target, sha256=a.sha256, retries=0)
    assert not target.exists()
    srv.tamper = False
    download(_download_url(srv), target, sha256=a.sha256)
    assert target.read_bytes() == rec.read_bytes()
    # the cached file is damaged on disk: the next download with the digest replaces it
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0xFF
    target.write_bytes(bytes(raw))
    download(_download_url(srv), target, sha256=a.sha256)
    assert target.read_bytes() == rec.read_bytes()


def test_read_dandi_download_checks_the_digest(srv, rec, tmp_path):
    data = read_dandi("000200", asset=ASSET, bin_size=0.1, api_url=srv.api_url,
                      cache_dir=tmp_path, download=True)
    assert data.provenance["digest_verified"] is True
    srv.tamper = True
    for p in tmp_path.rglob("*.nwb"):
        p.unlink()
    with pytest.raises(RemoteReadError, match="SHA-256"):
        read_dandi("000200", asset=ASSET, bin_size=0.1, api_url=srv.api_url,
                   cache_dir=tmp_path, download=True)


def test_proxy_variables_are_honoured(srv, rec, monkeypatch):
    """HTTP_PROXY sends requests through the proxy (here the test server itself, which
    accepts absolute-form requests); NO_PROXY exempts a host."""
    proxy_port = int(srv.storage_url.rsplit(":", 1)[1])
    monkeypatch.setenv("HTTP_PROXY", srv.storage_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    srv.signed = False
    srv.headers_seen.clear()
    with open_url(_download_url(srv)) as f:
        assert f.read(4) == b"\x89HDF"
    via_proxy = [path for port, path, _ in srv.headers_seen if port == proxy_port]
    assert via_proxy and all(path.startswith("http://127.0.0.1:") for path in via_proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    srv.headers_seen.clear()
    with open_url(_download_url(srv)) as f:
        assert f.read(4) == b"\x89HDF"
    assert all(not path.startswith("http") for _, path, _ in srv.headers_seen)


def test_file_size_of_the_asset_is_unchanged(rec):
    assert Path(rec).stat().st_size > 0
