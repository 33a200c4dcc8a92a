"""Every tutorial runs end to end in its fast mode."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.py"))


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_fast(script, tmp_path):
    env = dict(os.environ, NWB_LRNN_FAST="1", NWB_LRNN_OUT=str(tmp_path), MPLBACKEND="Agg",
               DANDI_NO_ET="1")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
