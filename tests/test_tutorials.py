"""Every tutorial runs end to end in its fast mode and writes what it promises."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.py"))

# Files each tutorial must leave in its output folder (globs are fine).
EXPECTED = {
    "spikes_from_nwb": ["postsubiculum_lrnn.nwb", "report/index.html"],
    "eeg_with_mne": ["S001R01_lrnn.nwb", "eeg_psd_mne.png", "eeg_psd_data_vs_generated.png"],
    "fit_a_dandiset": ["dandi_000128_lrnn.nwb", "dandi_latents.png"],
    "fixed_points": ["fixed_points_switches.png", "fixed_points_fitted.png"],
    "share_and_reload": ["fit.nwb", "report/index.html", "report/*.png"],
}


def test_every_tutorial_is_checked():
    assert {p.stem for p in TUTORIALS} == set(EXPECTED)


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_fast(script, tmp_path):
    out_dir = tmp_path / "out"
    env = dict(os.environ, NWB_LRNN_FAST="1", NWB_LRNN_OUT=str(out_dir),
               NWB_LRNN_TUTORIAL_OUT=str(out_dir), NWB_LRNN_CACHE=str(tmp_path / "cache"),
               MPLBACKEND="Agg", DANDI_NO_ET="1", OMP_NUM_THREADS="1")
    env.pop("NWB_LRNN_DANDI_API", None)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    for pattern in EXPECTED.get(script.stem, []):
        found = list(out_dir.glob(pattern))
        assert found and all(p.stat().st_size > 0 for p in found), (
            f"{script.name} did not write {pattern}; it wrote "
            f"{sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob('*'))}")
