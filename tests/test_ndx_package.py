"""The NWB extension is its own package: `pip install ./extensions/ndx-lrnn` alone (no torch,
no nwb_lrnn) reads a fit written by nwb_lrnn, with typed classes."""

import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from nwb_lrnn import LowRankRNN, write_nwb
from nwb_lrnn.teachers import oscillator_teacher

EXT = Path(__file__).resolve().parents[1] / "extensions" / "ndx-lrnn"

_READ = """
import sys, numpy as np
from pynwb import NWBHDF5IO
import ndx_lrnn
try:
    import torch  # noqa: F401
    sys.exit("torch is importable: the venv is not bare")
except ImportError:
    pass
with NWBHDF5IO(sys.argv[1], "r") as io:
    fit = io.read().processing["lrnn"]
    m = fit["model"]
    assert isinstance(m, ndx_lrnn.LowRankRNNModel), type(m)
    np.save(sys.argv[2], m.U[:])
    print(type(fit["posterior_latents"]).__name__, list(fit["metrics"]["metric"][:])[:1])
"""


def test_written_fits_use_the_extension_packages_classes(tmp_path):
    import ndx_lrnn
    from pynwb import NWBHDF5IO

    data = oscillator_teacher(6, 2).sample(3, 20, random_state=0)
    est = LowRankRNN(rank=2, n_units=6, max_epochs=1, n_particles=4, verbose=False).fit(data)
    path = write_nwb(est, tmp_path / "fit.nwb", data=data)
    with NWBHDF5IO(str(path), "r") as io:
        fit = io.read().processing["lrnn"]
        assert isinstance(fit["model"], ndx_lrnn.LowRankRNNModel)
        assert isinstance(fit["posterior_latents"], ndx_lrnn.PosteriorLatents)
        assert isinstance(fit["metrics"], ndx_lrnn.FitMetrics)


@pytest.mark.slow
def test_the_extension_alone_in_a_fresh_venv_reads_a_fit(tmp_path):
    data = oscillator_teacher(6, 2).sample(3, 20, random_state=0)
    est = LowRankRNN(rank=2, n_units=6, max_epochs=1, n_particles=4, verbose=False).fit(data)
    path = write_nwb(est, tmp_path / "fit.nwb", data=data)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(EXT)], check=True,
                   timeout=900)
    out = subprocess.run([str(py), "-c", _READ, str(path), str(tmp_path / "U.npy")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("PosteriorLatents")
    np.testing.assert_array_equal(np.load(tmp_path / "U.npy"), est.parameters_["U"])
    assert sys.executable != str(py)
