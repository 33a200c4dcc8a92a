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

    from nwb_lrnn import LowRankRNN, read_fit, write_nwb
    from nwb_lrnn.io import FitFileError

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


# ------------------------------------------------------------------ checkpoints
_FITTER = """
import sys, numpy as np, torch
torch.set_num_threads(1)
from nwb_lrnn import LowRankRNN
y = np.random.default_rng(0).normal(size=(6, 40, 4))
est = LowRankRNN(rank=2, n_units=16, n_particles=16, max_epochs=int(sys.argv[3]), batch_size=3,
                 random_state=7, verbose=False)
ckpt = sys.argv[1] if sys.argv[1] != "-" else None
est.fit(y, checkpoint=ckpt, resume=ckpt is not None)
p = est.parameters_
np.savez(sys.argv[2], **{k: p[k] for k in ("U", "V", "h", "C", "d", "noise_z", "noise_x")})
"""


def _ckpt_epoch(path: Path) -> int:
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(bytes(z["header"]).decode())["epoch"]
    except Exception:
        return -1


def test_fit_killed_with_sigkill_resumes_to_the_same_parameters(tmp_path):
    """SIGKILL mid-fit, run the same call with resume=True: bitwise the uninterrupted fit."""
    import signal
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    epochs = "60"
    ref = subprocess.run([sys.executable, "-c", _FITTER, "-", str(tmp_path / "ref.npz"), epochs],
                         capture_output=True, text=True, env=env, timeout=600)
    assert ref.returncode == 0, ref.stderr
    ckpt = tmp_path / "fit.ckpt.npz"
    proc = subprocess.Popen([sys.executable, "-c", _FITTER, str(ckpt), str(tmp_path / "x.npz"),
                             epochs], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while _ckpt_epoch(ckpt) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the fit ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _ckpt_epoch(ckpt)
    assert 3 <= killed_at < int(epochs)
    assert not (tmp_path / "x.npz").exists()
    # no half-written checkpoint is ever left under the real name
    res = subprocess.run([sys.executable, "-c", _FITTER, str(ckpt), str(tmp_path / "res.npz"),
                          epochs], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    with np.load(tmp_path / "ref.npz") as a, np.load(tmp_path / "res.npz") as b:
        for k in a.files:
            assert np.array_equal(a[k], b[k]), k
    assert _ckpt_epoch(ckpt) == int(epochs)


def test_resume_with_encoder_proposal_and_refusals(tmp_path):
    import nwb_lrnn.inference.training as T
    from nwb_lrnn import LowRankRNN

    rng = np.random.default_rng(1)
    counts = rng.poisson(1.0, size=(6, 30, 5))
    kw = dict(rank=2, n_units=8, n_particles=8, max_epochs=4, batch_size=3, random_state=2,
              observation="poisson", proposal="encoder", verbose=False)
    ref = LowRankRNN(**kw).fit(counts)

    class Stop(Exception):
        pass

    orig = T._save_checkpoint

    def crash_after_two(path, epoch, *a, **k):
        orig(path, epoch, *a, **k)
        if epoch == 2:
            raise Stop

    ckpt = tmp_path / "c.npz"
    T._save_checkpoint = crash_after_two
    try:
        with pytest.raises(Stop):
            LowRankRNN(**kw).fit(counts, checkpoint=ckpt)
    finally:
        T._save_checkpoint = orig
    est = LowRankRNN(**kw).fit(counts, checkpoint=ckpt, resume=True)
    for k in ("C", "U", "V"):
        assert np.array_equal(ref.parameters_[k], est.parameters_[k])
    assert est.history_.train_bound == ref.history_.train_bound
    # other settings or another model: refused with a clear message
    with pytest.raises(ValueError, match="other training settings"):
        LowRankRNN(**{**kw, "max_epochs": 5}).fit(counts, checkpoint=ckpt, resume=True)
    with pytest.raises(ValueError, match="another model"):
        LowRankRNN(**{**kw, "n_units": 9}).fit(counts, checkpoint=ckpt, resume=True)
    ckpt.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot be read"):
        LowRankRNN(**kw).fit(counts, checkpoint=ckpt, resume=True)


# ------------------------------------------------------------------ concurrent writers
_WRITER = """
import sys, time, numpy as np
from nwb_lrnn import LowRankRNN
from nwb_lrnn import write_nwb
rng = np.random.default_rng(int(sys.argv[3]))
est = LowRankRNN.from_parameters(U=rng.normal(size=(6, 2)), V=rng.normal(size=(2, 6)) / 6,
                                 C=rng.normal(size=(3, 2)), d=np.zeros(3), noise_x=0.5,
                                 nonlinearity="tanh")
while time.time() < float(sys.argv[4]):
    time.sleep(0.001)
try:
    if sys.argv[2] == "new":
        write_nwb(est, sys.argv[1], include=("model", "generated"))
    else:
        write_nwb(est, sys.argv[1], mode="append", module_name=sys.argv[2],
                  include=("model",))
    print("written")
except FileExistsError as err:
    print("refused:", err)
"""


def _race(args_list, tmp_path):
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = str(time.time() + 6.0)  # both processes are imported and waiting by then
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, *a, start], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a in args_list]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_o, e) in zip(procs, outs, strict=True):
        assert p.returncode == 0, e
    return [o.strip().splitlines()[-1] for o, _ in outs]


def test_two_processes_writing_the_same_new_file_do_not_clobber(tmp_path):
    from pynwb import NWBHDF5IO

    target = tmp_path / "fit.nwb"
    outs = _race([(str(target), "new", "1"), (str(target), "new", "2")], tmp_path)
    assert sorted(o.split(":")[0] for o in outs) == ["refused", "written"]
    with NWBHDF5IO(str(target), "r") as io:
        assert "lrnn" in io.read().processing
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp.nwb")]


def test_two_processes_appending_to_one_file_both_land(tmp_path):
    from pynwb import NWBHDF5IO

    from .nwb_factory import write_nwbfile

    target = write_nwbfile(tmp_path / "session.nwb")
    outs = _race([(str(target), "fit_a", "1"), (str(target), "fit_b", "2")], tmp_path)
    assert outs == ["written", "written"]
    with NWBHDF5IO(str(target), "r") as io:
        modules = set(io.read().processing)
    assert {"fit_a", "fit_b"} <= modules


def test_bad_inputs_table_links_real_tests():
    """docs/bad_inputs.md lists at least 30 cases, each linked to a test that exists."""
    import re

    text = (ROOT / "docs" / "bad_inputs.md").read_text()
    links = re.findall(r"\[(test_\w+\.py)::(test_\w+)\]", text)
    assert len(links) >= 30
    for fname, test in set(links):
        src = (ROOT / "tests" / fname).read_text()
        assert f"def {test}(" in src, f"{fname}::{test} is listed but does not exist"


def test_checkpoint_of_another_fit_is_refused_naming_what_differs(tmp_path):
    """A finished checkpoint of data A must not hand back A's model for data B (or for another
    seed or nonlinearity): the fingerprint names what differs."""
    from nwb_lrnn import LowRankRNN
    from nwb_lrnn.teachers import oscillator_teacher

    a = oscillator_teacher(6, 2).sample(3, 20, random_state=0)
    b = oscillator_teacher(6, 2).sample(3, 20, random_state=1)
    kw = dict(rank=2, n_units=6, n_particles=4, max_epochs=2, verbose=False, random_state=0,
              validation_fraction=0)
    ckpt = tmp_path / "a.npz"
    fit_a = LowRankRNN(**kw).fit(a, checkpoint=ckpt)
    again = LowRankRNN(**kw).fit(a, checkpoint=ckpt, resume=True)  # same fit: resumes (done)
    np.testing.assert_array_equal(again.parameters_["U"], fit_a.parameters_["U"])
    with pytest.raises(ValueError, match=r"belongs to another fit \(training_data"):
        LowRankRNN(**kw).fit(b, checkpoint=ckpt, resume=True)
    with pytest.raises(ValueError, match=r"belongs to another fit \(.*seed: 0 in the "
                                         r"checkpoint, 5 here"):
        LowRankRNN(**{**kw, "random_state": 5}).fit(a, checkpoint=ckpt, resume=True)
    with pytest.raises(ValueError, match=r"model\.nonlinearity"):
        LowRankRNN(**{**kw, "nonlinearity": "tanh"}).fit(a, checkpoint=ckpt, resume=True)
    # the checkpoint itself is left alone
    assert ckpt.exists()
