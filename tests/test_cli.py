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
