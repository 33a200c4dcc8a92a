"""The nwb-lrnn command: demo, version and error handling."""

import subprocess
import sys

from nwb_lrnn import __version__
from nwb_lrnn.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_demo_runs_and_reports_recovery(capsys):
    assert main(["demo", "--epochs", "2", "--trials", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "latent noise SD in observation space" in out
    assert "pairwise unit correlations" in out


def test_user_error_is_one_line_without_traceback(capsys):
    assert main(["demo", "--epochs", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nwb-lrnn: error: max_epochs must be >= 1, got 0")
    assert "Traceback" not in err and err.count("\n") == 1


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "nwb_lrnn.cli", "version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("nwb-lrnn ")


def test_fit_nwb_file_writes_a_fit_and_info_reads_it(tmp_path, capsys):
    from pathlib import Path

    src = Path(__file__).parent / "data" / "A8604-211122.nwb"
    out = tmp_path / "fit.nwb"
    assert main(["fit", str(src), "--bin-size", "0.1", "--epochs", "1", "--units", "6",
                 "--rank", "2", "--window", "50", "--steps-per-epoch", "2", "--quiet",
                 "--out", str(out)]) == 0
    assert out.exists() and f"wrote {out}" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    assert "LowRankRNN rank 2, 6 units, 3 channels, poisson" in capsys.readouterr().out
    npy = tmp_path / "gen.npy"
    assert main(["generate", str(out), "--trials", "2", "--time", "30", "--out",
                 str(npy)]) == 0
    import numpy as np

    assert np.load(npy).shape == (2, 30, 3)
    # existing output is not overwritten without --overwrite
    assert main(["fit", str(src), "--epochs", "1", "--quiet", "--out", str(out)]) == 2
    assert "exists; pass overwrite=True" in capsys.readouterr().err


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.nwb")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"nwb-lrnn: error: NWB file not found: {tmp_path / 'missing.nwb'}"
    assert main(["info", str(tmp_path / "none.nwb")]) == 2
    assert "fit file not found" in capsys.readouterr().err


def test_source_kind():
    from nwb_lrnn.cli import source_kind

    assert source_kind("DANDI:000128/0.220113.0408") == "dandi"
    assert source_kind("000140") == "dandi"
    assert source_kind("https://dandiarchive.org/dandiset/000128") == "dandi"
    assert source_kind("rec/S001R01.edf") == "eeg"
    assert source_kind("https://host/file.nwb") == "nwb"
    assert source_kind("session.nwb") == "nwb"
