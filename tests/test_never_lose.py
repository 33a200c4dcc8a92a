"""Writes never lose the user's data or finished work: the source recording is never replaced,
symlinks are written through, stale temporary files are cleaned, errors name the user's path,
and `nwb-lrnn fit` checks its output before training and keeps a trained fit it cannot write."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from nwb_lrnn import LowRankRNN, read_fit, write_nwb
from nwb_lrnn.cli import main
from nwb_lrnn.io import read_nwb
from nwb_lrnn.io.fit_nwb import clean_stale_temp_files

from .nwb_factory import write_nwbfile

FIT_ARGS = ["--bin-size", "0.1", "--epochs", "2", "--units", "6", "--rank", "2", "--window",
            "20", "--steps-per-epoch", "1", "--particles", "4", "--quiet"]


@pytest.fixture
def recording(tmp_path):
    return write_nwbfile(tmp_path / "rec.nwb", duration=30.0)


def _fit(data):
    return LowRankRNN(rank=2, n_units=6, max_epochs=1, n_particles=4, window=20,
                      verbose=False, random_state=0).fit(data)


def _has_units(path) -> bool:
    with h5py.File(path, "r") as f:
        return "units" in f


def test_overwrite_never_replaces_the_source_recording(recording):
    data = read_nwb(recording, bin_size=0.1)
    est = _fit(data)
    before = recording.read_bytes()
    with pytest.raises(FileExistsError, match="is the recording this fit was made from"):
        write_nwb(est, recording, data=data, overwrite=True)
    assert recording.read_bytes() == before
    # appending the fit to the recording keeps its data
    write_nwb(est, recording, data=data, mode="append")
    assert _has_units(recording) and read_fit(recording).parameters_["U"].shape == (6, 2)


def test_overwrite_refuses_any_recording_but_replaces_results_files(tmp_path, recording):
    data = read_nwb(recording, bin_size=0.1)
    est = _fit(data)
    other = write_nwbfile(tmp_path / "other.nwb", seed=3)
    with pytest.raises(FileExistsError, match=r"holds recorded data \(/units"):
        write_nwb(est, other, overwrite=True)
    assert _has_units(other)
    results = write_nwb(est, tmp_path / "fit.nwb", data=data)
    write_nwb(est, results, data=data, overwrite=True)  # a results file: replaced
    assert read_fit(results).parameters_["U"].shape == (6, 2)


def test_writes_go_through_symlinks(tmp_path, recording):
    data = read_nwb(recording, bin_size=0.1)
    est = _fit(data)
    real = tmp_path / "store" / "fit.nwb"
    real.parent.mkdir()
    write_nwb(est, real, data=data)
    link = tmp_path / "fit_link.nwb"
    link.symlink_to(real)
    write_nwb(est, link, data=data, overwrite=True)
    assert link.is_symlink() and read_fit(link).parameters_["U"].shape == (6, 2)
    rec_link = tmp_path / "rec_link.nwb"
    rec_link.symlink_to(recording)
    write_nwb(est, rec_link, data=data, mode="append")
    assert rec_link.is_symlink() and _has_units(recording)
    assert "model" in h5py.File(recording, "r")["processing/lrnn"]


def test_stale_temporary_files_are_cleaned_and_live_ones_kept(tmp_path, recording):
    from nwb_lrnn.io.fit_nwb import _host

    data = read_nwb(recording, bin_size=0.1)
    est = _fit(data)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "fit.nwb"
    stale = tmp_path / f".fit.nwb.{_host()}.{dead.pid}.abc123xy.tmp.nwb"
    live = tmp_path / f".fit.nwb.{_host()}.1.zzz999aa.tmp.nwb"  # pid 1 runs
    old = tmp_path / ".fit.k3j4h5g6.tmp.nwb"  # the earlier pattern, two hours old
    unrelated = tmp_path / ".fit.nwb.notes.tmp.nwb.bak"
    for p in (stale, live, old, unrelated):
        p.write_bytes(b"x" * 100)
    os.utime(old, (os.path.getmtime(old) - 7200,) * 2)
    write_nwb(est, out, data=data)
    assert not stale.exists() and live.exists() and unrelated.exists()
    # ctime, not only mtime, dates a file: the old-pattern one was just made
    assert old.exists()
    assert clean_stale_temp_files(out) == []


def test_write_errors_name_the_users_path_not_the_temporary_file(tmp_path, recording,
                                                                 monkeypatch):
    data = read_nwb(recording, bin_size=0.1)
    est = _fit(data)
    out = tmp_path / "fit.nwb"

    class Usage:
        free = 1000

    monkeypatch.setattr(shutil, "disk_usage", lambda _: Usage)
    with pytest.raises(OSError, match=f"not enough free space to write {out}"):
        write_nwb(est, out, data=data)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp.nwb"))


_FULL_DISK = """
import resource, signal, sys
from nwb_lrnn.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.exit(main(sys.argv[2:]))
"""


def test_a_full_disk_after_training_is_one_line_and_the_fit_is_kept(tmp_path, recording):
    """RLIMIT_FSIZE stands in for a full disk: the checkpoint (small) fits, the results file
    does not. One line, exit 2, the trained fit kept in a named checkpoint, no temp files;
    the named rerun writes it without training."""
    out = tmp_path / "fit.nwb"
    ckpt = tmp_path / "keep.npz"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, "150000", "fit", str(recording),
                           *FIT_ARGS, "--out", str(out), "--checkpoint", str(ckpt)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nwb-lrnn: error: could not write "
                                               f"{out}"), proc.stderr[-2000:]
    assert f"The trained fit is kept in {ckpt}" in err[0]
    assert "Traceback" not in proc.stderr and ckpt.exists() and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp.nwb")]
    rerun = subprocess.run([sys.executable, "-m", "nwb_lrnn.cli", "fit", str(recording),
                            *FIT_ARGS, "--out", str(out), "--checkpoint", str(ckpt)],
                           capture_output=True, text=True, timeout=300, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming from the checkpoint {ckpt}" in rerun.stdout
    assert read_fit(out).history_.train_bound  # the trained history came back


def test_cli_refuses_to_write_over_its_source_before_reading_it(recording, capsys):
    before = recording.read_bytes()
    assert main(["fit", str(recording), *FIT_ARGS, "--out", str(recording),
                 "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "is the recording this fit was made from" in err and "--append" in err
    assert "overwrite=True" not in err and "mode='append'" not in err
    assert recording.read_bytes() == before


def test_cli_append_adds_the_fit_to_the_recording(recording, capsys):
    assert main(["fit", str(recording), *FIT_ARGS, "--out", str(recording), "--append"]) == 0
    assert "the fit added to the file" in capsys.readouterr().out
    assert _has_units(recording) and read_fit(recording).parameters_["U"].shape == (6, 2)
    # the automatic checkpoint is removed once the results are written
    assert not list(recording.parent.glob(".*checkpoint.npz"))


def test_cli_checks_its_output_folder_before_training(tmp_path, recording, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["fit", str(recording), *FIT_ARGS, "--out", str(blocker / "x.nwb")]) == 2
    err = capsys.readouterr().err
    assert "is not a writable folder (checked before fitting)" in err
    assert main(["fit", str(recording), *FIT_ARGS, "--append", "--overwrite"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_cli_resumes_from_a_killed_run(tmp_path, recording):
    """The automatic checkpoint: a fit killed mid-training resumes when run again."""
    out = tmp_path / "fit.nwb"
    args = [*FIT_ARGS, "--epochs", "400"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "nwb_lrnn.cli", "fit", str(recording),
                             *args, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = tmp_path / ".fit.nwb.checkpoint.npz"
    import time

    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert ckpt.exists(), "no checkpoint was written within 120 s"
    rerun = subprocess.run([sys.executable, "-m", "nwb_lrnn.cli", "fit", str(recording),
                            *args, "--epochs", "12", "--out", str(out)],
                           capture_output=True, text=True, timeout=300, env=env)
    # another --epochs is another fit: refused with the CLI's wording, nothing lost
    assert rerun.returncode == 2 and "--checkpoint none" in rerun.stderr
    assert ckpt.exists()
    rerun = subprocess.run([sys.executable, "-m", "nwb_lrnn.cli", "fit", str(recording),
                            *args, "--out", str(out)],
                           capture_output=True, text=True, timeout=600, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming from the checkpoint" in rerun.stdout
    assert len(read_fit(out).history_.train_bound) == 400 and not ckpt.exists()


def test_generate_overwrite_never_replaces_a_recording(tmp_path, recording, capsys):
    fit = tmp_path / "fit.nwb"
    assert main(["fit", str(recording), *FIT_ARGS, "--out", str(fit)]) == 0
    before = recording.read_bytes()
    assert main(["generate", str(fit), "--out", str(recording), "--overwrite"]) == 2
    err = capsys.readouterr().err
    # the fit names its source by file name and SHA-256 only (no local paths in shared
    # files): the digest recognises the recording
    assert "is the recording this fit was made from (same SHA-256)" in err
    assert "Give another --out" in err
    assert recording.read_bytes() == before
    gen = tmp_path / "gen.nwb"
    assert main(["generate", str(fit), "--out", str(gen)]) == 0
    assert main(["generate", str(fit), "--out", str(gen), "--overwrite"]) == 0  # its own file


@pytest.mark.parametrize("kw", [dict(n_particles=10**6), dict(n_units=10**8)])
def test_fits_that_cannot_fit_in_memory_are_refused_before_allocating(kw):
    import numpy as np

    y = np.random.default_rng(0).normal(size=(4, 50, 3))
    with pytest.raises(MemoryError, match=r"fitting would need about .* GiB, more than"):
        LowRankRNN(rank=2, max_epochs=1, verbose=False, **kw).fit(y)


def test_a_sample_too_large_is_refused_and_the_cli_says_it_in_one_line(tmp_path, recording,
                                                                       capsys):
    fit = tmp_path / "fit.nwb"
    assert main(["fit", str(recording), *FIT_ARGS, "--out", str(fit)]) == 0
    capsys.readouterr()
    with pytest.raises(MemoryError, match="sampling would need"):
        read_fit(fit).sample(10**5, 10**5)
    assert main(["generate", str(fit), "--out", str(tmp_path / "g.npy"), "--trials",
                 "100000", "--time", "100000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nwb-lrnn: error: sampling would need") and err.count("\n") == 1


def test_results_files_carry_the_recordings_session_and_no_local_paths(tmp_path, recording):
    """session_start_time, Subject and experimenter come from the recording; provenance names
    files, never absolute paths of this machine; surrogate files keep the fit's Subject."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO

    from nwb_lrnn.io.fit_nwb import summarize_fit

    fit = tmp_path / "fit.nwb"
    assert main(["fit", str(recording), *FIT_ARGS, "--out", str(fit),
                 "--experimenter", "Doe, Jane"]) == 0
    with NWBHDF5IO(str(fit), "r") as io:
        nwb = io.read()
        assert nwb.session_start_time == datetime(2024, 1, 1, tzinfo=timezone.utc)
        assert nwb.subject.subject_id == "m1" and nwb.experimenter == ("Doe, Jane",)
    src = summarize_fit(fit)["source"]
    assert src["source"] == "rec.nwb" and len(src["source_sha256"]) == 64
    assert str(tmp_path) not in fit.read_bytes().decode("latin-1")
    gen = tmp_path / "gen.nwb"
    assert main(["generate", str(fit), "--out", str(gen), "--n-trials", "1",
                 "--n-times", "20"]) == 0
    with NWBHDF5IO(str(gen), "r") as io:
        assert io.read().subject.subject_id == "m1"


def test_a_results_file_without_a_subject_says_so(tmp_path, caplog):
    import logging

    import numpy as np

    y = np.random.default_rng(0).normal(size=(2, 30, 3))
    est = LowRankRNN(rank=2, n_units=6, max_epochs=1, n_particles=4, verbose=False).fit(y)
    with caplog.at_level(logging.WARNING, logger="nwb_lrnn"):
        write_nwb(est, tmp_path / "fit.nwb")
    assert "no Subject" in caplog.text and "--subject-id" in caplog.text
    with caplog.at_level(logging.WARNING, logger="nwb_lrnn"):
        caplog.clear()
        write_nwb(est, tmp_path / "fit2.nwb", subject={"subject_id": "s1", "species":
                                                       "Homo sapiens", "sex": "U",
                                                       "age": "P0D/"})
    assert "no Subject" not in caplog.text


def test_overwrite_refuses_any_hdf5_file_nwb_lrnn_did_not_write(tmp_path, recording):
    """Processed NWB data (no /units, nothing in /acquisition) and an HDF5 file that cannot
    be opened are not replaced either."""
    data = read_nwb(recording, bin_size=0.1)
    est = _fit(data)
    processed = tmp_path / "processed.nwb"
    with h5py.File(processed, "w") as f:
        f.create_group("processing/ophys").create_dataset("dff", data=[1.0, 2.0])
    with pytest.raises(FileExistsError, match="NWB/HDF5 data"):
        write_nwb(est, processed, data=data, overwrite=True)
    broken = tmp_path / "broken.nwb"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(FileExistsError, match="cannot be opened"):
        write_nwb(est, broken, data=data, overwrite=True)


def test_hdf5s_own_failed_write_reads_as_a_full_disk(tmp_path):
    """HDF5 reports a write that hit the file size limit at close as h5py's RuntimeError
    ("Set slist enabled failed (file write failed: ... errno = 27 ...)"): the user gets the
    one-line disk message, and nothing is left behind."""
    from nwb_lrnn.io.fit_nwb import _atomic_write

    def write(tmp):
        raise RuntimeError("Set slist enabled failed (file write failed: time = now\n, "
                           f"filename = '{tmp}', file descriptor = 4, errno = 27, error "
                           "message = 'File too large', buf = 0x1, total write size = 6864)")

    target = tmp_path / "fit.nwb"
    with pytest.raises(OSError, match="the disk is full") as info:
        _atomic_write(target, write, copy=False, shown=target)
    assert info.value.errno == 27 and str(target) in str(info.value)
    assert not target.exists() and list(tmp_path.iterdir()) == []
