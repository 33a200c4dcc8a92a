"""Progress for batch jobs: without a terminal, a verbose fit logs epoch lines."""

import logging
import subprocess
import sys

import numpy as np

from nwb_lrnn import LowRankRNN
from nwb_lrnn.inference import training


def test_verbose_fit_without_terminal_logs_progress(caplog, monkeypatch):
    monkeypatch.setattr(training, "LOG_EVERY_S", 0.0)  # a line every epoch
    y = np.random.default_rng(0).normal(size=(4, 30, 3))
    with caplog.at_level(logging.INFO, logger="nwb_lrnn.progress"):
        LowRankRNN(rank=2, n_units=8, max_epochs=3, random_state=0, verbose=True,
                   validation_fraction=0.25).fit(y)
    lines = [r.getMessage() for r in caplog.records if r.name == "nwb_lrnn.progress"]
    assert len(lines) == 3 and lines[0].startswith("VSMC fit: epoch 1/3, bound per step")
    assert "validation" in lines[-1] and "ETA" in lines[-1]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nwb_lrnn.progress"):
        LowRankRNN(rank=2, n_units=8, max_epochs=2, random_state=0, verbose=False).fit(y)
    assert not [r for r in caplog.records if r.name == "nwb_lrnn.progress"]


def test_progress_shows_with_no_logging_setup():
    code = ("import numpy as np\nfrom nwb_lrnn import LowRankRNN\n"
            "LowRankRNN(rank=2, n_units=8, max_epochs=2, random_state=0)"
            ".fit(np.random.default_rng(0).normal(size=(4, 30, 3)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    assert "VSMC fit: epoch 1/2" in out.stderr and "VSMC fit: epoch 2/2" in out.stderr
