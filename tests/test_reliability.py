"""Reliability: concurrent processes, files that try to run code, URL schemes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["DANDI_NO_ET"] = "1"

from .dandi_server import DandiServer
from .nwb_factory import write_nwbfile

ROOT = Path(__file__).resolve().parents[1]

_READER = """
import json, sys
import numpy as np
from nwb_lrnn import read_dandi
d = read_dandi("000400", asset=sys.argv[1], bin_size=0.05, api_url=sys.argv[2],
               cache_dir=sys.argv[3], time_range=(0.0, 60.0))
print(json.dumps(d.values.sum(axis=(0, 1)).tolist()))
"""


def test_dandi_cache_stays_consistent_under_concurrent_processes(tmp_path):
    big = write_nwbfile(tmp_path / "big.nwb", n_units=20, duration=120.0, rate=10.0, seed=5,
                        acquisition_mb=4)
    asset = "sub-x/sub-x_ses-1_ecephys.nwb"
    cache = tmp_path / "cache"
    env = {**os.environ, "DANDI_NO_ET": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with DandiServer() as srv:
        srv.add_dandiset("000400", {asset: big})
        procs = [subprocess.Popen([sys.executable, "-c", _READER, asset, srv.api_url,
                                   str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for _ in range(3)]
        outs = [p.communicate(timeout=180) for p in procs]
        # and once more from the warm cache
        warm = subprocess.run([sys.executable, "-c", _READER, asset, srv.api_url, str(cache)],
                              capture_output=True, text=True, env=env, timeout=180)
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    sums = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    sums.append(json.loads(warm.stdout.strip().splitlines()[-1]))
    assert all(np.array_equal(s, sums[0]) for s in sums)
    from nwb_lrnn.io import read_nwb

    local = read_nwb(big, bin_size=0.05, time_range=(0.0, 60.0))
    assert np.array_equal(local.values.sum(axis=(0, 1)), sums[0])
    # only complete blocks in the cache: no temporary files left behind
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".blk") for p in files)
    assert not [p for p in files if not (p.name.endswith(".blk") or p.name == "meta.json")]


def test_only_http_urls_are_fetched(tmp_path):
    from nwb_lrnn.io import NWBReadError, open_url, read_nwb

    for url in ("file:///etc/passwd", "ftp://example.org/x.nwb", "s3://bucket/x.nwb"):
        with pytest.raises(NWBReadError, match="only local paths and http"):
            read_nwb(url, bin_size=0.1)
        with pytest.raises(ValueError, match="http"):
            open_url(url)


def test_loading_a_fit_never_runs_code_from_the_file(tmp_path):
    """Strings in a fit file are data: config fields holding code are rejected, not run."""
    import h5py

    from nwb_lrnn import LowRankRNN
    from nwb_lrnn.io import FitFileError, read_fit, write_nwb

    rng = np.random.default_rng(0)
    est = LowRankRNN.from_parameters(U=rng.normal(size=(6, 2)), V=rng.normal(size=(2, 6)) / 6,
                                     C=rng.normal(size=(3, 2)), d=np.zeros(3), noise_x=0.5)
    path = write_nwb(est, tmp_path / "fit.nwb", include=("model",))
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    with h5py.File(path, "r+") as f:
        hits = []

        def visit(name, obj):
            for k, v in obj.attrs.items():
                if isinstance(v, str) and v.lstrip().startswith("{"):
                    hits.append((obj, k, v))
        f.visititems(visit)
        assert hits, "no JSON attribute found to tamper with"
        for obj, k, v in hits:
            cfg = json.loads(v)
            for key in list(cfg)[:3]:
                cfg[key] = payload
            obj.attrs[k] = json.dumps(cfg)
    try:
        read_fit(path)
    except (FitFileError, ValueError, TypeError, KeyError):
        pass
    assert not marker.exists()
    # no pickle anywhere in what we write
    raw = Path(path).read_bytes()
    assert b"cnumpy" not in raw and b"\x80\x04\x95" not in raw
