"""Prepared benchmark scripts stay runnable: the GPU script where no GPU is (a dry run on the
CPU), the EEG noise oracle on the bundled recording. No timing is asserted."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


def test_gpu_script_dry_run_on_the_cpu(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--reps", "1",
                          "--warmup", "0", "--configs", "gauss_ts", "--fit-epochs", "1"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OUT": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads((tmp_path / "gpu.json").read_text())
    assert [r["config"] for r in got["steps"]] == ["gauss_ts"] and got["steps"][0]["finite"]
    assert got["fit"]["scores_agree"] and got["fit"]["device"] == "cpu"


def test_gpu_script_without_cuda_says_so():
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "no CUDA device here" in out.stderr


def test_eeg_noise_oracle_prints_every_noise_kind():
    script = Path(__file__).parents[1] / "benchmarks" / "eeg_noise_oracle.py"
    edf = Path(__file__).parents[1] / "nwb_lrnn" / "sample_data" / "S001R01.edf"
    out = subprocess.run([sys.executable, str(script), str(edf), "--ranks", "2", "--draws", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln for ln in out.stdout.splitlines() if "D_stsp" in ln]
    assert len(lines) == 9 and "VAR(1) of the data" in lines[0]
    assert any("correlated innovations" in ln for ln in lines)
    assert any("VAR(5) latents + VAR(1) noise" in ln for ln in lines)


def test_eeg_fit_diagnosis_swaps_latents_and_noise(tmp_path):
    import argparse

    from nwb_lrnn import LowRankRNN, write_nwb
    from nwb_lrnn.cli import load_source

    root = Path(__file__).parents[1]
    edf = root / "nwb_lrnn" / "sample_data" / "S001R01.edf"
    data = load_source(argparse.Namespace(source=str(edf), bin_size=None, asset=None,
                                          eeg_preprocessing="zscore"))
    est = LowRankRNN(rank=2, n_units=16, observation="gaussian_var1", max_epochs=1,
                     steps_per_epoch=3, window=50, batch_size=4, n_particles=8,
                     validation_fraction=0.2, stability_check=0, verbose=False,
                     random_state=0).fit(data)
    path = write_nwb(est, tmp_path / "rank2.nwb", include=("model",))
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "eeg_fit_diagnosis.py"),
                          str(path), str(edf), "--draws", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    for row in ("posterior latents + generated noise", "generated latents + posterior residual",
                "noise's stationary covariance", "noise refitted to the training residual",
                "posterior latents + refitted noise", "stretch just before the held-out part"):
        assert row in text, text


def test_bundled_spike_recordings_convert_to_nwb_with_their_counts(tmp_path):
    """benchmarks/spykes_to_nwb.py: both bundled recordings become NWB files whose re-binned
    counts are the published ones (the script checks and says so) and whose behaviour reads
    back on the same bins."""
    import numpy as np

    from nwb_lrnn import read_nwb
    from nwb_lrnn.io import read_behavior

    script = Path(__file__).parents[1] / "benchmarks" / "spykes_to_nwb.py"
    for dataset, n_units, n_bins in (("s1", 49, 35129), ("m1", 132, 15536)):
        out = tmp_path / f"{dataset}.nwb"
        run = subprocess.run([sys.executable, str(script), str(out), "--dataset", dataset,
                              "--min-rate", "1"], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        assert f"{n_units} units, {n_bins} bins of 50 ms" in run.stdout
        assert "re-binned counts equal the published ones" in run.stdout
        data = read_nwb(out, bin_size=0.05)
        vel = read_behavior(out, "hand_vel", like=data)
        assert data.shape == (1, n_bins, n_units) and vel.shape == (1, n_bins, 2)
        assert np.isfinite(vel).all() and vel.std() > 0


def test_bundled_second_eeg_recording_reads_without_its_ecg_channel():
    import hashlib

    from nwb_lrnn.io import read

    edf = Path(__file__).parents[1] / "benchmarks" / "data" / "Subject00_2.edf"
    # the file its README describes, byte for byte
    assert hashlib.sha256(edf.read_bytes()).hexdigest().startswith("19476db6d5f2bcd4")
    data = read(edf, bin_size=1 / 160)
    # 'EEG Fp1' ... typed EEG and renamed by their label prefix; 'ECG ECG' typed ECG, left out
    assert data.n_channels == 20 and data.channel_names[:2] == ["Fp1", "Fp2"]
    assert "ECG" not in data.channel_names and "A2-A1" in data.channel_names
    assert data.n_time == 9920 and abs(data.bin_size - 1 / 160) < 1e-12
