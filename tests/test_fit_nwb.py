"""Sharing a fit as one NWB file: ndx-lrnn extension, write_nwb, read_fit."""

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_lrnn import BinnedData, LowRankRNN, NotFittedError, read_fit, write_nwb
from nwb_lrnn.io import FitFileError, read_nwb
from nwb_lrnn.teachers import oscillator_teacher

PYNAPPLE = Path(__file__).parent / "data" / "A8604-211122.nwb"
SUBJECT = dict(subject_id="m1", species="Mus musculus", sex="M", age="P90D",
               description="test mouse")


@pytest.fixture(scope="module")
def gauss_fit():
    data = oscillator_teacher(6, 2).sample(4, 30, random_state=0)
    est = LowRankRNN(rank=2, n_units=6, max_epochs=3, n_particles=4, verbose=False,
                     validation_fraction=0.25, random_state=3).fit(data)
    return est, data


@pytest.fixture(scope="module")
def spike_fit():
    data = read_nwb(PYNAPPLE, bin_size=0.1, time_range=(0.0, 120.0)).windows(100)
    est = LowRankRNN(rank=2, n_units=8, max_epochs=2, n_particles=4, verbose=False,
                     observation="poisson", random_state=1).fit(data)
    return est, data


@pytest.mark.parametrize("which", ["gauss_fit", "spike_fit"])
def test_round_trip_regenerates_the_same_output(which, request, tmp_path):
    est, data = request.getfixturevalue(which)
    path = write_nwb(est, tmp_path / "fit.nwb", data=data, subject=SUBJECT)
    twin = read_fit(path)
    np.testing.assert_array_equal(twin.sample(3, 40, random_state=7).values,
                                  est.sample(3, 40, random_state=7).values)
    np.testing.assert_allclose(twin.transform(data), est.transform(data), atol=1e-5)
    assert twin.history_.train_bound == pytest.approx(est.history_.train_bound)
    assert twin.get_params()["rank"] == est.rank
    for k, v in est.parameters_.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(twin.parameters_[k], v)


def test_written_contents_and_provenance(spike_fit, tmp_path):
    from pynwb import NWBHDF5IO

    est, data = spike_fit
    path = write_nwb(est, tmp_path / "fit.nwb", data=data)
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        mod = nwb.processing["lrnn"]
        assert set(mod.data_interfaces) == {"model", "posterior_latents", "generated",
                                            "metrics"}
        model = mod["model"]
        np.testing.assert_allclose(model.U[:], est.parameters_["U"], rtol=1e-6)
        assert model.rank == 2 and model.observation == "poisson"
        assert '"source_sha256"' in model.source and "A8604-211122.nwb" in model.source
        lat = mod["posterior_latents"]
        assert lat.data.shape == (data.n_trials * data.n_time, 2)
        assert lat.spread.shape == lat.data.shape
        gen = mod["generated"]
        assert gen.kind == "counts" and gen.data.shape == (data.n_trials * data.n_time, 3)
        assert nwb.subject.subject_id == ""  # copied from the source file (which has none)
        assert nwb.session_start_time.isoformat().startswith("2022-04-05")
        metrics = mod["metrics"].to_dataframe()
        assert metrics["metric"].tolist() == ["bound_per_step", "generation_bounded",
                                              "generation_max_abs_z_ratio",
                                              "generation_scale_ratio"]
        assert metrics["value"].iloc[1] == float(est.stable_)


def test_opens_with_plain_pynwb_without_nwb_lrnn(gauss_fit, tmp_path):
    est, data = gauss_fit
    path = write_nwb(est, tmp_path / "fit.nwb", data=data, subject=SUBJECT)
    code = (
        "import sys; sys.modules['nwb_lrnn'] = None\n"  # nwb_lrnn cannot be imported
        "from pynwb import NWBHDF5IO\n"
        f"io = NWBHDF5IO({str(path)!r}, 'r', load_namespaces=True)\n"
        "nwb = io.read()\n"
        "m = nwb.processing['lrnn']['model']\n"
        "print(type(m).__name__, m.U[:].shape, nwb.processing['lrnn']['generated'].data.shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["LowRankRNNModel", "(6,", "2)", "(120,", "6)"]


def test_pynwb_validation_and_nwbinspector(gauss_fit, tmp_path):
    import pynwb
    from nwbinspector import Importance, inspect_nwbfile

    est, data = gauss_fit
    path = write_nwb(est, tmp_path / "fit.nwb", data=data, subject=SUBJECT)
    assert list(pynwb.validate(path=str(path))) == []
    bad = [m for m in inspect_nwbfile(nwbfile_path=str(path))
           if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION,
                               Importance.ERROR, Importance.PYNWB_VALIDATION)]
    assert bad == [], [(m.check_function_name, m.message) for m in bad]
    # what dandi validate needs of a single file
    with h5py.File(path, "r") as f:
        for key in ("identifier", "session_description", "session_start_time",
                    "general/subject/subject_id", "general/subject/species",
                    "general/subject/sex", "general/subject/age"):
            assert key in f, key


def test_append_adds_a_module_and_keeps_the_original_data(spike_fit, tmp_path):
    est, data = spike_fit
    target = tmp_path / "session.nwb"
    shutil.copy(PYNAPPLE, target)
    write_nwb(est, target, data=data, mode="append")
    again = read_nwb(target, bin_size=0.1, time_range=(0.0, 120.0))
    np.testing.assert_array_equal(again.values.sum((0, 1)),
                                  read_nwb(PYNAPPLE, bin_size=0.1,
                                           time_range=(0.0, 120.0)).values.sum((0, 1)))
    assert read_fit(target).rank == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.nwb"]  # no temp left


def test_failed_append_leaves_the_file_untouched(spike_fit, tmp_path, monkeypatch):
    import nwb_lrnn.io.fit_nwb as fit_nwb

    est, data = spike_fit
    target = tmp_path / "session.nwb"
    shutil.copy(PYNAPPLE, target)
    before = target.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fit_nwb, "_append", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_nwb(est, target, data=data, mode="append")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.nwb"]


def test_source_file_not_modified_by_new_mode(spike_fit, tmp_path):
    est, data = spike_fit
    before = PYNAPPLE.read_bytes()
    write_nwb(est, tmp_path / "fit.nwb", data=data)
    assert PYNAPPLE.read_bytes() == before


# ----------------------------------------------------------------------------- bad input
def test_existing_path_needs_overwrite(gauss_fit, tmp_path):
    est, _ = gauss_fit
    path = tmp_path / "fit.nwb"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="fit.nwb exists; pass overwrite=True"):
        write_nwb(est, path)
    assert path.read_bytes() == b"keep me"
    write_nwb(est, path, overwrite=True)
    assert read_fit(path).rank == 2


def test_unfitted_estimator_and_bad_options(gauss_fit, tmp_path):
    with pytest.raises(NotFittedError, match="write_nwb needs a fitted LowRankRNN"):
        write_nwb(LowRankRNN(), tmp_path / "x.nwb")
    est, _ = gauss_fit
    with pytest.raises(ValueError, match=r"'include'.*got 'everything'"):
        write_nwb(est, tmp_path / "x.nwb", include=("model", "everything"))
    with pytest.raises(ValueError, match=r"'mode'.*got 'overwrite'"):
        write_nwb(est, tmp_path / "x.nwb", mode="overwrite")
    with pytest.raises(FileNotFoundError, match="mode='append' needs an existing NWB file"):
        write_nwb(est, tmp_path / "missing.nwb", mode="append")
    other = BinnedData(np.zeros((1, 10, 3)), 1.0, "continuous")
    with pytest.raises(ValueError, match="has 3 channels but the model was fitted on 6"):
        write_nwb(est, tmp_path / "x.nwb", data=other)
    assert not (tmp_path / "x.nwb").exists()


def test_read_fit_errors(gauss_fit, tmp_path):
    with pytest.raises(FileNotFoundError, match="fit file not found"):
        read_fit(tmp_path / "none.nwb")
    with pytest.raises(FitFileError, match="holds no nwb_lrnn fit"):
        read_fit(PYNAPPLE)
    est, data = gauss_fit
    good = write_nwb(est, tmp_path / "fit.nwb", data=data)
    missing = tmp_path / "missing.nwb"
    shutil.copy(good, missing)
    with h5py.File(missing, "a") as f:
        del f["processing/lrnn/model/state_values"]
    with pytest.raises(FitFileError, match="has no dataset 'state_values'"):
        read_fit(missing)
    shaped = tmp_path / "shaped.nwb"
    shutil.copy(good, shaped)
    with h5py.File(shaped, "a") as f:
        keys = [k.decode() for k in f["processing/lrnn/model/state_keys"][()]]
        shapes = f["processing/lrnn/model/state_shapes"]
        i = keys.index("model.transition.U_t")
        vals = [s.decode() for s in shapes[()]]
        vals[i] = "[3, 4]"  # same number of values (2 x 6), wrong shape
        del f["processing/lrnn/model/state_shapes"]
        f["processing/lrnn/model"].create_dataset("state_shapes", data=vals)
    with pytest.raises(FitFileError, match=r"'model.transition.U_t' has shape \(3, 4\), "
                                            r"expected \(2, 6\)"):
        read_fit(shaped)


def test_committed_spec_matches_the_generator(tmp_path):
    """The committed spec (and the one the installed ndx_lrnn loads) is what the extension's
    generator writes, and the package's version is the spec's."""
    import ndx_lrnn

    root = Path(__file__).resolve().parents[1] / "extensions" / "ndx-lrnn"
    script = root / "src" / "spec" / "create_extension_spec.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True,
                   capture_output=True)
    installed = Path(ndx_lrnn.NAMESPACE_PATH).parent
    for name in ("ndx-lrnn.namespace.yaml", "ndx-lrnn.extensions.yaml"):
        generated = (tmp_path / name).read_text()
        assert generated == (root / "spec" / name).read_text(), name
        assert generated == (installed / name).read_text(), f"installed {name} is stale"
    version = next(line.split("=", 1)[1].split("#")[0].strip().strip('"')
                   for line in (root / "pyproject.toml").read_text().splitlines()
                   if line.startswith("version"))
    assert version == ndx_lrnn.__version__


def test_a_fit_appended_to_its_recording_links_the_units_it_observes(tmp_path):
    """The model's channels are rows of the recording's Units table (a DynamicTableRegion)."""
    from pynwb import NWBHDF5IO

    target = tmp_path / "session.nwb"
    shutil.copy(PYNAPPLE, target)
    data = read_nwb(target, bin_size=0.1, time_range=(0.0, 60.0), units=[206, 6]).windows(100)
    est = LowRankRNN(rank=2, n_units=6, max_epochs=1, n_particles=4, verbose=False,
                     random_state=0).fit(data)
    write_nwb(est, target, data=data, mode="append")
    with NWBHDF5IO(str(target), "r", load_namespaces=True) as io:
        nwb = io.read()
        region = nwb.processing["lrnn"]["model"].channels
        assert region.table is nwb.units
        assert [int(nwb.units.id[i]) for i in region.data[:]] == [206, 6]
    # a results file of its own has no such link (another file's rows cannot be referenced)
    other = write_nwb(est, tmp_path / "fit.nwb", data=data)
    with NWBHDF5IO(str(other), "r", load_namespaces=True) as io:
        assert io.read().processing["lrnn"]["model"].channels is None


def test_appending_to_an_older_nwb_file_says_its_version_changes(spike_fit, tmp_path, caplog):
    import logging

    est, data = spike_fit
    target = tmp_path / "session.nwb"
    shutil.copy(PYNAPPLE, target)  # written as NWB 2.4.0
    with h5py.File(target, "r") as f:
        before = f.attrs["nwb_version"]
    with caplog.at_level(logging.WARNING, logger="nwb_lrnn"):
        write_nwb(est, target, data=data, mode="append")
    with h5py.File(target, "r") as f:
        after = f.attrs["nwb_version"]
    if after != before:
        assert f"(it was NWB {before})" in caplog.text
    else:  # pragma: no cover - a pynwb that keeps the version
        assert "rewrote the file" not in caplog.text


def test_dandi_validate_passes_on_a_fit_organized_into_a_dandiset(spike_fit, tmp_path):
    # the names `dandi organize` gives, then `dandi validate` (both offline); a fit without a
    # Subject fails it, so the check can fail
    est, data = spike_fit
    dandi = [str(Path(sys.executable).parent / "dandi")]
    env = {"DANDI_NO_ET": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for name, subject in (("good", SUBJECT), ("bare", None)):
        src, ds = tmp_path / f"src_{name}", tmp_path / f"ds_{name}"
        src.mkdir()
        write_nwb(est, src / "fit.nwb", data=data, subject=subject)
        ds.mkdir()
        (ds / "dandiset.yaml").write_text("identifier: DANDI:000000\nname: fits\n"
                                          "description: nwb_lrnn fits\n")
        org = subprocess.run([*dandi, "organize", "-f", "copy", "-d", str(ds), str(src)],
                             capture_output=True, text=True, env=env, timeout=300)
        placed = sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*.nwb"))
        val = subprocess.run([*dandi, "validate", str(ds)], capture_output=True, text=True,
                             env=env, timeout=300)
        if name == "good":
            assert org.returncode == 0, org.stderr
            assert placed == ["sub-m1/sub-m1.nwb"]
            assert val.returncode == 0 and "No errors found" in val.stdout + val.stderr, (
                val.stdout + val.stderr)
        else:  # organize cannot name it, or validate reports the missing Subject
            assert not placed or "Subject is missing" in val.stdout + val.stderr


def _inspector_problems(path):
    from nwbinspector import Importance, inspect_nwbfile

    return [(m.check_function_name, m.object_name, m.message)
            for m in inspect_nwbfile(nwbfile_path=str(path))
            if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION,
                                Importance.ERROR, Importance.PYNWB_VALIDATION)]


@pytest.mark.parametrize("kind", ["counts", "fixed_points", "surrogate", "appended", "eeg"])
def test_nwbinspector_finds_nothing_serious_in_any_kind_of_file_written(kind, spike_fit,
                                                                        tmp_path, request):
    from nwb_lrnn import find_fixed_points
    from nwb_lrnn.io import store_fixed_points

    est, data = spike_fit
    path = tmp_path / "out.nwb"
    if kind == "counts":
        write_nwb(est, path, data=data, subject=SUBJECT)
    elif kind == "fixed_points":
        write_nwb(est, path, data=data, subject=SUBJECT)
        store_fixed_points(path, find_fixed_points(est, verbose=False))
    elif kind == "surrogate":
        write_nwb(est, path, include=("model", "generated"), n_generated=(2, 50),
                  subject=SUBJECT)
    elif kind == "appended":
        shutil.copy(PYNAPPLE, path)
        before = {p[:2] for p in _inspector_problems(path)}  # the recording's own
        write_nwb(est, path, data=data, mode="append")
        new = [p for p in _inspector_problems(path) if p[:2] not in before]
        assert new == [], new
        return
    else:
        raw = request.getfixturevalue("raw")
        raw.pick(raw.ch_names[:4]).crop(0, 5)
        eeg = LowRankRNN(rank=1, n_units=4, n_particles=2, max_epochs=1, window=20,
                         steps_per_epoch=1, random_state=0, verbose=False).fit(raw)
        write_nwb(eeg, path, data=eeg._as_data(raw),
                  subject=dict(subject_id="S001", species="Homo sapiens", sex="U",
                               age="P0D/"))
    assert _inspector_problems(path) == []


def test_a_fit_with_a_three_layer_encoder_round_trips(tmp_path):
    data = read_nwb(PYNAPPLE, bin_size=0.1, time_range=(0.0, 60.0)).windows(50)
    est = LowRankRNN(rank=2, n_units=8, max_epochs=1, n_particles=4, verbose=False,
                     observation="poisson", encoder_kernel=(5, 3, 1), encoder_hidden=16,
                     encoder_causal=True,
                     encoder_padding="circular", random_state=1).fit(data)
    assert [c.kernel_size[0] for c in est.proposal_.encoder.convs] == [5, 3, 1]
    twin = read_fit(write_nwb(est, tmp_path / "fit.nwb", data=data))
    assert twin.get_params()["encoder_kernel"] in ([5, 3, 1], (5, 3, 1))
    assert twin.encoder_padding == "circular"
    np.testing.assert_allclose(twin.transform(data), est.transform(data), atol=1e-5)
