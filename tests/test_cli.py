"""The nwb-lrnn command: demo, version and error handling."""

import subprocess
import sys

from nwb_lrnn import __version__
from nwb_lrnn.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_demo_teacher_student_runs_and_reports_recovery(capsys):
    assert main(["demo", "--teacher-student", "--epochs", "2", "--trials", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "latent noise SD in observation space" in out
    assert "pairwise unit correlations" in out


def test_user_error_is_one_line_without_traceback(capsys):
    assert main(["demo", "--teacher-student", "--epochs", "0", "--quiet"]) == 2
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
    text = capsys.readouterr().out
    assert out.exists() and f"wrote {out}" in text
    assert "generation: bounded over" in text  # the end-of-fit check (LowRankRNN.stable_)
    assert "held-out comparison" in text and "poisson_glm1" in text  # baselines, same split
    assert "loglik/bin n/a: observation 'gaussian_sqrt' is a density" in text
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "LowRankRNN rank 2, 6 units, 3 channels, gaussian_sqrt" in text
    assert "metric generation_bounded (generation): 1" in text
    assert "metric poisson_glm1.loglik_per_bin (validation)" in text
    npy = tmp_path / "gen.npy"
    assert main(["generate", str(out), "--trials", "2", "--time", "30", "--out",
                 str(npy)]) == 0
    import numpy as np

    assert np.load(npy).shape == (2, 30, 3)
    # existing output is not overwritten without --overwrite
    assert main(["fit", str(src), "--epochs", "1", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "exists; pass --overwrite" in err and "before fitting" in err


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


# ------------------------------------------------------------------ fixed points, generate
import importlib.util  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

DATA = Path(__file__).parent / "data"
EDF = DATA / "S001R01.edf"
HAS_EDFIO = importlib.util.find_spec("edfio") is not None


def _one_line_error(capsys, contains: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("nwb-lrnn: error: ") and contains in err, err
    assert "Traceback" not in err and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def eeg_fit(tmp_path_factory):
    """A tiny clipped-ReLU fit of the bundled EEG (--epochs 1, few steps)."""
    out = tmp_path_factory.mktemp("eegfit") / "eeg.nwb"
    assert main(["fit", str(EDF), "--eeg-preprocessing", "paper", "--nonlinearity",
                 "clipped_relu", "--rank", "2", "--units",
                 "8", "--particles", "4", "--epochs", "1", "--window", "40",
                 "--steps-per-epoch", "2", "--batch-size", "2", "--lr", "1e-3", "--quiet",
                 "--out", str(out)]) == 0
    return out


def test_fit_eeg_edf_with_paper_preprocessing(eeg_fit, capsys):
    from nwb_lrnn import read_fit
    from nwb_lrnn.io import read_fit_source

    est = read_fit(eeg_fit)
    assert est.model_config_.n_channels == 64 and est.kind_ == "continuous"
    assert est.bin_size_ == pytest.approx(1 / 160)
    src = read_fit_source(eeg_fit)
    assert "preprocessing" in src and len(src["zscore"]["std"]) == 64


def test_fit_eeg_with_ar1_observation_noise(tmp_path, capsys):
    from nwb_lrnn import read_fit

    out = tmp_path / "ar.nwb"
    assert main(["fit", str(EDF), "--observation", "gaussian_ar1", "--rank", "2", "--units",
                 "8", "--particles", "4", "--epochs", "1", "--window", "40",
                 "--steps-per-epoch", "2", "--batch-size", "2", "--quiet",
                 "--out", str(out)]) == 0
    est = read_fit(out)
    assert est.model_config_.observation == "gaussian_ar1"
    assert est.parameters_["noise_x_cov"].shape == (64, 64)
    assert np.all(np.abs(est.parameters_["noise_ar"]) < 0.999)
    assert main(["info", str(out)]) == 0
    assert "gaussian_ar1 observations" in capsys.readouterr().out


def test_fixed_points_prints_stores_and_writes_csv(eeg_fit, tmp_path, capsys):
    import shutil

    import h5py
    from pynwb import NWBHDF5IO

    fit = tmp_path / "fit.nwb"
    shutil.copy(eeg_fit, fit)
    csv = tmp_path / "fp.csv"
    assert main(["fixed-points", str(fit), "--store", "--csv", str(csv), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "stability" in out and "max|λ|" in out
    summary = next(line for line in out.splitlines() if "fixed point" in line
                   and "method" in line)
    n = int(summary.split()[0])
    assert "exact, method regions" in summary
    rows = csv.read_text().splitlines()
    assert rows[0].startswith("index,z_0,z_1,stability,kind,max_abs_eig") and len(rows) == n + 1
    # stored twice: the table is replaced, not duplicated; plain pynwb reads it
    assert main(["fixed-points", str(fit), "--store", "--method", "regions", "--quiet"]) == 0
    capsys.readouterr()
    with NWBHDF5IO(str(fit), "r", load_namespaces=True) as io:
        nwb = io.read()
        mod = nwb.processing["lrnn"]
        table = mod["fixed_points"]
        assert len(table) == n
        if n:
            assert np.asarray(table["location"].data[:]).shape == (n, 2)
        assert "model" in mod.data_interfaces
    with h5py.File(fit, "r") as f:
        assert [k for k in f["processing/lrnn"] if "fixed" in k] == ["fixed_points"]
    assert not list(tmp_path.glob(".*.tmp.nwb"))


def test_fixed_points_errors_are_one_line(eeg_fit, tmp_path, capsys):
    assert main(["fixed-points", str(tmp_path / "none.nwb")]) == 2
    _one_line_error(capsys, "fit file not found")
    assert main(["fixed-points", str(DATA / "A8604-211122.nwb")]) == 2
    _one_line_error(capsys, "holds no nwb_lrnn fit")
    assert main(["fixed-points", str(eeg_fit), "--input", "a,b"]) == 2
    _one_line_error(capsys, "--input must be numbers")


@pytest.mark.parametrize("suffix", [".nwb", ".npy", ".fif", ".edf"])
def test_generate_formats(eeg_fit, tmp_path, capsys, suffix):
    out = tmp_path / f"gen{suffix}"
    args = ["generate", str(eeg_fit), "--n-times", "200", "--seed", "3", "--out", str(out)]
    if suffix == ".edf" and not HAS_EDFIO:
        assert main(args) == 2
        _one_line_error(capsys, "pip install edfio")
        return
    assert main(args) == 0 and out.exists()
    if suffix == ".npy":
        assert np.load(out).shape == (1, 200, 64)
    elif suffix == ".nwb":
        from pynwb import NWBHDF5IO

        with NWBHDF5IO(str(out), "r", load_namespaces=True) as io:
            gen = io.read().processing["lrnn"]["generated"]
            assert gen.data.shape == (200, 64) and gen.rate == pytest.approx(160.0)
    else:
        import mne

        raw = mne.io.read_raw(str(out), preload=True, verbose="error")
        assert raw.info["sfreq"] == pytest.approx(160.0) and len(raw.ch_names) == 64
        if suffix == ".edf":  # whole 1-s records: 200 samples padded to 320, and said so
            assert raw.n_times == 320 and "BAD_ACQ_SKIP" in raw.annotations.description
            assert "120 samples of edge values were appended" in capsys.readouterr().out
        else:
            assert raw.n_times == 200
        # back in volts: EEG-sized values, not z-scores
        assert np.abs(raw.get_data()).max() < 1e-2


def test_generate_errors_are_one_line(eeg_fit, tmp_path, capsys):
    assert main(["generate", str(eeg_fit), "--out", str(tmp_path / "x.txt")]) == 2
    _one_line_error(capsys, "--out must end in .nwb, .npy, .fif or .edf")
    existing = tmp_path / "e.npy"
    existing.write_bytes(b"")
    assert main(["generate", str(eeg_fit), "--out", str(existing)]) == 2
    _one_line_error(capsys, "pass --overwrite")
    assert main(["generate", str(tmp_path / "no.nwb"), "--out", str(tmp_path / "g.npy")]) == 2
    _one_line_error(capsys, "fit file not found")


def test_generate_fif_needs_an_eeg_fit(tmp_path, capsys):
    fit = tmp_path / "spk.nwb"
    assert main(["fit", str(DATA / "A8604-211122.nwb"), "--bin-size", "0.1", "--epochs", "1",
                 "--units", "4", "--rank", "1", "--window", "20", "--steps-per-epoch", "1",
                 "--quiet", "--out", str(fit)]) == 0
    capsys.readouterr()
    assert main(["generate", str(fit), "--out", str(tmp_path / "g.fif")]) == 2
    _one_line_error(capsys, "for EEG (continuous) fits")


def test_fit_eeg_errors_are_one_line(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.edf")]) == 2
    _one_line_error(capsys, "EEG file not found")
    bad = tmp_path / "bad.edf"
    bad.write_bytes(b"not an edf file at all")
    assert main(["fit", str(bad), "--quiet"]) == 2
    _one_line_error(capsys, "bad.edf")


def test_bad_option_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "x.edf", "--eeg-preprocessing", "nope"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# ------------------------------------------------------------------ DANDI
@pytest.fixture
def dandi_server(monkeypatch):
    monkeypatch.setenv("DANDI_NO_ET", "1")
    from .dandi_server import DandiServer

    with DandiServer() as srv:
        srv.add_dandiset("000128", {"sub-A8604/sub-A8604_ses-211122.nwb":
                                    DATA / "A8604-211122.nwb"}, version="0.220113.0408")
        yield srv


def test_fit_from_a_dandiset(dandi_server, tmp_path, capsys):
    out = tmp_path / "dandi_fit.nwb"
    assert main(["fit", "DANDI:000128/0.220113.0408", "--asset", "sub-A8604/*.nwb",
                 "--api-url", dandi_server.api_url, "--cache-dir", str(tmp_path / "cache"),
                 "--bin-size", "0.1", "--epochs", "1", "--units", "4", "--rank", "1",
                 "--window", "20", "--steps-per-epoch", "1", "--quiet", "--out",
                 str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    from nwb_lrnn.io import read_fit_source

    src = read_fit_source(out)
    assert json.dumps(src).count("000128") >= 1


def test_fit_from_an_unknown_dandiset_is_one_line(dandi_server, tmp_path, capsys):
    assert main(["fit", "000999", "--api-url", dandi_server.api_url, "--cache-dir",
                 str(tmp_path), "--quiet", "--out", str(tmp_path / "x.nwb")]) == 2
    _one_line_error(capsys, "000999")


# ------------------------------------------------------------------ the main job
def test_demo_fast_end_to_end(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    assert main(["demo", "--fast", "--quiet", "--out-dir", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "PhysioNet" in out and "ODC Attribution 1.0" in out
    for what in ("SMC bound per time step", "D_stsp", "D_H", "fixed point"):
        assert what in out
    fit = out_dir / "S001R01_lrnn.nwb"
    assert fit.is_file() and (out_dir / "report" / "index.html").is_file()
    import h5py

    with h5py.File(fit, "r") as f:
        mod = f["processing/lrnn"]
        assert {"model", "posterior_latents", "generated", "metrics",
                "fixed_points"} <= set(mod)
        names = [v.decode() if isinstance(v, bytes) else v for v in mod["metrics/metric"][()]]
        assert {"D_stsp", "D_H", "bound_per_step"} <= set(names)


def test_sample_eeg_is_package_data():
    from nwb_lrnn.cli import sample_eeg_path

    p = sample_eeg_path()
    assert p.is_file() and p.stat().st_size == EDF.stat().st_size
    assert p.parent.name == "sample_data" and (p.parent / "README.md").is_file()


def test_sweep_from_a_json_config_serial(tmp_path, capsys):
    import json

    from .nwb_factory import write_nwbfile

    src = write_nwbfile(tmp_path / "s.nwb", seed=3, with_obs_intervals=False)
    cfg = {"source": str(src), "out_dir": str(tmp_path / "sweep"),
           "read_kwargs": {"bin_size": 0.1},
           "search_space": {"random_state": [0, 1]},
           "fixed_params": {"rank": 1, "n_units": 6, "n_particles": 4, "max_epochs": 1,
                            "batch_size": 2}}
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(cfg))
    assert main(["sweep", str(path), "--backend", "serial"]) == 0
    out = capsys.readouterr().out
    assert "best trial of session" in out and (tmp_path / "sweep" / "summary.csv").is_file()
    assert "= None" not in out  # the real metric value is printed
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["sweep", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--rank", "0"], "--rank must be >= 1, got 0"),
    (["--bin-size", "-1"], "--bin-size must be > 0 (seconds), got -1.0"),
    (["--units", "2", "--rank", "3"], "--units must be >= --rank (3), got 2"),
    (["--validation-fraction", "1"], "--validation-fraction must be in [0, 1)"),
])
def test_fit_options_are_checked_before_any_data_is_read(tmp_path, capsys, argv, message):
    # the source does not exist: the option error proves nothing was read first
    assert main(["fit", str(tmp_path / "absent.edf"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_fit_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    for opt in ("--rank", "--units", "--particles", "--epochs", "--lr", "--seed", "--device"):
        line = text[text.index("\n  " + opt + " "):][:200]
        assert "default" in line, opt


def test_renamed_edf_names_its_format_and_the_formats_read(tmp_path, capsys):
    renamed = tmp_path / "recording.nwb"
    renamed.write_bytes(EDF.read_bytes())
    assert main(["fit", str(renamed), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "those of an EDF file: give it the .edf suffix" in err
    assert "Formats read: NWB" in err and ".bdf" in err


def test_generate_fif_says_raw_or_epochs(eeg_fit, tmp_path, capsys):
    import mne

    out = tmp_path / "two.fif"
    assert main(["generate", str(eeg_fit), "--n-trials", "2", "--n-times", "100",
                 "--out", str(out)]) == 0
    assert "as MNE Epochs, 2 trials (read with mne.read_epochs" in capsys.readouterr().out
    assert len(mne.read_epochs(out, verbose="error")) == 2


def test_fit_a_whole_dandiset_one_fit_per_session(tmp_path, capsys, monkeypatch):
    """`nwb-lrnn fit DANDI:000xxx` fits every session (their neurons differ), one results file
    each and a summary table that does not rank sessions against each other."""
    import csv

    monkeypatch.setenv("DANDI_NO_ET", "1")
    from .dandi_server import DandiServer
    from .nwb_factory import TINY_FIT_ARGS, add_two_sessions

    out = tmp_path / "fits"
    with DandiServer() as srv:
        add_two_sessions(srv, tmp_path, "000200")
        args = ["--api-url", srv.api_url, "--cache-dir", str(tmp_path / "cache"),
                "--epochs", "1", *TINY_FIT_ARGS]
        assert main(["fit", "DANDI:000200", *args, "--out", str(out / "x.nwb")]) == 2
        assert "--out must be a folder" in capsys.readouterr().err
        assert main(["fit", "DANDI:000200", *args, "--out", str(out)]) == 0
        text = capsys.readouterr().out
        assert "2 sessions, one fit each" in text and "not ranked" in text
        with open(out / "summary.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["units"] for r in rows] == ["3", "5"]
        assert {r["results"] for r in rows} == {"sub-a_ses-1_ecephys_lrnn.nwb",
                                                "sub-b_ses-1_ecephys_lrnn.nwb"}
        assert all((out / r["results"]).exists() for r in rows)
        # taken results files are refused before anything is fitted
        assert main(["fit", "DANDI:000200", *args, "--out", str(out)]) == 2
        assert "checked before fitting" in capsys.readouterr().err
        # an interrupted run: --skip-existing fits only the sessions without results
        done = out / "sub-a_ses-1_ecephys_lrnn.nwb"
        (out / "sub-b_ses-1_ecephys_lrnn.nwb").unlink()
        before = done.stat().st_mtime_ns
        assert main(["fit", "DANDI:000200", *args, "--out", str(out), "--skip-existing"]) == 0
        assert "skipped (--skip-existing)" in capsys.readouterr().out
        assert done.stat().st_mtime_ns == before
        assert (out / "sub-b_ses-1_ecephys_lrnn.nwb").exists()
        with open(out / "summary.csv") as fh:
            assert [r["status"] for r in csv.DictReader(fh)] == ["skipped", "ok"]


def test_fit_a_dandiset_with_one_shared_model(tmp_path, capsys, monkeypatch):
    """`--shared`: one latent dynamics for the sessions, a readout each, one results file
    with a module per session that reloads as a model of that session."""
    monkeypatch.setenv("DANDI_NO_ET", "1")
    from nwb_lrnn.stitch import read_shared

    from .dandi_server import DandiServer
    from .nwb_factory import TINY_FIT_ARGS, add_two_sessions

    out = tmp_path / "shared.nwb"
    with DandiServer() as srv:
        add_two_sessions(srv, tmp_path, "000202")
        args = ["fit", "DANDI:000202", "--api-url", srv.api_url, "--cache-dir",
                str(tmp_path / "cache"), "--epochs", "4", *TINY_FIT_ARGS, "--shared",
                "--out", str(out)]
        assert main(args) == 0, capsys.readouterr().err
        text = capsys.readouterr().out
        assert "2 sessions, one shared model (3, 5 units)" in text
        fits = read_shared(out)
        assert sorted(fits) == ["lrnn_sub-a_ses-1_ecephys", "lrnn_sub-b_ses-1_ecephys"]
        a, b = fits.values()
        assert [f.parameters_["C"].shape[0] for f in (a, b)] == [3, 5]
        np.testing.assert_array_equal(a.parameters_["U"], b.parameters_["U"])
        assert b.sample(1, 10, random_state=0).values.shape == (1, 10, 5)
        # taken: refused before fitting
        assert main(args) == 2
        assert "exists" in capsys.readouterr().err
        # one session is no shared model
        assert main([*args[:-2], "--asset", "sub-a/*", "--out", str(tmp_path / "o.nwb")]) == 2
        assert "--shared fits one model across sessions" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--address", "auto"], "--address names a Ray cluster: give --backend ray too"),
    (["--shared", "--backend", "ray"], "--backend ray does not apply"),
    (["--shared", "--append"], "--append and --skip-existing do not apply"),
    (["--backend", "ray", "--subject-id", "m1"], "--subject-id apply(ies) to --backend serial"),
    (["--backend", "ray", "--checkpoint", "none"], "--checkpoint apply(ies)"),
])
def test_session_options_that_do_not_go_together_are_refused_first(extra, message, capsys):
    assert main(["fit", "DANDI:000200", "--api-url", "http://127.0.0.1:9/api", *extra]) == 2
    assert message in capsys.readouterr().err


def test_session_options_on_one_recording_are_refused(tmp_path, capsys):
    from .nwb_factory import write_nwbfile

    one = write_nwbfile(tmp_path / "one.nwb")
    assert main(["fit", str(one), "--skip-existing"]) == 2
    assert "are for the sessions of a dandiset" in capsys.readouterr().err


def test_a_session_that_fails_does_not_stop_the_others(tmp_path, capsys, monkeypatch):
    import csv

    import nwb_lrnn.cli as cli

    from .dandi_server import DandiServer
    from .nwb_factory import TINY_FIT_ARGS, add_two_sessions

    monkeypatch.setenv("DANDI_NO_ET", "1")
    real = cli._fit_one

    def fit_one(args, data, out):
        if "sub-a" in data.provenance["asset_path"]:
            raise ValueError("this session's fit diverged")
        return real(args, data, out)

    monkeypatch.setattr(cli, "_fit_one", fit_one)
    with DandiServer() as srv:
        add_two_sessions(srv, tmp_path, "000203")
        assert main(["fit", "DANDI:000203", "--api-url", srv.api_url, "--cache-dir",
                     str(tmp_path / "cache"), "--epochs", "1", *TINY_FIT_ARGS, "--out",
                     str(tmp_path / "fits")]) == 1
    assert "1 of 2 sessions failed" in capsys.readouterr().out
    with open(tmp_path / "fits" / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["error", "ok"]
    assert "diverged" in rows[0]["error"]
    assert (tmp_path / "fits" / rows[1]["results"]).exists()


def test_fit_decodes_behaviour_beside_pca_and_fa(tmp_path, capsys):
    from nwb_lrnn.baselines import stored_decoding
    from nwb_lrnn.io.fit_nwb import summarize_fit
    from tests.test_spikes import write_nlb_file

    src, *_ = write_nlb_file(tmp_path / "reach.nwb")
    out = tmp_path / "fit.nwb"
    args = ["fit", str(src), "--bin-size", "0.05", "--epochs", "2", "--units", "8", "--rank",
            "2", "--window", "50", "--steps-per-epoch", "2", "--quiet", "--out", str(out)]
    # a series the file does not hold fails before any training, naming the ones it holds
    assert main([*args, "--behavior", "hand_pos"]) == 2
    err = capsys.readouterr().err
    assert "--behavior" in err and "hand_vel" in err and "checked before fitting" in err
    assert not out.exists()
    assert main([*args, "--behavior", "hand_vel"]) == 0
    text = capsys.readouterr().out
    assert "behaviour decoded (R², cross-validated ridge" in text
    table = text[text.index("behaviour decoded"):].splitlines()[1:5]
    assert table[0].split() == ["model", "hand_vel"]
    assert [ln.split()[0] for ln in table[1:]] == ["lowrank_rnn", "pca", "fa"]
    stored = stored_decoding(summarize_fit(out)["metrics"])
    assert set(stored) == {"lowrank_rnn", "pca", "fa"}
    for ln in table[1:]:  # the printed R² is the stored one
        model, value = ln.split()
        assert float(value.rstrip("*")) == round(stored[model]["hand_vel"], 3)
    # the report shows it
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "Behaviour decoded from the latents" in page and "hand_vel" in page


def test_behavior_needs_a_local_nwb_file(capsys):
    from pathlib import Path

    eeg = Path(__file__).parent / "data" / "S001R01.edf"
    assert main(["fit", str(eeg), "--behavior", "hand_vel", "--epochs", "1", "--quiet",
                 "--out", "never_written.nwb"]) == 2
    assert "--behavior reads behavioural series from a local NWB file" in capsys.readouterr().err
    assert not Path("never_written.nwb").exists()
