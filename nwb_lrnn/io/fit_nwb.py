"""Write a fitted model to NWB through the ndx-lrnn extension, and read it back.

The extension is its own package, ``ndx-lrnn`` (``extensions/ndx-lrnn``); its schema is cached
into every file written, so a written file opens with plain pynwb (or with ``ndx_lrnn``'s
classes) where nwb_lrnn is not installed. No pickle anywhere: parameters are NWB datasets,
settings are JSON attributes.

Writes are atomic: a new file is written next to the target under a temporary name and moved
into place; ``mode="append"`` copies the existing file, adds the processing module to the copy
and replaces the original only when everything was written.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import check_option
from ..data import BinnedData
from . import _hdf5 as _h5
from .records import FitRecord, FitResults

__all__ = ["FitFileError", "check_fit_target", "fit_modules", "load_extension", "read_fit_record",
           "read_fit_source", "store_fixed_points", "summarize_fit", "write_fit"]

logger = logging.getLogger(__name__)

NAMESPACE = "ndx-lrnn"
MODULE_NAME = "lrnn"
INCLUDE = ("model", "latents", "generated", "metrics", "fixed_points")


class FitFileError(ValueError):
    """An NWB file does not hold a usable nwb_lrnn fit (the message says what is wrong)."""


def load_extension() -> None:
    """Load the ndx-lrnn namespace into pynwb (``import ndx_lrnn`` does it; idempotent)."""
    import ndx_lrnn  # noqa: F401


def _cls(name: str):
    import ndx_lrnn

    return getattr(ndx_lrnn, name)


def _concat_trials(values: np.ndarray, start_times: np.ndarray, bin_size: float):
    """(trials, time, k) -> data (trials·time, k), timing kwargs, trial_index.

    Timing is ``starting_time`` and ``rate`` when the bins are evenly spaced (NWB best
    practice), otherwise explicit ``timestamps``.
    """
    n_tr, n_t = values.shape[:2]
    data = values.reshape(n_tr * n_t, *values.shape[2:])
    ts = (np.asarray(start_times, dtype=float)[:, None]
          + np.arange(n_t)[None, :] * bin_size).reshape(-1)
    idx = np.repeat(np.arange(n_tr), n_t)
    if ts.size < 2 or np.allclose(np.diff(ts), bin_size, rtol=1e-9, atol=1e-12):
        timing = {"starting_time": float(ts[0]), "rate": 1.0 / bin_size}
    else:
        timing = {"timestamps": ts}
    return data, timing, idx


def _provenance(data) -> dict:
    prov = dict(getattr(data, "provenance", None) or {})
    src = prov.get("source")
    if isinstance(src, str) and "://" not in src and os.path.isfile(src):
        prov.setdefault("source_sha256", _sha256(src))
    return prov


def _sha256(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def _source_metadata(prov: dict) -> dict:
    """What a results file copies from the recording: ``session_start_time``, ``subject``,
    ``experimenter``, ``institution``, ``lab`` (None when unknown). From a local NWB source
    (read with pynwb after a check that it is self-contained), else the MNE recording's
    ``meas_date`` kept in the provenance."""
    out = dict.fromkeys(("session_start_time", "subject", "experimenter", "institution", "lab"))
    for key in ("session_start_time", "meas_date"):
        v = prov.get(key)
        if isinstance(v, str) and out["session_start_time"] is None:
            try:
                out["session_start_time"] = datetime.fromisoformat(v)
            except ValueError:
                pass
    info = prov.get("subject_info")  # an MNE recording's info['subject_info']
    if isinstance(info, dict) and any(isinstance(info.get(k), str)
                                      for k in ("subject_id", "sex", "birthday")):
        out["subject"] = _subject_from_mne(info, out["session_start_time"])
    src = prov.get("source")
    if not (isinstance(src, str) and src.endswith(".nwb") and os.path.isfile(src)):
        return out
    try:
        from pynwb import NWBHDF5IO
        from pynwb.file import Subject

        from .nwb import check_self_contained

        check_self_contained(src)
        with NWBHDF5IO(src, "r") as io:
            nwb = io.read()
            if nwb.subject is not None:
                s = nwb.subject
                # empty fields are not copied: unknown sex is "U" and an unknown age the open
                # range "P0D/" (0 days or older), as the NWB best practices ask
                out["subject"] = Subject(
                    subject_id=s.subject_id, species=s.species or None, sex=s.sex or "U",
                    age=s.age or (None if s.date_of_birth else "P0D/"),
                    date_of_birth=s.date_of_birth,
                    description=s.description or "Copied from the recording's Subject.")
            out["session_start_time"] = nwb.session_start_time
            out["experimenter"] = list(nwb.experimenter) if nwb.experimenter else None
            out["institution"] = nwb.institution
            out["lab"] = nwb.lab
    except Exception as err:  # a best effort: the fit is still written
        logger.warning("could not copy session metadata from %s: %s", src, err)
    return out


def _subject_from_mne(info: dict, start: datetime | None):
    """A Subject from the fields :func:`nwb_lrnn.io.mne._subject_info` kept (no species: MNE
    does not record one)."""
    from pynwb.file import Subject

    def text(k):
        v = info.get(k)
        return v if isinstance(v, str) and 0 < len(v) <= 200 else None

    born = None
    with contextlib.suppress(TypeError, ValueError):
        born = datetime.fromisoformat(text("birthday") or "")
    if born is not None and born.tzinfo is None:
        born = born.replace(tzinfo=timezone.utc)
    if born is not None and start is None:
        age = None  # the date of birth says it
    elif born is not None and start >= born:
        age = f"P{(start - born).days}D"
    else:  # unknown: the open range "0 days or older", as the NWB best practices ask
        age = "P0D/"
    sex = text("sex")
    return Subject(subject_id=text("subject_id") or "unknown",
                   sex=sex if sex in ("M", "F") else "U", age=age, date_of_birth=born,
                   description="From the EEG recording's subject_info (MNE).")


def _shareable(prov: Any) -> Any:
    """The provenance without absolute local paths (a results file is meant to be shared): a
    local file is named by its file name; its digest, size and the DANDI identity stay."""
    if isinstance(prov, Mapping):
        out = {}
        for k, v in prov.items():
            if (k in ("source", "filename", "local_path", "local_folder") and isinstance(v, str)
                    and "://" not in v and os.path.isabs(v)):
                v = os.path.basename(v.rstrip("/")) or v
            out[k] = _shareable(v)
        return out
    if isinstance(prov, list):
        return [_shareable(v) for v in prov]
    return prov


def _model_group(record: FitRecord, description: str, source: dict):
    from .._version import __version__

    p = record.parameters
    if not p:
        raise ValueError("the fit record has no named parameters (a record read back from a "
                         "file); export it from the estimator (nwb_lrnn.estimator.export_fit).")
    state = record.state
    keys = sorted(state)
    Model = _cls("LowRankRNNModel")
    nz = np.asarray(p["noise_z"], dtype=float)
    hist = record.history
    kwargs = dict(
        name="model", description=description, rank=record.rank,
        n_units=record.n_units, n_channels=record.n_channels, n_inputs=record.n_inputs,
        nonlinearity=json.dumps(p["nonlinearity"], sort_keys=True),
        observation=record.observation, proposal=record.proposal,
        bin_size=record.bin_size,
        model_config=json.dumps({"model": record.model_config,
                                 "estimator": record.estimator_params,
                                 "meta": _meta_for_file(record.meta)}, sort_keys=True),
        train_config=json.dumps(record.train_config, sort_keys=True),
        package_version=__version__,
        random_seed=record.random_seed, source=json.dumps(source, sort_keys=True,
                                                          default=str),
        U=p["U"], V=p["V"], h=p["h"], decay=np.atleast_1d(p["decay"]).astype(float),
        noise_cov=np.diag(nz**2) if nz.ndim == 1 else nz, init_mean=p["init_mean"],
        init_cov=np.diag(np.asarray(p["init_sd"], dtype=float) ** 2),
        training_bound=np.asarray(hist.get("train_bound", []), dtype=float),
        state_values=np.concatenate([np.asarray(state[k], dtype=np.float64).ravel()
                                     for k in keys]) if keys else np.zeros(0),
        state_keys=keys, state_shapes=[json.dumps(list(np.shape(state[k]))) for k in keys],
    )
    if hist.get("val_bound"):
        kwargs["validation_bound"] = np.asarray(hist["val_bound"], dtype=float)
    for opt in ("B", "C", "d", "noise_x", "noise_x_cov", "noise_ar", "noise_ar_matrix",
                "gain", "bias"):
        if p.get(opt) is not None:
            kwargs[opt] = np.asarray(p[opt], dtype=float)
    return Model(**kwargs)


_HISTORY_SCALARS = {"best_epoch": int, "kept_epoch": int, "stopped_early": bool,
                    "seconds": float}  # the per-epoch lists are datasets of their own


def _meta_for_file(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator's metadata for the model_config attribute: the history's scalars only."""
    out = {k: v for k, v in meta.items() if k != "history"}
    hist = meta.get("history") or {}
    out["history"] = {k: hist[k] for k in _HISTORY_SCALARS if k in hist}
    return out


def _history_scalars(path, value: Any, n_epochs: int) -> dict[str, Any]:
    """The history's scalars read from a file, checked (absent in older files: {})."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not set(value) <= set(_HISTORY_SCALARS):
        raise FitFileError(f"{path}: model_config meta.history should be an object with keys "
                           f"among {sorted(_HISTORY_SCALARS)}, got {value!r}.")
    out = {}
    for k, v in value.items():
        kind = _HISTORY_SCALARS[k]
        ok = (isinstance(v, bool) if kind is bool else
              isinstance(v, int) and not isinstance(v, bool) and -1 <= v < n_epochs
              if kind is int else
              isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
        if not ok:
            raise FitFileError(f"{path}: model_config meta.history.{k} should be "
                               + ({bool: "true or false",
                                   int: f"an epoch index from -1 to {n_epochs - 1}",
                                   float: "a finite number"}[kind]) + f", got {v!r}.")
        out[k] = kind(v)
    return out


def check_fit_target(path: str | os.PathLike, *, mode: str = "new", overwrite: bool = False,
                     data: BinnedData | None = None) -> Path:
    """Check, before anything is computed, that a fit may be written to ``path``.

    Raises
    ------
    FileExistsError
        ``path`` exists, mode 'new' and ``overwrite=False``; or ``path`` is a recording
        (results never replace a recording, whatever ``overwrite`` says).
    FileNotFoundError
        mode 'append' and ``path`` does not exist.
    ValueError
        An unknown ``mode``.
    """
    mode = check_option("mode", mode, ("new", "append"))
    path = Path(path).expanduser()
    if mode == "new" and path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it (or "
                              "mode='append' to add the fit to it).")
    if mode == "append" and not path.is_file():
        raise FileNotFoundError(f"mode='append' needs an existing NWB file, {path} not found.")
    target = _write_target(path)
    if mode == "new" and target.exists():
        check_replaceable(target, _provenance(data) if data is not None else {}, shown=path)
    return path


def write_fit(record: FitRecord, path: str | os.PathLike, *, results: FitResults | None = None,
              data: BinnedData | None = None, include_model: bool = True, mode: str = "new",
              overwrite: bool = False, subject=None, session_description: str | None = None,
              module_name: str = MODULE_NAME, experimenter: str | list[str] | None = None,
              institution: str | None = None, lab: str | None = None,
              session_start_time: datetime | None = None) -> Path:
    """Write a fit record (and what was computed with it) into an NWB file.

    The io half of :func:`nwb_lrnn.write_nwb`, which exports the estimator
    (:func:`nwb_lrnn.estimator.export_fit`), computes the :class:`FitResults` and calls this;
    the options are documented there.

    Parameters
    ----------
    record : FitRecord
    path : path
    results : FitResults, optional
        Posterior latents, surrogate data, measures, fixed points.
    data : BinnedData, optional
        The data the model was fitted on: their provenance is recorded (local file paths as
        file names with the file's SHA-256) and, when appending to the file they were read
        from, the model's channels are linked to its Units or electrodes.
    include_model : bool
        Write the model group (False: only the results).

    Returns
    -------
    Path of the written file.
    """
    results = results or FitResults()
    path = check_fit_target(path, mode=mode, overwrite=overwrite, data=data)
    prov = _provenance(data) if data is not None else {}
    target = _write_target(path)
    if record.zscore is not None and "zscore" not in prov:  # an EEG fit: volts back
        prov = {**prov, "zscore": record.zscore, "sfreq": 1.0 / record.bin_size}
    description = (f"Stochastic low-rank RNN (rank {record.rank}, {record.n_units} units, "
                   f"{record.observation} observations) fitted with variational SMC by "
                   "nwb_lrnn")
    linked_sources = _local_sources(prov)  # before the paths are made shareable
    meta = _source_metadata(prov) if mode == "new" else {}
    prov = _shareable(prov)
    if mode == "new":
        meta = _session_metadata(meta, path, subject=subject, experimenter=experimenter,
                                 institution=institution, lab=lab,
                                 session_start_time=session_start_time)
    objects = _build_objects(record, results, include_model, description, prov)

    need = _objects_nbytes(objects) + (target.stat().st_size if mode == "append" else 0)
    if mode == "new":
        _atomic_write(target, lambda tmp: _write_new(tmp, objects, module_name, prov, meta,
                                                     session_description, description),
                      copy=False, exclusive=not overwrite, shown=path, need=need)
    else:
        before = _nwb_version(target)
        linked = data if data is not None and any(
            _same_file(src, target) for src in linked_sources) else None
        _atomic_write(target, lambda tmp: _append(tmp, objects, module_name, description,
                                                  linked),
                      copy=True, shown=path, need=need)
        after = _nwb_version(target)
        if before and after and before != after:
            import pynwb

            logger.warning("%s: appending rewrote the file as NWB %s (it was NWB %s): pynwb %s "
                           "writes only its own schema version. The data are unchanged and the "
                           "original schema stays cached in /specifications; keep a copy if "
                           "another tool needs NWB %s.", path, after, before,
                           pynwb.__version__, before)
    return path


def _session_metadata(meta: dict, path: Path, *, subject, experimenter, institution, lab,
                      session_start_time) -> dict:
    """The new file's session metadata: the given values over those of the source."""
    if isinstance(subject, Mapping):  # the given fields over those of the source
        from pynwb.file import Subject

        known = meta.get("subject")
        base = {k: v for k, v in (known.fields.items() if known is not None else ())
                if k in ("subject_id", "species", "sex", "age", "date_of_birth",
                         "description")}
        subject = Subject(**{**base, **subject})
    subject = subject or meta.get("subject")
    if subject is None:
        logger.warning("%s: no Subject (the source has none); pass subject=dict("
                       "subject_id=..., species=..., sex=..., age=...) (CLI: --subject-id, "
                       "--species, --sex, --age): DANDI and nwbinspector need one.", path)
    elif not getattr(subject, "species", None):
        logger.warning("%s: the Subject (%s) has no species; pass subject=dict(species="
                       "'Homo sapiens') or the like (CLI: --species): DANDI needs one.",
                       path, subject.subject_id)
    if session_start_time is not None:
        meta["session_start_time"] = session_start_time
    return {**meta, "subject": subject,
            "experimenter": experimenter or meta.get("experimenter"),
            "institution": institution or meta.get("institution"),
            "lab": lab or meta.get("lab")}


def _nwb_version(path: Path) -> str | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            v = f.attrs.get("nwb_version")
    except OSError:
        return None
    return _text(v) if v is not None else None


def _write_target(path: Path) -> Path:
    """The file a write to ``path`` lands in: a symlink's final target (the link is kept)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _local_sources(prov: Mapping) -> list[str]:
    """Local files named in a provenance record (``source``, MNE's ``filename``, the sources of
    merged sessions)."""
    out = []
    for key in ("source", "filename", "local_path"):
        v = prov.get(key)
        if isinstance(v, str) and "://" not in v and v not in ("mne", ""):
            out.append(v)
    for sub in prov.get("merged_sessions") or ():
        if isinstance(sub, Mapping):
            out += _local_sources(sub)
    return out


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_replaceable(path: Path, prov: Mapping | None = None, *, shown=None) -> None:
    """Refuse to replace a file whose loss would lose the user's data.

    Refused: the file the fitted data were read from (``prov``'s local sources, compared by
    inode and resolved path), and any NWB file holding recorded data (``/units`` or anything in
    ``/acquisition``) that was not written as a results file by nwb_lrnn. Raises
    FileExistsError naming the file and what it holds.
    """
    shown = shown if shown is not None else path
    digest = (prov or {}).get("source_sha256")
    if isinstance(digest, str) and path.is_file() and _sha256(str(path)) == digest:
        raise FileExistsError(
            f"{shown} is the recording this fit was made from (same SHA-256); a results file "
            "will not replace it (even with overwrite=True). Write the results to another "
            "path, or add them to the recording with mode='append' (CLI: --append), which "
            "keeps its data.")
    for src in _local_sources(prov or {}):
        if os.path.isabs(src) and _same_file(src, path):
            raise FileExistsError(
                f"{shown} is the recording this fit was made from; a results file will not "
                "replace it (even with overwrite=True). Write the results to another path, or "
                "add them to the recording with mode='append' (CLI: --append), which keeps its "
                "data.")
    held = _recorded_data(path)
    if held:
        raise FileExistsError(
            f"{shown} holds recorded data ({held}) that nwb_lrnn did not write; overwrite=True "
            "replaces only nwb_lrnn results files. Write to another path, use mode='append' "
            "(CLI: --append) to add the fit to it, or delete it yourself.")


def _recorded_data(path: Path) -> str:
    """What in an existing file forbids replacing it ('' when it may be replaced: an empty
    file, an nwb_lrnn results file, or a file that is not HDF5). An HDF5 file that nwb_lrnn
    did not write, or that cannot be opened (locked, damaged), is never replaced."""
    import h5py

    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as err:
        return f"a file that cannot be read ({err.strerror or err})"
    if head != b"\x89HDF\r\n\x1a\n":
        return ""
    try:
        f = h5py.File(path, "r")
    except OSError:
        return "an HDF5 file that cannot be opened (in use or damaged)"
    with f:
        script = f.get("general/source_script")
        if isinstance(script, h5py.Dataset) and _text(script.attrs.get("file_name", "")) == \
                "nwb_lrnn.io.write_nwb" and f.get("units", getlink=True) is None:
            return ""
        held = []
        if f.get("units", getlink=True) is not None:
            held.append("/units")
        acq = f.get("acquisition")
        if isinstance(acq, h5py.Group) and len(acq):
            held.append(f"{len(acq)} object(s) in /acquisition")
        return ", ".join(held) or "NWB/HDF5 data"


def _objects_nbytes(objects) -> int:
    """Bytes of the arrays in the pynwb objects to be written (an estimate of the file's
    growth; the file adds metadata of a few hundred kB)."""
    seen: set[int] = set()
    total = 0
    stack = list(objects)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            total += obj.nbytes
        elif isinstance(obj, (list, tuple)):
            if obj and isinstance(obj[0], (int, float)):
                total += 8 * len(obj)
            else:
                stack.extend(obj)
        elif hasattr(obj, "fields"):
            stack.extend(v for v in obj.fields.values() if v is not obj)
    return total + (512 << 10)


def _atomic_write(path: Path, write, *, copy: bool, exclusive: bool = False, shown=None,
                  need: int = 0) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then move it onto ``path``.

    With ``copy=True`` the temporary file starts as a copy of ``path``; otherwise it does not
    exist when ``write`` is called. The temporary file is removed if anything fails, so
    ``path`` is either untouched or completely written. Errors name ``shown`` (the path the
    user gave), never the temporary file; ``need`` bytes must be free first.

    Concurrency: with ``exclusive=True`` the file is put in place with a hard link, which fails
    if another process created ``path`` meanwhile (nothing is clobbered); an update
    (``copy=True``) holds an exclusive lock on the folder for the whole copy-write-replace, so
    two processes adding to the same file both land.
    """
    shown = shown if shown is not None else path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(err, shown, None) from None
    clean_stale_temp_files(path)
    _check_free_space(path.parent, need, shown)
    with _file_lock(path) if copy else contextlib.nullcontext():
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=_TEMP_SUFFIX,
                                            dir=path.parent)
        except OSError as err:
            raise _write_error(err, shown, None) from None
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if copy:
                shutil.copy2(path, tmp)
            else:
                tmp.unlink()
            _isolated(write, tmp, shown)
            if exclusive:
                _place_exclusive(tmp, path)
            else:
                os.replace(tmp, path)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            err = _hdf5_write_failure(err)
            if isinstance(err, OSError) and not isinstance(err, FileExistsError):
                raise _write_error(err, shown, tmp) from None
            raise err
    return path


def _isolated(write, tmp: Path, shown) -> None:
    """``write(tmp)``, then a read-back of every dataset and an fsync, in a forked child.

    When a write fails (a full disk), the HDF5 library can leave objects that crash the
    process when freed (measured: SIGSEGV in 4 of 4 runs, after hundreds of lines of h5py
    messages), and pynwb can even finish without an error on a truncated file. A child process
    confines both: the caller gets one OSError naming ``shown``; the read-back catches a
    truncated file before it replaces anything. Without ``os.fork`` (Windows) or with
    NWB_LRNN_NO_FORK=1 the same runs in this process.
    """
    if not hasattr(os, "fork") or os.environ.get("NWB_LRNN_NO_FORK") == "1":
        write(tmp)
        _verify_written(tmp)
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    # the child's stderr goes to a file: replayed after a success (warnings), dropped after a
    # failure (HDF5's messages from a failed write run to hundreds of lines)
    errlog = tempfile.TemporaryFile()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write, verify, report, and leave without running atexit hooks
        os.close(r)
        code = 0
        try:
            os.dup2(errlog.fileno(), 2)
            _die_with_parent()
            write(tmp)
            _verify_written(tmp)
        except BaseException as err:
            code = 1
            report = {"type": type(err).__name__, "errno": getattr(err, "errno", None),
                      "message": str(err)[:4000]}
            try:
                os.write(w, json.dumps(report).encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as fh:
        for block in iter(lambda: fh.read(65536), b""):
            chunks.append(block)
    _, status = os.waitpid(pid, 0)
    with errlog:
        errlog.seek(0)
        noise = errlog.read(1 << 20).decode("utf-8", "replace")
    ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    if ok and noise:
        sys.stderr.write(noise)
    elif noise:
        logger.debug("messages of the failed write of %s:\n%s", shown, noise[-20000:])
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        raise OSError(f"could not write {shown}: the HDF5 library crashed (signal {sig}) while "
                      "writing; is the disk full (or a file size limit reached)? Nothing was "
                      "changed.")
    if os.WEXITSTATUS(status) == 0:
        return
    try:
        rep = json.loads(b"".join(chunks).decode() or "{}")
    except ValueError:
        rep = {}
    msg = str(rep.get("message") or "unknown error").replace(str(tmp), str(shown))
    import builtins

    name = str(rep.get("type"))
    kind = FitFileError if name == "FitFileError" else getattr(builtins, name, None)
    if not (isinstance(kind, type) and issubclass(kind, BaseException)):
        kind = OSError
    code = rep.get("errno") if isinstance(rep.get("errno"), int) else None
    try:
        err = kind(msg)  # the child's error: same class and message
    except TypeError:  # an exception class that needs other arguments
        err = OSError(msg)
    if isinstance(err, OSError):
        err.errno = code
    raise err


def _hdf5_write_failure(err: BaseException) -> BaseException:
    """HDF5 reports a failed write of its own (at close: "Set slist enabled failed (file
    write failed: ... errno = 27, error message = 'File too large' ...)") as h5py's
    RuntimeError: it is the disk's error, an OSError with that errno; others unchanged."""
    failed = re.search(r"write failed.*?errno = (\d+)", str(err), re.S)
    if failed is None or isinstance(err, OSError):
        return err
    out = OSError(str(err))
    out.errno = int(failed.group(1))
    return out


def _die_with_parent() -> None:
    """Linux: the child is killed when the writing process dies (no orphan writers)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _verify_written(tmp: Path) -> None:
    """Read back the last element of every dataset (a truncated file fails here) and fsync."""
    import h5py

    def last(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.shape and obj.size:
            obj[tuple(n - 1 for n in obj.shape)]

    with h5py.File(tmp, "r") as f:
        f.visititems(last)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TEMP_SUFFIX = ".tmp.nwb"
_STALE_AFTER_S = 3600.0  # a temporary file of a process on another host, or of an old version


def _host() -> str:
    import socket

    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _temp_prefix(path: Path) -> str:
    """Hidden, and names the writer: ``.NAME.HOST.PID.`` (so stale ones can be recognised)."""
    return f".{path.name}.{_host()}.{os.getpid()}."


def clean_stale_temp_files(path: Path) -> list[Path]:
    """Remove temporary files of earlier writes to ``path`` whose writer is gone.

    Only the package's own pattern next to ``path`` is touched: ``.NAME.HOST.PID.*.tmp.nwb``
    whose process no longer runs on this host (or, from another host, older than an hour), and
    the older ``.STEM.*.tmp.nwb`` pattern when older than an hour. Returns what was removed.
    """
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    mine = f".{path.name}."
    old = f".{path.stem}."
    now = time.time()
    for e in entries:
        name = e.name
        if not name.endswith(_TEMP_SUFFIX) or not e.is_file(follow_symlinks=False):
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        age = now - max(st.st_mtime, st.st_ctime)
        stale = False
        if name.startswith(mine):
            parts = name[len(mine):-len(_TEMP_SUFFIX)].split(".")
            if len(parts) == 3 and parts[1].isdigit():
                host, pid = parts[0], int(parts[1])
                stale = (not _alive(pid)) if host == _host() else age > _STALE_AFTER_S
            else:
                stale = age > _STALE_AFTER_S
        elif name.startswith(old) and re.fullmatch(re.escape(old) + r"[A-Za-z0-9_]{8}"
                                                   + re.escape(_TEMP_SUFFIX), name):
            stale = age > _STALE_AFTER_S
        if stale:
            try:
                os.unlink(e.path)
                removed.append(Path(e.path))
                logger.info("removed %s, left behind by an interrupted write", e.path)
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _check_free_space(folder: Path, need: int, shown) -> None:
    if need <= 0:
        return
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < need:
        err = OSError(f"not enough free space to write {shown}: it needs about "
                      f"{need / 2**20:.1f} MiB, {free / 2**20:.1f} MiB are free")
        err.errno = errno.ENOSPC
        raise err


def _write_error(err: OSError, shown, tmp) -> OSError:
    """The error of a failed write, naming the user's path (not the temporary file)."""
    text = str(err.strerror or err)
    if tmp is not None:
        text = text.replace(str(tmp), str(shown))
    code = err.errno
    if text.startswith(f"could not write {shown}"):
        return err
    full = ("No space left" in text or "File too large" in text or "Disk quota" in text
            or "errno = 28" in text or "errno = 27" in text)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or full:
        msg = (f"could not write {shown}: the disk is full (or a file size limit was "
               "reached); nothing was changed")
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        msg = (f"could not write {shown}: permission denied or read-only file system; "
               "nothing was changed")
    else:
        first = text.splitlines()[0] if text else type(err).__name__
        msg = f"could not write {shown}: {first}"
    out = OSError(msg)  # no "[Errno N]" prefix: the message is the user's one line
    out.errno = code
    return out


def _place_exclusive(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} was created (by another process?) while this fit was "
                              "being written; nothing was overwritten. Pass overwrite=True or "
                              "another path.") from None
    except OSError:  # a file system without hard links: best effort
        if path.exists():
            raise FileExistsError(f"{path} exists; pass overwrite=True.") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock on the folder holding ``path`` (POSIX; no-op elsewhere).

    Locking the folder rather than a side file leaves nothing behind; updates of files in one
    folder are then serialised, which is cheap next to writing an NWB file.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - unusual file systems
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def store_fixed_points(path: str | os.PathLike, fixed_points, *,
                       module_name: str | None = None) -> Path:
    """Add (or replace) the ``fixed_points`` table of a fit file, atomically.

    The file is copied next to itself, the ``FixedPointTable`` is written into the processing
    module that holds the model (an existing ``fixed_points`` table there is replaced) and the
    copy is moved onto ``path``; the original is untouched if anything fails.

    Parameters
    ----------
    path : path
        An NWB file written by :func:`write_nwb` (or with a fit appended to it).
    fixed_points : FixedPoints
        From :func:`nwb_lrnn.analysis.fixed_points.find_fixed_points`.
    module_name : str, optional
        The processing module (default: the first one that holds a model).

    Returns
    -------
    Path of the file.

    Raises
    ------
    FileNotFoundError, FitFileError
    """
    path = Path(path).expanduser()
    f = _open_fit_file(path)
    with f:
        module = _find_model_group(f, path, module_name).parent.name.rsplit("/", 1)[-1]
    table = _fixed_point_table(fixed_points)

    def write(tmp: Path) -> None:
        import h5py
        from pynwb import NWBHDF5IO

        from .nwb import check_self_contained

        check_self_contained(tmp)  # pynwb reads the whole file: nothing outside it
        with h5py.File(tmp, "a") as h:
            grp = h["processing"][module]
            if "fixed_points" in grp:
                del grp["fixed_points"]
        load_extension()
        with NWBHDF5IO(str(tmp), "a", load_namespaces=True) as io:
            nwb = io.read()
            nwb.processing[module].add(table)
            io.write(nwb, cache_spec=True)

    _atomic_write(_write_target(path), write, copy=True, shown=path,
                  need=path.stat().st_size + (1 << 20))
    return path


def session_metadata(path: str | os.PathLike) -> dict:
    """The session metadata of an NWB file (``session_start_time``, ``subject``,
    ``experimenter``, ``institution``, ``lab``), to carry over into a file made from it (such
    as surrogate data generated from a fit)."""
    return _source_metadata({"source": os.fspath(path)})


def read_fit_source(path: str | os.PathLike, *, module_name: str | None = None) -> dict:
    """The provenance of the data a fit was made on (the model's ``source`` attribute).

    For EEG fits it holds ``sfreq`` and, when the data were z-scored, ``zscore`` (per-channel
    means and standard deviations) to put generated data back in volts.

    Returns
    -------
    dict (empty when the file records no source).
    """
    path = Path(path).expanduser()
    with _open_fit_file(path) as f:
        return _source_of(_find_model_group(f, path, module_name), path)


def _open_fit_file(path: Path):
    """Open a fit file read-only, with errors that name it."""
    import h5py

    if not path.exists():
        raise FileNotFoundError(f"fit file not found: {path}")
    if not path.is_file():
        raise FitFileError(f"{path} is not a regular file (a folder, FIFO or device); a fit "
                           "file is an NWB (HDF5) file.")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise FitFileError(f"{path} cannot be opened as HDF5/NWB: {err}") from None


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _source_of(group, path) -> dict:
    """The model group's ``source`` attribute as a dict (empty when absent or not a dict)."""
    raw = group.attrs.get("source", "{}")
    try:
        out = _h5.loads_json(raw, label=str(path), field=f"the attribute {group.name}@source",
                             error=FitFileError)
    except FitFileError as err:
        if "not valid JSON" in str(err):
            return {}
        raise
    return out if isinstance(out, dict) else {}


def _build_objects(record: FitRecord, results: FitResults, include_model: bool,
                   description: str, prov: dict) -> list:
    objects = [_model_group(record, description, prov)] if include_model else []
    bin_size = record.bin_size
    if results.latents is not None:
        mean = np.asarray(results.latents)
        sd = np.asarray(results.latents_sd if results.latents_sd is not None
                        else np.zeros_like(mean))
        starts = (np.arange(mean.shape[0]) * mean.shape[1] * bin_size
                  if results.latent_start_times is None else results.latent_start_times)
        d, ts, idx = _concat_trials(mean, starts, bin_size)
        s, _, _ = _concat_trials(sd, starts, bin_size)
        objects.append(_cls("PosteriorLatents")(
            name="posterior_latents", data=d, spread=s, trial_index=idx, **ts,
            unit="a.u.", method=results.latent_method, n_particles=record.n_particles,
            description="Posterior mean latents (the particle filter's smoothing posterior, "
                        "by backward smoothing or, for noise with memory, the ancestral "
                        "paths) of the data the model was fitted on; spread holds the "
                        "posterior SD."))
    gen = results.generated
    if gen is not None:
        d, ts, idx = _concat_trials(gen.values, np.arange(gen.n_trials) * gen.duration,
                                    bin_size)
        objects.append(_cls("GeneratedData")(
            name="generated", data=d.astype(np.int64) if gen.kind == "counts" else d,
            trial_index=idx, **ts, kind=gen.kind, burn_in=int(results.burn_in),
            random_seed=int(results.generated_seed),
            unit="counts" if gen.kind == "counts" else "a.u.",
            description=f"Surrogate data generated by the fitted model "
                        f"({gen.n_trials} trials of {gen.n_time} bins; trial k starts at "
                        f"k x {gen.duration:g} s on its own clock)."))
    if results.metrics:
        table = _cls("FitMetrics")(name="metrics", description="Measures of the fit.")
        for name, value, split in results.metrics:
            table.add_row(metric=str(name), value=float(value), split=str(split))
        objects.append(table)
    if results.fixed_points is not None:
        objects.append(_fixed_point_table(results.fixed_points))
    return objects


def _fixed_point_table(fp):
    table = _cls("FixedPointTable")(name="fixed_points", method="approximate"
                                    if getattr(fp, "approximate", False) else "exact",
                                    description="Fixed points of the latent map.")
    z = np.asarray(fp.z, dtype=float)
    act = np.asarray(getattr(fp, "unit_activity", np.zeros((len(z), 0))), dtype=float)
    ev = np.asarray(fp.eigenvalues)
    kinds = list(getattr(fp, "stability", getattr(fp, "types", ["unknown"] * len(z))))
    for i in range(len(z)):
        table.add_row(location=z[i], unit_activity=act[i], eigenvalues_real=ev[i].real,
                      eigenvalues_imag=ev[i].imag, stability=str(kinds[i]))
    return table


def _write_new(tmp: Path, objects, module_name, prov, meta, session_description,
               description):
    from pynwb import NWBHDF5IO, NWBFile

    start = meta.get("session_start_time") or datetime.now(timezone.utc)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    exp = meta.get("experimenter")
    nwb = NWBFile(
        session_description=session_description or (
            f"Results of an nwb_lrnn fit: {description}."
            + (f" Source: {prov.get('source')}." if prov.get("source") else "")),
        identifier=str(uuid.uuid4()), session_start_time=start, subject=meta.get("subject"),
        experimenter=[exp] if isinstance(exp, str) else exp,
        institution=meta.get("institution"), lab=meta.get("lab"),
        experiment_description="Data-driven model: a stochastic low-rank recurrent neural "
                               "network fitted with variational sequential Monte Carlo.",
        keywords=["low-rank RNN", "sequential Monte Carlo", "dynamical system", "nwb_lrnn"],
        source_script="nwb_lrnn", source_script_file_name="nwb_lrnn.io.write_nwb")
    mod = nwb.create_processing_module(name=module_name, description=description)
    for obj in objects:
        mod.add(obj)
    load_extension()
    with NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb, cache_spec=True)


def _append(tmp: Path, objects, module_name, description, data=None):
    from pynwb import NWBHDF5IO

    from .nwb import check_self_contained

    check_self_contained(tmp)  # pynwb reads the whole file: nothing outside it
    load_extension()
    with NWBHDF5IO(str(tmp), "a", load_namespaces=True) as io:
        nwb = io.read()
        if module_name in nwb.processing:
            raise FileExistsError(f"the file already has a processing module "
                                  f"{module_name!r}; pass another module_name.")
        _link_channels(nwb, objects, data)
        mod = nwb.create_processing_module(name=module_name, description=description)
        for obj in objects:
            mod.add(obj)
        io.write(nwb, cache_spec=True)


def _link_channels(nwb, objects, data) -> None:
    """Point the model's ``channels`` at the rows of this file's Units (spike data read from
    it) or electrodes table (continuous data whose channel names are its electrodes'
    labels or locations), when every channel is found there. ``data`` is given only when it
    was read from this very file."""
    if data is None:
        return
    from hdmf.common import DynamicTableRegion

    model = next((o for o in objects if type(o).__name__ == "LowRankRNNModel"), None)
    if model is None:
        return
    table, rows = None, None
    ids = getattr(data, "channel_ids", None)
    if data.kind == "counts" and nwb.units is not None and ids is not None:
        index = {int(v): i for i, v in enumerate(nwb.units.id[:])}
        try:
            rows = [index[int(v)] for v in ids]
            table = nwb.units
        except (KeyError, TypeError, ValueError):
            rows = None
    elif data.kind != "counts" and nwb.electrodes is not None:
        for col in ("label", "location"):
            if col in nwb.electrodes.colnames:
                names = [str(v) for v in nwb.electrodes[col][:]]
                if all(n in names for n in data.channel_names):
                    rows, table = [names.index(n) for n in data.channel_names], nwb.electrodes
                    break
    if table is None or rows is None:
        logger.info("the fit's channels are not rows of this file's Units/electrodes table: "
                    "no channels link written")
        return
    model.channels = DynamicTableRegion(
        name="channels", data=rows, table=table,
        description=f"The rows of {table.name} that the model's channels are, in order.")


# ------------------------------------------------------------------------------- read
def read_fit_record(path: str | os.PathLike, *, module_name: str | None = None
                    ) -> FitRecord:
    """The fit record stored in an NWB file written by :func:`nwb_lrnn.write_nwb`.

    :func:`nwb_lrnn.read_fit` rebuilds the estimator from it. Nothing in the file is
    executed: parameters are read as arrays (their sizes checked before anything is
    allocated), settings as JSON.

    Parameters
    ----------
    path : path
        An NWB file with a ``LowRankRNNModel`` in a processing module.
    module_name : str, optional
        The processing module (default: the first one that holds a model).

    Raises
    ------
    FileNotFoundError, FitFileError
    """
    path = Path(path).expanduser()
    f = _open_fit_file(path)
    with f:
        group = _find_model_group(f, path, module_name)
        record = _read_model_group(group, path)
        src = _source_of(group, path)
    _check_sizes(record, path)
    # an EEG fit: the z-scoring of its data, so that sample_raw returns volts again
    zs = src.get("zscore")
    if isinstance(zs, dict) and {"mean", "std"} <= set(zs):
        record.zscore = {"mean": zs["mean"], "std": zs["std"]}
    return record


def _check_sizes(record: FitRecord, path) -> None:
    """Sizes in the settings cannot exceed the stored parameters' largest dimension, so that a
    crafted ``n_units`` cannot make the model allocate before its parameters are checked."""
    dims = [int(n) for v in record.state.values() for n in np.shape(v)] or [0]
    cfg = record.model_config
    est = record.estimator_params
    checks = [(k, cfg.get(k)) for k in ("n_units", "n_channels", "rank", "n_inputs")]
    if any(k.startswith("proposal.") for k in record.state):  # a trained encoder
        checks += [(k, est.get(k)) for k in ("encoder_hidden", "encoder_kernel")]
    checks.append(("n_particles", est.get("n_particles")))
    for key, v in checks:
        if v is None:
            continue
        limit = max(dims) if key != "n_particles" else 1 << 20
        if key == "encoder_kernel" and isinstance(v, list) and 0 < len(v) <= 16:
            values = v  # one kernel size per convolution
        else:
            values = [v]
        if any(not isinstance(x, int) or isinstance(x, bool) or not 0 <= x <= limit
               for x in values):
            raise FitFileError(f"{path}: the setting {key}={v!r:.40} does not match the "
                               f"stored parameters (largest dimension {max(dims)}).")


def summarize_fit(path: str | os.PathLike, *, module_name: str | None = None) -> dict:
    """What a fit file holds, read with h5py alone (no torch, no model is built).

    Returns
    -------
    dict
        ``model`` (the model's settings), ``estimator`` (the estimator's arguments), ``epochs``,
        ``final_train_bound`` and ``final_val_bound`` (SMC bound per time step, or None),
        ``metrics`` (list of (name, value, split)), ``fixed_points`` (a dict stability ->
        count, or None when no table is stored), ``latents`` and ``generated`` (shape of the
        stored array, or None), ``source`` (the provenance dict).

    Raises
    ------
    FileNotFoundError, FitFileError
    """
    path = Path(path).expanduser()
    label = str(path)
    with _open_fit_file(path) as f:
        group = _find_model_group(f, path, module_name)
        module = group.parent
        cfg = _h5.loads_json(group.attrs.get("model_config", "{}"), label=label,
                             field=f"the attribute {group.name}@model_config", error=FitFileError)
        try:
            model_cfg, est_params = dict(cfg["model"]), dict(cfg["estimator"])
        except (KeyError, TypeError, ValueError) as err:
            raise FitFileError(f"{path}: the model_config attribute is not valid "
                               f"({err}).") from None

        def child(name, where):
            return _h5.get(where, name, label=label, error=FitFileError, default=None)

        def read(obj):
            return _h5.read(obj, label=label, error=FitFileError, max_bytes=_MAX_TABLE_BYTES,
                            max_elements=_MAX_ROWS)

        def floats(name, where=group):
            obj = child(name, where)
            if obj is None or not hasattr(obj, "shape") or len(obj.shape) != 1:
                return []
            return [float(v) for v in read(obj)]

        def texts(obj):
            return [_text(v) for v in read(obj)]

        train, val = floats("training_bound"), floats("validation_bound")
        metrics = []
        import h5py

        def dataset(name, where):
            obj = child(name, where)
            return obj if isinstance(obj, h5py.Dataset) else None

        table = child("metrics", module)
        if isinstance(table, h5py.Group) and all(
                dataset(k, table) is not None for k in ("metric", "value", "split")):
            metrics = list(zip(texts(child("metric", table)), floats("value", table),
                               texts(child("split", table)), strict=False))
        fixed = None
        table = child("fixed_points", module)
        if isinstance(table, h5py.Group) and dataset("stability", table) is not None:
            fixed = {}
            for kind in texts(child("stability", table)):
                fixed[kind] = fixed.get(kind, 0) + 1

        def shape(name):
            obj = child(name, module)
            data = child("data", obj) if obj is not None and hasattr(obj, "keys") else None
            return tuple(int(n) for n in data.shape) if data is not None else None

        return {"model": model_cfg, "estimator": est_params, "epochs": len(train),
                "final_train_bound": train[-1] if train else None,
                "final_val_bound": val[-1] if val else None, "metrics": metrics,
                "fixed_points": fixed, "latents": shape("posterior_latents"),
                "generated": shape("generated"), "source": _source_of(group, path),
                "module": module.name.rsplit("/", 1)[-1]}


# a fit's own tables (bounds, metrics, fixed points, parameters) are small; a file declaring
# more is refused before anything is allocated
_MAX_TABLE_BYTES = 1 << 30
_MAX_ROWS = 10_000_000  # epochs, metrics, fixed points, state tensors: far more than any fit


def _model_groups(f, path, module_name=None) -> list:
    """(module name, group name, group) of every LowRankRNNModel in the processing modules
    (links out of the file are not followed: ``_hdf5.get``)."""
    label = str(path)

    def child(where, name):
        return _h5.get(where, name, label=label, error=FitFileError, default=None)

    import h5py

    proc = child(f, "processing")
    found = []
    if isinstance(proc, h5py.Group):
        for mname in proc.keys():
            if module_name is not None and mname != module_name:
                continue
            mod = child(proc, mname)
            if not isinstance(mod, h5py.Group):
                continue
            for oname in mod.keys():
                obj = child(mod, oname)
                if obj is not None and _text(obj.attrs.get("neurodata_type", "")) == \
                        "LowRankRNNModel":
                    found.append((mname, oname, obj))
    return found


def _find_model_group(f, path, module_name):
    found = _model_groups(f, path, module_name)
    if not found:
        where = f" in processing module {module_name!r}" if module_name else ""
        raise FitFileError(f"{path} holds no nwb_lrnn fit{where} (no LowRankRNNModel in any "
                           "processing module).")
    return found[0][2]


def fit_modules(path: str | os.PathLike) -> list[str]:
    """The processing modules of an NWB file that hold an nwb_lrnn model, in file order.

    Raises
    ------
    FileNotFoundError, FitFileError
    """
    path = Path(path).expanduser()
    with _open_fit_file(path) as f:
        return list(dict.fromkeys(m for m, _, _ in _model_groups(f, path)))


def _read_model_group(g, path) -> FitRecord:
    label = str(path)

    def need(name):
        obj = _h5.get(g, name, label=label, error=FitFileError, default=None)
        if obj is None:
            raise FitFileError(f"{path}: the model group {g.name} has no dataset {name!r}.")
        return _h5.read(obj, label=label, error=FitFileError, max_bytes=_MAX_TABLE_BYTES,
                        max_elements=None if name == "state_values" else _MAX_ROWS)

    def attr(name):
        if name not in g.attrs:
            raise FitFileError(f"{path}: the model group {g.name} has no attribute {name!r}.")
        return g.attrs[name]

    def loads(raw, field):
        return _h5.loads_json(raw, label=label, field=field, error=FitFileError)

    keys = [_text(k) for k in np.atleast_1d(need("state_keys"))]
    shapes = [loads(s, f"{g.name}/state_shapes[{i}]")
              for i, s in enumerate(np.atleast_1d(need("state_shapes")))]
    if len(shapes) != len(keys):
        raise FitFileError(f"{path}: state_keys ({len(keys)}) and state_shapes "
                           f"({len(shapes)}) differ in length.")
    for k, shp in zip(keys, shapes, strict=True):
        if not (isinstance(shp, list) and len(shp) <= 8
                and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31
                        for n in shp)):
            raise FitFileError(f"{path}: {g.name}/state_shapes for {k!r} should be a list of "
                               f"at most 8 non-negative integers, found {shp!r:.80}.")
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    raw_values = need("state_values")
    try:
        values = np.asarray(raw_values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise FitFileError(f"{path}: {g.name}/state_values should hold numbers "
                           f"({err}).") from None
    if sum(sizes) != values.size:
        raise FitFileError(f"{path}: state_values has {values.size} numbers but state_shapes "
                           f"describe {sum(sizes)}.")
    state, pos = {}, 0
    for k, shp, n in zip(keys, shapes, sizes, strict=True):
        state[k] = values[pos:pos + n].reshape(shp)  # float64; the model casts
        pos += n
    cfg = loads(attr("model_config"), f"the attribute {g.name}@model_config")
    try:
        model_cfg, est_params, meta = cfg["model"], cfg["estimator"], cfg["meta"]
    except (KeyError, TypeError) as err:
        raise FitFileError(f"{path}: the model_config attribute is not valid ({err}).") from None
    if not all(isinstance(x, dict) for x in (model_cfg, est_params, meta)):
        raise FitFileError(f"{path}: the model_config attribute should hold the objects "
                           "'model', 'estimator' and 'meta'.")
    try:
        hist = {"train_bound": [float(v) for v in np.atleast_1d(need("training_bound"))]}
        if "validation_bound" in g:
            hist["val_bound"] = [float(v) for v in np.atleast_1d(need("validation_bound"))]
    except (TypeError, ValueError) as err:
        raise FitFileError(f"{path}: the training history should hold numbers ({err}).") from None
    train_config = attr("train_config")
    hist.update(_history_scalars(path, meta.get("history"), len(hist["train_bound"])))
    meta = dict(meta, history=hist)
    train_cfg = loads(train_config, f"the attribute {g.name}@train_config")
    if not isinstance(train_cfg, dict):
        raise FitFileError(f"{path}: the train_config attribute should hold a JSON object.")
    return FitRecord(state=state, model_config=model_cfg, train_config=train_cfg,
                     estimator_params=est_params, meta=meta)
