"""Fit files and NWB sources made by someone else: nothing outside the file is read, sizes are
checked before allocating, JSON is parsed with limits, and every refusal names the file."""

import json
import os
import signal
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_lrnn import LowRankRNN, read_fit, write_nwb
from nwb_lrnn.io import FitFileError, NWBReadError, read_nwb
from nwb_lrnn.io.fit_nwb import summarize_fit
from nwb_lrnn.teachers import oscillator_teacher

from .nwb_factory import write_nwbfile


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory):
    data = oscillator_teacher(6, 2).sample(3, 20, random_state=0)
    est = LowRankRNN(rank=2, n_units=6, max_epochs=1, n_particles=4, verbose=False,
                     random_state=0).fit(data)
    return write_nwb(est, tmp_path_factory.mktemp("fit") / "fit.nwb", data=data,
                     include=("model",))


def _model_path(f) -> str:
    for mname, mod in f["processing"].items():
        for oname, obj in mod.items():
            if obj.attrs.get("neurodata_type") in ("LowRankRNNModel", b"LowRankRNNModel"):
                return f"processing/{mname}/{oname}"
    raise AssertionError("no model group")


def _crafted(fit_file, tmp_path, edit) -> Path:
    path = tmp_path / "crafted.nwb"
    path.write_bytes(Path(fit_file).read_bytes())
    with h5py.File(path, "a") as f:
        edit(f, f[_model_path(f)])
    return path


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "secret.bin"
    p.write_bytes(np.full(1000, 7.0).tobytes())
    return p


class _Deadline:
    """Fail, instead of hanging the suite, when a read blocks (a FIFO) for over 10 s."""

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGALRM, self._fire)
            signal.alarm(10)
        return self

    @staticmethod
    def _fire(*_):
        raise TimeoutError("the read blocked for 10 s")

    def __exit__(self, *exc):
        signal.alarm(0)
        return False


def _replace(g, name, make):
    del g[name]
    make(g, name)


def test_external_storage_is_refused_and_names_the_file(fit_file, tmp_path, secret):
    def edit(f, g):
        n = g["state_values"].shape[0]
        _replace(g, "state_values", lambda g, k: g.create_dataset(
            k, shape=(n,), dtype="f8", external=[(str(secret), 0, 8 * n)]))

    path = _crafted(fit_file, tmp_path, edit)
    with pytest.raises(FitFileError, match="external file") as info:
        read_fit(path)
    assert str(path) in str(info.value) and "state_values" in str(info.value)


def test_external_storage_on_a_fifo_does_not_block(fit_file, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def edit(f, g):
        n = g["state_values"].shape[0]
        _replace(g, "state_values", lambda g, k: g.create_dataset(
            k, shape=(n,), dtype="f8", external=[(str(fifo), 0, 8 * n)]))

    path = _crafted(fit_file, tmp_path, edit)
    with _Deadline(), pytest.raises(FitFileError, match="external"):
        read_fit(path)


def test_a_fifo_named_as_the_fit_file_is_refused(tmp_path):
    fifo = tmp_path / "fit.nwb"
    os.mkfifo(fifo)
    with _Deadline(), pytest.raises(FitFileError, match="not a regular file"):
        read_fit(fifo)


def test_external_link_is_refused(fit_file, tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as o:
        o["x"] = np.ones(10)

    def edit(f, g):
        _replace(g, "state_values", lambda g, k: g.__setitem__(
            k, h5py.ExternalLink(str(other), "/x")))

    with pytest.raises(FitFileError, match="external link"):
        read_fit(_crafted(fit_file, tmp_path, edit))


def test_external_link_on_the_way_to_the_model_is_refused(fit_file, tmp_path):
    other = tmp_path / "other.nwb"
    other.write_bytes(Path(fit_file).read_bytes())

    def edit(f, g):
        del f["processing"]
        f["processing"] = h5py.ExternalLink(str(other), "/processing")

    path = _crafted(fit_file, tmp_path, edit)
    for reader in (read_fit, summarize_fit):
        with pytest.raises(FitFileError, match="external link"):
            reader(path)


def test_virtual_dataset_is_refused(fit_file, tmp_path, secret):
    other = tmp_path / "other.h5"

    def edit(f, g):
        n = g["state_values"].shape[0]
        with h5py.File(other, "w") as o:
            o["x"] = np.ones(n)
        layout = h5py.VirtualLayout(shape=(n,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(other), "x", shape=(n,))
        _replace(g, "state_values", lambda g, k: g.create_virtual_dataset(k, layout))

    with pytest.raises(FitFileError, match="virtual dataset"):
        read_fit(_crafted(fit_file, tmp_path, edit))


def test_soft_link_cycle_is_refused(fit_file, tmp_path):
    def edit(f, g):
        _replace(g, "state_values", lambda g, k: g.__setitem__(k, h5py.SoftLink(g.name + "/a")))
        g["a"] = h5py.SoftLink(g.name + "/state_values")

    with pytest.raises(FitFileError, match="soft links"):
        read_fit(_crafted(fit_file, tmp_path, edit))


def test_internal_soft_link_is_followed(fit_file, tmp_path):
    def edit(f, g):
        f.move(g.name + "/state_values", "/kept_values")
        g["state_values"] = h5py.SoftLink("/kept_values")

    twin = read_fit(_crafted(fit_file, tmp_path, edit))
    ref = read_fit(fit_file)
    np.testing.assert_array_equal(twin.parameters_["U"], ref.parameters_["U"])


def test_declared_size_beyond_what_is_stored_is_refused_before_reading(fit_file, tmp_path):
    def edit(f, g):
        _replace(g, "state_values", lambda g, k: g.create_dataset(
            k, shape=(10**9,), dtype="f8", chunks=(10**6,)))  # 7.45 GiB of fill values

    path = _crafted(fit_file, tmp_path, edit)
    assert path.stat().st_size < 10 * 2**20
    with pytest.raises(FitFileError, match=r"declares shape \(1000000000,\)"):
        read_fit(path)


def test_deep_json_is_a_fit_file_error_not_a_recursion_error(fit_file, tmp_path):
    deep = "[" * 100_000 + "]" * 100_000

    def edit(f, g):
        g.attrs["model_config"] = deep

    path = _crafted(fit_file, tmp_path, edit)
    for reader in (read_fit, summarize_fit):
        with pytest.raises(FitFileError, match="nests deeper"):
            reader(path)


def test_deep_json_in_the_source_attribute(fit_file, tmp_path):
    def edit(f, g):
        g.attrs["source"] = '{"a": ' * 5000 + "1" + "}" * 5000

    with pytest.raises(FitFileError, match="source"):
        read_fit(_crafted(fit_file, tmp_path, edit))


def test_json_with_brackets_inside_strings_is_not_mistaken_for_depth(fit_file, tmp_path):
    def edit(f, g):
        src = json.loads(g.attrs.get("source", "{}"))
        src["note"] = "[" * 1000
        g.attrs["source"] = json.dumps(src)

    twin = read_fit(_crafted(fit_file, tmp_path, edit))
    assert twin.parameters_["U"].shape == (6, 2)


def test_a_crafted_size_setting_cannot_allocate(fit_file, tmp_path):
    def edit(f, g):
        cfg = json.loads(g.attrs["model_config"])
        cfg["model"]["n_units"] = 10**9
        g.attrs["model_config"] = json.dumps(cfg)

    with pytest.raises(FitFileError, match="n_units=1000000000"):
        read_fit(_crafted(fit_file, tmp_path, edit))


@pytest.mark.parametrize("history, what", [
    ({"kept_epoch": 10**6}, "kept_epoch should be an epoch index"),
    ({"best_epoch": "2"}, "best_epoch should be an epoch index"),
    ({"seconds": float("nan")}, "seconds should be a finite number"),
    ({"train_bound": [1.0]}, "keys among"),
    ([1], "should be an object")])
def test_the_history_scalars_are_checked(fit_file, tmp_path, history, what):
    def edit(f, g):
        cfg = json.loads(g.attrs["model_config"])
        cfg["meta"]["history"] = history
        g.attrs["model_config"] = json.dumps(cfg)

    with pytest.raises(FitFileError, match=what):
        read_fit(_crafted(fit_file, tmp_path, edit))


def test_state_shapes_must_be_small_integer_lists(fit_file, tmp_path):
    def edit(f, g):
        shapes = [s.decode() if isinstance(s, bytes) else s for s in g["state_shapes"][()]]
        shapes[0] = json.dumps([-1])
        del g["state_shapes"]
        g["state_shapes"] = np.array(shapes, dtype=h5py.string_dtype())

    with pytest.raises(FitFileError, match="state_shapes"):
        read_fit(_crafted(fit_file, tmp_path, edit))


# ------------------------------------------------------------------------------ NWB sources
def _units_edit(path, edit):
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def test_nwb_source_with_external_spike_times_is_refused(tmp_path, secret):
    path = write_nwbfile(tmp_path / "rec.nwb")

    def edit(f):
        n = f["units/spike_times"].shape[0]
        del f["units/spike_times"]
        f["units"].create_dataset("spike_times", shape=(n,), dtype="f8",
                                  external=[(str(secret), 0, 8 * n)])

    _units_edit(path, edit)
    with pytest.raises(NWBReadError, match="external file") as info:
        read_nwb(path, bin_size=0.1)
    assert str(path) in str(info.value)


def test_nwb_source_linking_its_units_out_needs_allow_external(tmp_path):
    real = write_nwbfile(tmp_path / "real.nwb")
    path = write_nwbfile(tmp_path / "rec.nwb")

    def edit(f):
        del f["units"]
        f["units"] = h5py.ExternalLink(str(real), "/units")

    _units_edit(path, edit)
    with pytest.raises(NWBReadError, match="external link"):
        read_nwb(path, bin_size=0.1)
    linked = read_nwb(path, bin_size=0.1, allow_external=True)
    direct = read_nwb(real, bin_size=0.1)
    np.testing.assert_array_equal(linked.values, direct.values)


def test_nwb_source_declaring_huge_spike_times_is_refused(tmp_path):
    path = write_nwbfile(tmp_path / "rec.nwb")

    def edit(f):
        del f["units/spike_times"]
        f["units"].create_dataset("spike_times", shape=(2 * 10**9,), dtype="f8",
                                  chunks=(10**6,))

    _units_edit(path, edit)
    with pytest.raises(NWBReadError, match="declares shape"):
        read_nwb(path, bin_size=0.1)


def test_external_links_elsewhere_in_a_source_do_not_matter(tmp_path):
    """Only what is read is checked: a link in an unrelated group is not followed or refused."""
    path = write_nwbfile(tmp_path / "rec.nwb")
    ref = read_nwb(path, bin_size=0.1)
    _units_edit(path, lambda f: f.__setitem__("acquisition/elsewhere",
                                              h5py.ExternalLink("/nonexistent.h5", "/x")))
    np.testing.assert_array_equal(read_nwb(path, bin_size=0.1).values, ref.values)


def test_behaviour_reader_refuses_a_file_pointing_outside(tmp_path):
    from nwb_lrnn.io import read_behavior

    path = write_nwbfile(tmp_path / "rec.nwb")
    _units_edit(path, lambda f: f.__setitem__("acquisition/elsewhere",
                                              h5py.ExternalLink("/etc/hostname", "/x")))
    with pytest.raises(NWBReadError, match="external link"):
        read_behavior(path, "anything", bin_size=0.1)


def test_json_of_escaped_quotes_is_checked_in_linear_time(fit_file, tmp_path):
    import time

    def edit(f, g):
        g.attrs["source"] = "[" * 65 + '"' + '\\"' * 1_000_000

    path = _crafted(fit_file, tmp_path, edit)
    t0 = time.monotonic()
    with pytest.raises(FitFileError, match="source"):
        read_fit(path)
    assert time.monotonic() - t0 < 10


def test_a_fan_out_of_soft_links_is_cut_by_one_budget(fit_file, tmp_path):
    """Each level links to a path through the next level k times: a per-level limit would take
    k**levels lookups; one budget for the whole lookup refuses it at once."""
    import time

    def edit(f, g):
        del f["processing"]
        for lvl in range(2, 12):
            nxt = "/" + "/".join([f"L{lvl + 1}"] * 3) if lvl < 11 else "/"
            f[f"L{lvl}"] = h5py.SoftLink(nxt)
        f["processing"] = h5py.SoftLink("/" + "/".join(["L2"] * 3))

    path = _crafted(fit_file, tmp_path, edit)
    t0 = time.monotonic()
    with pytest.raises(FitFileError, match="soft links"):
        read_fit(path)
    assert time.monotonic() - t0 < 10
