"""The CPU thread policy (nwb_lrnn._threads) and a CLI that starts without torch."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import nwb_lrnn
from nwb_lrnn import _threads


@pytest.fixture
def auto_threads(monkeypatch):
    """The automatic policy, with torch at its default count (conftest sets 1 thread)."""
    monkeypatch.delenv("NWB_LRNN_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(_threads._torch_default())
    nwb_lrnn.set_num_threads(None)
    yield
    nwb_lrnn.set_num_threads(None)
    torch.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="n must be a positive int or None"):
        nwb_lrnn.set_num_threads(bad)


def _fake_cgroup(root: Path, v2_max: str | None = None, v1: tuple[int, int] | None = None):
    (root / "proc/self").mkdir(parents=True)
    if v2_max is not None:
        (root / "proc/self/cgroup").write_text("0::/job\n")
        (root / "sys/fs/cgroup/job").mkdir(parents=True)
        (root / "sys/fs/cgroup/job/cpu.max").write_text(v2_max + "\n")
    else:
        (root / "proc/self/cgroup").write_text("4:cpu,cpuacct:/job\n")
        d = root / "sys/fs/cgroup/cpu,cpuacct/job"
        d.mkdir(parents=True)
        (d / "cpu.cfs_quota_us").write_text(f"{v1[0]}\n")
        (d / "cpu.cfs_period_us").write_text(f"{v1[1]}\n")


def test_cgroup_quota_v2_and_v1(tmp_path):
    _fake_cgroup(tmp_path / "a", v2_max="150000 100000")
    assert _threads._cgroup_quota(tmp_path / "a") == pytest.approx(1.5)
    _fake_cgroup(tmp_path / "b", v2_max="max 100000")
    assert _threads._cgroup_quota(tmp_path / "b") is None
    _fake_cgroup(tmp_path / "c", v1=(300000, 100000))
    assert _threads._cgroup_quota(tmp_path / "c") == pytest.approx(3.0)
    _fake_cgroup(tmp_path / "d", v1=(-1, 100000))
    assert _threads._cgroup_quota(tmp_path / "d") is None
    assert _threads._cgroup_quota(tmp_path / "nothing") is None


def test_usable_cpus_is_affinity_capped_by_quota(monkeypatch):
    monkeypatch.setattr(_threads, "_affinity", lambda: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(_threads, "_cgroup_quota", lambda: 2.5)
    assert _threads.usable_cpus() == 2
    monkeypatch.setattr(_threads, "_cgroup_quota", lambda: 0.5)
    assert _threads.usable_cpus() == 1
    monkeypatch.setattr(_threads, "_cgroup_quota", lambda: None)
    assert _threads.usable_cpus() == 8


def test_choice_follows_work_and_idle_cpus(monkeypatch, auto_threads):
    monkeypatch.setattr(_threads, "usable_cpus", lambda: 8)
    idle = {"n": 8.0}
    monkeypatch.setattr(_threads, "idle_cpus", lambda interval=0.05: idle["n"])
    assert nwb_lrnn.get_num_threads(1000) == 1  # small work: one thread, no sampling
    assert nwb_lrnn.get_num_threads(3 * _threads.WORK_PER_THREAD) == 3
    assert nwb_lrnn.get_num_threads(None) == 8
    idle["n"] = 2.6  # others keep 5.4 CPUs busy
    assert nwb_lrnn.get_num_threads(None) == 2
    idle["n"] = 0.3
    assert nwb_lrnn.get_num_threads(None) == 1
    nwb_lrnn.set_num_threads(5)
    assert nwb_lrnn.get_num_threads(1000) == 5
    nwb_lrnn.set_num_threads(None)
    monkeypatch.setenv("NWB_LRNN_NUM_THREADS", "3")
    assert nwb_lrnn.get_num_threads(1000) == 3


def test_threads_for_sets_and_restores_torch(monkeypatch, auto_threads):
    default = torch.get_num_threads()
    with _threads.threads_for(10):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == default
    # a caller's own torch.set_num_threads is respected
    torch.set_num_threads(default + 1)
    with _threads.threads_for(10):
        assert torch.get_num_threads() == default + 1
    torch.set_num_threads(default)


def test_recheck_gives_threads_back(monkeypatch, auto_threads):
    monkeypatch.setattr(_threads, "usable_cpus", lambda: 4)
    idle = {"n": 4.0}
    monkeypatch.setattr(_threads, "idle_cpus", lambda interval=0.05: idle["n"])
    monkeypatch.setattr(_threads, "RECHECK_S", 0.0)
    with _threads.threads_for(None) as recheck:
        assert torch.get_num_threads() == 4
        recheck()
        assert torch.get_num_threads() == 4
        idle["n"] = 1.2  # another job started
        recheck()
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == _threads._torch_default()


def test_fit_runs_on_one_thread_when_small(monkeypatch, auto_threads):
    seen = []
    real = _threads.threads_for

    def spy(work=None):
        seen.append(work)
        return real(work)

    monkeypatch.setattr("nwb_lrnn.estimator.threads_for", spy)
    y = np.random.default_rng(0).normal(size=(2, 30, 3))
    est = nwb_lrnn.LowRankRNN(rank=2, n_units=8, n_particles=4, max_epochs=1, verbose=False,
                              random_state=0).fit(y)
    est.transform(y)
    assert seen and all(w < _threads.WORK_PER_THREAD for w in seen)
    assert torch.get_num_threads() == _threads._torch_default()


def test_idle_cpus_sees_a_busy_process():
    cpus = len(_threads._affinity())
    before = _threads.idle_cpus(0.2)
    if cpus < 2 or before < cpus - 0.5:
        pytest.skip(f"needs >= 2 idle CPUs (idle: {before:.2f} of {cpus})")
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        during = _threads.idle_cpus(0.2)
    finally:
        spin.kill()
        spin.wait()
    assert during < before - 0.5, (before, during)


def _imports_torch(code: str) -> bool:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print('TORCH' if 'torch' in sys.modules else 'NO')"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return out.stdout.strip().splitlines()[-1] == "TORCH"


def test_cli_help_and_package_import_do_not_import_torch():
    assert not _imports_torch("import nwb_lrnn")
    assert not _imports_torch("import nwb_lrnn.io, nwb_lrnn.io.fit_nwb, nwb_lrnn.io.records, "
                              "nwb_lrnn.results")
    assert not _imports_torch("import nwb_lrnn.cli as c\ntry:\n    c.main(['--help'])\n"
                              "except SystemExit:\n    pass")
    assert _imports_torch("import nwb_lrnn\nnwb_lrnn.LowRankRNN")


def test_info_does_not_import_torch(tmp_path):
    from nwb_lrnn.cli import main

    src = Path(__file__).parent / "data" / "A8604-211122.nwb"
    out = tmp_path / "fit.nwb"
    assert main(["fit", str(src), "--bin-size", "0.1", "--epochs", "1", "--units", "6",
                 "--rank", "2", "--window", "50", "--steps-per-epoch", "2", "--quiet",
                 "--out", str(out)]) == 0
    code = (f"import contextlib, io\nfrom nwb_lrnn.cli import main\nbuf = io.StringIO()\n"
            f"with contextlib.redirect_stdout(buf):\n    rc = main(['info', {str(out)!r}])\n"
            f"assert rc == 0 and 'fixed points' in buf.getvalue() and 'trained 1 epochs' in "
            f"buf.getvalue(), buf.getvalue()")
    assert not _imports_torch(code)
    # io is a leaf: its reader gives the fit as a plain record, without torch
    assert not _imports_torch(f"from nwb_lrnn.io import read_fit_record\n"
                              f"r = read_fit_record({str(out)!r})\n"
                              f"assert r.rank == 2 and r.state, r")
