"""Read spike trains from the Units table of an NWB file into :class:`~nwb_lrnn.BinnedData`.

Only what is needed is read: the Units table's ids, spike times (and the columns used to select
units or trials), ``obs_intervals`` and the trials table — never acquisition data. Local files,
http(s) URLs (streamed with HTTP range requests), open ``h5py.File`` objects, binary file-like
objects and ``pynwb.NWBFile`` objects are all accepted, as in pynapple.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import check_float, check_option
from ..data import BinnedData
from . import _hdf5 as _h5
from .binning import bin_spike_times, n_bins_for

__all__ = ["NWBReadError", "read_nwb"]

logger = logging.getLogger(__name__)

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class NWBReadError(ValueError):
    """An NWB file cannot be read as asked (the message names the file and the field)."""


# ------------------------------------------------------------------------------ table access
@dataclass
class _Table:
    """A DynamicTable seen the same way whether it comes from h5py or pynwb."""

    name: str
    ids: np.ndarray
    columns: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (data, index)

    def column(self, name: str, rows: np.ndarray | None = None, *, where: str = "") -> list:
        if name not in self.columns:
            raise NWBReadError(f"{where}the {self.name} table has no column {name!r}; its "
                               f"columns are: {', '.join(sorted(self.columns)) or '(none)'}.")
        data, index = self.columns[name]
        rows = np.arange(len(self.ids)) if rows is None else np.asarray(rows)
        if index is None:
            values = _read(data)
            return [_scalar(values[r]) for r in rows]
        ends = np.asarray(_read(index), dtype=np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        if len(rows) > len(self.ids) // 2:  # many rows: one read, then split
            flat = _read(data)
            return [np.asarray(flat[starts[r]:ends[r]]) for r in rows]
        return [np.asarray(data[starts[r]:ends[r]]) for r in rows]

    def scalar_columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The non-ragged columns with numbers, strings or booleans, for ``rows``."""
        out = {}
        for name, (data, index) in self.columns.items():
            if index is not None:
                continue
            try:
                values = np.asarray(_read(data))
            except (TypeError, ValueError, OSError):
                continue
            if values.ndim != 1 or len(values) != len(self.ids):
                continue
            if values.dtype.kind in "biuf":
                out[name] = values[rows]
            elif values.dtype.kind in "SUO":
                vals = [_scalar(v) for v in values[rows]]
                if all(isinstance(v, str) for v in vals):
                    out[name] = np.asarray(vals, dtype=object)
        return out


def _read(data):
    import h5py

    if isinstance(data, h5py.Dataset):  # checked for links and storage when the table was made
        return _h5.read(data, label=_h5_label(data), error=NWBReadError, allow_external=True)
    if hasattr(data, "shape") and hasattr(data, "dtype") and not isinstance(data, np.ndarray):
        return data[()] if data.shape == () else data[:]
    return np.asarray(data) if not isinstance(data, list) else data


def _scalar(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def _h5_label(obj) -> str:
    try:
        return str(obj.file.filename)
    except (AttributeError, ValueError, OSError):  # pragma: no cover - closed file
        return "<HDF5 file>"


def _h5_table(group, name: str, *, label: str, allow_external: bool = False) -> _Table:
    def child(key):
        obj = _h5.get(group, key, label=label, error=NWBReadError,
                      allow_external=allow_external, default=None)
        if obj is not None:
            _h5.check_dataset(obj, label=label, error=NWBReadError,
                              allow_external=allow_external)
        return obj

    colnames = [c.decode() if isinstance(c, bytes) else str(c)
                for c in np.atleast_1d(group.attrs.get("colnames", []))]
    ids = child("id")
    if ids is None:
        raise NWBReadError(f"{label}: the {name} table ({group.name}) has no 'id' dataset.")
    table = _Table(name=name, ids=np.asarray(_read(ids)))
    for col in colnames:
        data = child(col)
        if data is None:
            continue
        table.columns[col] = (data, child(col + "_index"))
    return table


def _pynwb_table(dt, name: str) -> _Table:
    from hdmf.common import VectorIndex

    table = _Table(name=name, ids=np.asarray(dt.id.data[:]))
    for col in dt.colnames:
        obj = dt[col]
        if isinstance(obj, VectorIndex):
            table.columns[col] = (obj.target.data, obj.data)
        else:
            table.columns[col] = (obj.data, None)
    return table


@dataclass
class _Source:
    """What was opened: tables, metadata and how to close it."""

    label: str
    units: _Table
    trials: _Table | None
    epochs: _Table | None
    meta: dict
    spike_resolution: float | None
    electrodes: _Table | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    trials_name: str = "trials"

    def close(self):
        for c in reversed(self.closers):
            try:
                c()
            except Exception:  # pragma: no cover - best effort
                pass


def _open(source, cache_dir, allow_external=False) -> _Source:
    import h5py

    if _is_nwbfile(source):
        return _from_nwbfile(source)
    closers = []
    label = "<file object>"
    if isinstance(source, h5py.File):
        f, label = source, source.filename
    elif isinstance(source, (str, os.PathLike)):
        s = os.fspath(source)
        if s.startswith(("http://", "https://")):
            from .remote import open_url

            label = s
            fobj = open_url(s, cache_dir=cache_dir)
            closers.append(getattr(fobj, "close", lambda: None))
            f = _h5_open(fobj, label)
        elif "://" in s:
            raise NWBReadError(f"only local paths and http(s) URLs can be read, got {s!r}.")
        else:
            path = Path(s).expanduser()
            label = str(path)
            if not path.exists():
                raise FileNotFoundError(f"NWB file not found: {path}")
            if path.is_dir():
                raise NWBReadError(f"{path} is a folder, not an NWB file.")
            with open(path, "rb") as fh:
                head = fh.read(8)
            if head != _HDF5_SIGNATURE:
                raise NWBReadError(f"{path} is not an HDF5/NWB file (it does not start with the "
                                   "HDF5 signature); NWB files in Zarr are not supported.")
            f = _h5_open(path, label)
        closers.append(f.close)
    elif hasattr(source, "read") and hasattr(source, "seek"):
        f = _h5_open(source, label)
        closers.append(f.close)
    else:
        raise TypeError("source must be a path, an http(s) URL, an h5py.File, a binary file "
                        f"object or a pynwb.NWBFile; got {type(source).__name__}.")
    try:
        return _from_h5(f, label, closers, allow_external)
    except Exception:
        for c in reversed(closers):
            c()
        raise


def _h5_open(obj, label):
    import h5py

    from .remote import RemoteReadError

    try:
        return h5py.File(obj, "r")
    except RemoteReadError:  # a network failure, not a corrupt file
        raise
    except OSError as err:
        raise NWBReadError(f"{label} cannot be opened as HDF5 (truncated or corrupt file?): "
                           f"{err}") from None


def check_self_contained(path: str | os.PathLike, *, allow_external: bool = False) -> None:
    """Refuse a local HDF5 file that points outside itself anywhere (external links, external
    storage, virtual datasets), before it is handed to a reader that reads everything, such as
    pynwb. Raises NWBReadError naming the object."""
    import h5py

    label = os.fspath(path)
    try:
        f = h5py.File(label, "r")
    except OSError as err:
        raise NWBReadError(f"{label} cannot be opened as HDF5: {err}") from None
    with f:
        _h5.check_file(f, label=label, error=NWBReadError, allow_external=allow_external)


def _is_nwbfile(obj) -> bool:
    try:
        from pynwb import NWBFile
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, NWBFile)


def _from_h5(f, label, closers, allow_external=False) -> _Source:
    def get(key):
        return _h5.get(f, key, label=label, error=NWBReadError, allow_external=allow_external,
                       default=None)

    def table(key, name):
        group = get(key)
        return (_h5_table(group, name, label=label, allow_external=allow_external)
                if group is not None else None)

    if get("units") is None:
        groups = ", ".join(sorted(f.keys()))
        raise NWBReadError(f"{label} has no Units table (/units); its top-level groups are: "
                           f"{groups}. read_nwb reads sorted spikes; for continuous signals "
                           "use MNE or the acquisition data directly.")
    units = table("units", "Units")
    if "spike_times" not in units.columns:
        raise NWBReadError(f"{label}: the Units table has no 'spike_times' column.")
    res = units.columns["spike_times"][0].attrs.get("resolution")
    try:
        res = float(res) if res is not None and np.isfinite(res) and res > 0 else None
    except (TypeError, ValueError):
        res = None
    trials = table("intervals/trials", "trials")
    epochs = table("intervals/epochs", "epochs")
    electrodes = table("general/extracellular_ephys/electrodes", "electrodes")

    def attr_or_ds(key):
        obj = get(key)
        if obj is None or not hasattr(obj, "dtype"):
            return None
        v = _h5.read(obj, label=label, error=NWBReadError, allow_external=allow_external,
                     max_bytes=1 << 20)
        return _scalar(v) if np.ndim(v) == 0 else _scalar(np.ravel(v)[0])

    meta = {"identifier": attr_or_ds("identifier"),
            "session_start_time": attr_or_ds("session_start_time"),
            "session_description": attr_or_ds("session_description"),
            "nwb_version": _scalar(f.attrs.get("nwb_version"))}
    return _Source(label=label, units=units, trials=trials, epochs=epochs, meta=meta,
                   spike_resolution=res, electrodes=electrodes, closers=closers)


def _from_nwbfile(nwbfile) -> _Source:
    label = getattr(nwbfile, "identifier", "<NWBFile>")
    if nwbfile.units is None:
        raise NWBReadError(f"NWBFile {label!r} has no Units table.")
    units = _pynwb_table(nwbfile.units, "Units")
    res = getattr(nwbfile.units, "resolution", None)
    res = float(res) if res is not None and np.isfinite(res) and res > 0 else None
    trials = _pynwb_table(nwbfile.trials, "trials") if nwbfile.trials is not None else None
    epochs = _pynwb_table(nwbfile.epochs, "epochs") if nwbfile.epochs is not None else None
    electrodes = (_pynwb_table(nwbfile.electrodes, "electrodes")
                  if nwbfile.electrodes is not None else None)
    sst = nwbfile.session_start_time
    meta = {"identifier": nwbfile.identifier,
            "session_start_time": sst.isoformat() if sst is not None else None,
            "session_description": nwbfile.session_description, "nwb_version": None}
    return _Source(label=f"NWBFile {label!r}", units=units, trials=trials, epochs=epochs,
                   meta=meta, spike_resolution=res, electrodes=electrodes)


# ------------------------------------------------------------------------------ selection
def _select_units(src: _Source, units, unit_filter) -> np.ndarray:
    ids = src.units.ids
    rows = np.arange(len(ids))
    if units is not None:
        wanted = np.atleast_1d(np.asarray(units))
        pos = {int(v) if np.issubdtype(ids.dtype, np.integer) else v: i
               for i, v in enumerate(ids.tolist())}
        missing = [u for u in wanted.tolist() if u not in pos]
        if missing:
            shown = ", ".join(map(str, ids[:30].tolist())) + (" ..." if len(ids) > 30 else "")
            raise NWBReadError(f"{src.label}: unit id(s) {missing} not in the Units table; "
                               f"its ids are: {shown}.")
        rows = np.array([pos[u] for u in wanted.tolist()], dtype=np.int64)
    if unit_filter is not None:
        rows = rows[_filter_mask(src.units, rows, unit_filter, src.label, "unit_filter")]
    if rows.size == 0:
        raise NWBReadError(f"{src.label}: no unit left after units={units!r}, "
                           f"unit_filter={unit_filter!r}.")
    return rows


def _filter_mask(table: _Table, rows, spec, label, name) -> np.ndarray:
    if callable(spec):
        mask = np.asarray(spec({c: np.asarray(table.column(c, rows, where=f"{label}: "),
                                              dtype=object) for c in table.columns
                                if table.columns[c][1] is None}), dtype=bool)
        if mask.shape != (len(rows),):
            raise NWBReadError(f"{name} returned a mask of shape {mask.shape}, expected "
                               f"({len(rows)},).")
        return mask
    if not isinstance(spec, Mapping):
        raise TypeError(f"{name} must be a dict {{column: value or list of values}} or a "
                        f"callable, got {type(spec).__name__}.")
    mask = np.ones(len(rows), dtype=bool)
    for col, want in spec.items():
        values = table.column(col, rows, where=f"{label}: {name}: ")
        allowed = list(want) if isinstance(want, (list, tuple, set, np.ndarray)) else [want]
        mask &= np.array([_scalar(v) in allowed for v in values], dtype=bool)
    return mask


def _obs_span(src: _Source, rows) -> list[np.ndarray] | None:
    if "obs_intervals" not in src.units.columns:
        return None
    return [np.asarray(iv, dtype=float).reshape(-1, 2)
            for iv in src.units.column("obs_intervals", rows)]


def _observed(intervals: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Whether [start, stop) lies inside one observation interval, per window."""
    ok = np.zeros(len(start), dtype=bool)
    for a, b in intervals:
        ok |= (start >= a - 1e-9) & (stop <= b + 1e-9)
    return ok


# ------------------------------------------------------------------------------ public
def read_nwb(source: Any, *, bin_size: float, units: Sequence | None = None,
             unit_filter: Mapping | Callable | None = None,
             time_range: tuple[float, float] | None = None,
             align_to: str | Sequence[float] | np.ndarray | None = None,
             window: tuple[float, float] | None = None,
             trial_filter: Mapping | Callable | None = None, intervals: str = "trials",
             allow_empty_units: bool = False, cache_dir: str | os.PathLike | None = None,
             provenance: Mapping | None = None, allow_external: bool = False) -> BinnedData:
    """Bin the spike trains of an NWB file's Units table.

    Parameters
    ----------
    source : str | PathLike | h5py.File | file-like | pynwb.NWBFile
        A local path, an http(s) URL (streamed with HTTP range requests, never downloaded
        whole), an open HDF5 file or file object, or an NWBFile read or built with pynwb.
    bin_size : float
        Bin width in seconds.
    units : sequence of unit ids, optional
        Units to keep, in this order (default: all).
    unit_filter : dict or callable, optional
        Keep units whose Units-table columns match, e.g. ``{"quality": "good"}`` or
        ``{"heldout": False}`` (a value or a list of accepted values per column), or a
        function of the columns (dict of arrays) returning a boolean mask.
    time_range : (start, stop), optional
        Seconds. Default: the span in which every selected unit is observed
        (``obs_intervals``), else from the first to the last spike.
    align_to : str or array of times, optional
        Cut one trial per event: the name of a column of the trials table (e.g.
        ``"start_time"``, ``"go_cue_time"``) or an array of event times.
    window : (before, after), optional
        With ``align_to``: each trial covers [event − before, event + after). Default for
        a trials column: (0, the shortest trial duration).
    trial_filter : dict or callable, optional
        Keep trials whose columns match (as ``unit_filter``).
    intervals : {'trials', 'epochs'}
        The interval table that ``align_to`` and ``trial_filter`` refer to.
    allow_empty_units : bool
        Keep selected units without any spike (default: an error names them).
    cache_dir : path, optional
        Disk cache for streamed URLs.
    provenance : dict, optional
        Merged into the result's provenance (used by ``read_dandi``).
    allow_external : bool
        Follow HDF5 external links, external storage and virtual datasets on the objects read
        (default: refused with an NWBReadError naming the object, since they make the reader
        open files on this machine that the file's author chose).

    Returns
    -------
    BinnedData
        kind "counts", values (trials, time, units); one trial for a continuous time range.
        ``channel_ids`` are the unit ids; ``trials`` holds the trials table's scalar columns.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    NWBReadError
        Not HDF5, truncated, no Units table, unknown unit or column, empty selection,
        units without spikes, a window not covered by ``obs_intervals``.
    ValueError
        bin_size <= 0 or longer than the window.

    Examples
    --------
    >>> data = read_nwb("tests/data/A8604-211122.nwb", bin_size=0.05,
    ...                 time_range=(0.0, 60.0))          # doctest: +SKIP
    >>> data.shape                                        # doctest: +SKIP
    (1, 1200, 3)
    """
    bin_size = check_float("bin_size", bin_size, min_value=0.0, strict_min=True)
    check_option("intervals", intervals, ("trials", "epochs"))
    label = _plain_label(source)
    try:
        src = _open(source, cache_dir, allow_external)
    except _DAMAGED as err:
        if _passes_through(err):
            raise
        raise NWBReadError(f"{label} cannot be read as NWB (damaged or truncated file?): "
                           f"{type(err).__name__}: {err}") from None
    try:
        if intervals == "epochs":
            src.trials = src.epochs
            src.trials_name = "epochs"
        return _read_source(src, bin_size=bin_size, units=units, unit_filter=unit_filter,
                            time_range=time_range, align_to=align_to, window=window,
                            trial_filter=trial_filter, allow_empty_units=allow_empty_units,
                            provenance=provenance, source=source)
    except _DAMAGED as err:
        if _passes_through(err):
            raise
        # h5py reports a damaged file as KeyError / OSError / RuntimeError from deep inside
        raise NWBReadError(f"{src.label} cannot be read (damaged or truncated file?): "
                           f"{type(err).__name__}: {err}") from None
    finally:
        src.close()


_DAMAGED = (OSError, KeyError, RuntimeError, IndexError, OverflowError)


def _passes_through(err: BaseException) -> bool:
    """Errors that already say what is wrong (missing file, network, memory refusal)."""
    from .remote import RemoteReadError

    return isinstance(err, (FileNotFoundError, RemoteReadError, MemoryError, NWBReadError))


def _plain_label(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"<{type(source).__name__}>"


def _read_source(src: _Source, *, bin_size, units, unit_filter, time_range, align_to, window,
          trial_filter, allow_empty_units, provenance, source) -> BinnedData:
    rows = _select_units(src, units, unit_filter)
    unit_ids = src.units.ids[rows]
    spikes = [np.asarray(s, dtype=np.float64).ravel()
              for s in src.units.column("spike_times", rows)]
    for u, s in zip(unit_ids, spikes, strict=True):
        if s.size and not np.isfinite(s).all():
            raise NWBReadError(f"{src.label}: unit {_scalar(u)} has non-finite spike times "
                               f"({int((~np.isfinite(s)).sum())} of {s.size}); the file may be "
                               "damaged.")
    empty = [_scalar(u) for u, s in zip(unit_ids, spikes, strict=True) if s.size == 0]
    if empty and not allow_empty_units:
        raise NWBReadError(f"{src.label}: unit(s) {empty} have no spikes; drop them with "
                           "units=[...] or pass allow_empty_units=True.")
    obs = _obs_span(src, rows)
    trials_out: dict[str, np.ndarray] = {}
    prov_extra: dict[str, Any] = {}
    if align_to is None:
        if window is not None or trial_filter is not None:
            raise ValueError("window and trial_filter need align_to (a trials column or "
                             "event times).")
        if time_range is None:
            t0, t1, cover_all = _default_range(spikes, obs, src.label)
        else:
            t0, t1 = _check_range(time_range)
            cover_all = False
            if obs is not None:
                _check_observed(obs, unit_ids, np.array([t0]), np.array([t1]), src.label)
        n_bins = n_bins_for(t1 - t0, bin_size)
        if cover_all and t0 + n_bins * bin_size <= t1:  # from spikes: keep the last one too
            n_bins += 1
        if n_bins < 1:
            raise ValueError(f"bin_size ({bin_size} s) is longer than the time range "
                             f"[{t0}, {t1}) ({t1 - t0:.6g} s).")
        starts = np.array([t0])
        prov_extra["time_range"] = [float(t0), float(t0 + n_bins * bin_size)]
    else:
        starts, before, after, trial_rows = _trial_starts(src, align_to, window,
                                                         trial_filter)
        n_bins = n_bins_for(before + after, bin_size)
        if n_bins < 1:
            raise ValueError(f"bin_size ({bin_size} s) is longer than the trial window "
                             f"({before + after:.6g} s).")
        if obs is not None:
            keep = np.ones(len(starts), dtype=bool)
            for iv in obs:
                keep &= _observed(iv, starts, starts + n_bins * bin_size)
            if not keep.all():
                logger.warning("%s: %d of %d trials dropped: not every unit is observed "
                               "(obs_intervals) during them", src.label, int((~keep).sum()),
                               len(keep))
                starts = starts[keep]
                trial_rows = None if trial_rows is None else trial_rows[keep]
            if starts.size == 0:
                raise NWBReadError(f"{src.label}: no trial is inside every selected unit's "
                                   "obs_intervals.")
        if trial_rows is not None and src.trials is not None:
            trials_out = src.trials.scalar_columns(trial_rows)
            trials_out["trial_id"] = src.trials.ids[trial_rows]
        prov_extra.update(align_to=align_to if isinstance(align_to, str) else "events",
                          window=[float(before), float(after)])
    counts = bin_spike_times(spikes, bin_size=bin_size, starts=starts, n_bins=n_bins)
    if src.spike_resolution is not None and bin_size < src.spike_resolution:
        logger.warning("bin_size %.3g s is finer than the spike-time resolution %.3g s",
                       bin_size, src.spike_resolution)
    prov = {"reader": "nwb_lrnn.io.read_nwb", "source": _source_label(source, src),
            "bin_size": bin_size, "unit_ids": [_scalar(u) for u in unit_ids],
            **{k: v for k, v in src.meta.items() if v is not None}, **prov_extra}
    if isinstance(source, (str, os.PathLike)) and os.path.exists(os.fspath(source)):
        st = os.stat(source)
        prov.update(file_size=st.st_size, file_mtime=st.st_mtime)
    if provenance:
        prov.update(dict(provenance))
    locations = _unit_locations(src, rows)
    return BinnedData(counts, bin_size, "counts", channel_ids=unit_ids,
                      channel_names=[f"unit {_scalar(u)}" for u in unit_ids],
                      channel_locations=locations, start_times=starts,
                      trials=trials_out or None, provenance=_jsonable(prov))


def _source_label(source, src) -> str:
    if isinstance(source, (str, os.PathLike)):
        s = os.fspath(source)
        return s if "://" in s else str(Path(s).resolve())
    return src.label


def _default_range(spikes, obs, label) -> tuple[float, float, bool]:
    """(start, stop, whether the last spike must be covered)."""
    if obs is not None and all(iv.size for iv in obs):
        t0 = max(float(iv[:, 0].min()) for iv in obs)
        t1 = min(float(iv[:, 1].max()) for iv in obs)
        if t1 <= t0:
            raise NWBReadError(f"{label}: the selected units' obs_intervals do not overlap; "
                               "pass time_range or select units observed together.")
        return t0, t1, False
    nonempty = [s for s in spikes if s.size]
    if not nonempty:
        raise NWBReadError(f"{label}: the selected units have no spikes.")
    return (float(min(s.min() for s in nonempty)), float(max(s.max() for s in nonempty)),
            True)


def _check_range(time_range) -> tuple[float, float]:
    try:
        t0, t1 = (float(v) for v in time_range)
    except (TypeError, ValueError):
        raise ValueError(f"time_range must be (start, stop) in seconds, got {time_range!r}."
                         ) from None
    if not (np.isfinite(t0) and np.isfinite(t1)) or t1 <= t0:
        raise ValueError(f"time_range must satisfy start < stop, got {time_range!r}.")
    return t0, t1


def _check_observed(obs, unit_ids, starts, stops, label):
    for u, iv in zip(unit_ids, obs, strict=True):
        if iv.size and not _observed(iv, starts, stops).all():
            raise NWBReadError(f"{label}: unit {_scalar(u)} is not observed during the whole "
                               f"time range (its obs_intervals: {iv.tolist()[:5]}).")


def _trial_starts(src, align_to, window, trial_filter):
    trial_rows = None
    if isinstance(align_to, str):
        if src.trials is None:
            raise NWBReadError(f"{src.label} has no {src.trials_name} table (/intervals/"
                               f"{src.trials_name}), so align_to={align_to!r} cannot be "
                               "used; pass event times.")
        trial_rows = np.arange(len(src.trials.ids))
        if trial_filter is not None:
            trial_rows = trial_rows[_filter_mask(src.trials, trial_rows, trial_filter,
                                                 src.label, "trial_filter")]
        events = np.asarray(src.trials.column(align_to, trial_rows,
                                              where=f"{src.label}: align_to: "), dtype=float)
        if window is None:
            durations = (np.asarray(src.trials.column("stop_time", trial_rows), dtype=float)
                         - np.asarray(src.trials.column("start_time", trial_rows),
                                      dtype=float))
            window = (0.0, float(np.nanmin(durations)) if durations.size else 0.0)
    else:
        if trial_filter is not None:
            raise ValueError("trial_filter needs align_to to name a trials column.")
        events = np.asarray(align_to, dtype=float).ravel()
        if window is None:
            raise ValueError("window=(before, after) is required when align_to gives event "
                             "times.")
    try:
        before, after = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be (before, after) in seconds, got {window!r}."
                         ) from None
    if before + after <= 0:
        raise ValueError(f"window must cover a positive duration, got {window!r}.")
    ok = np.isfinite(events)
    if not ok.all():
        logger.warning("%d trials without a %s time dropped", int((~ok).sum()), align_to)
        events = events[ok]
        trial_rows = None if trial_rows is None else trial_rows[ok]
    if events.size == 0:
        raise NWBReadError(f"{src.label}: no trial left to align (align_to={align_to!r}, "
                           f"trial_filter={trial_filter!r}).")
    return events - before, before, after, trial_rows


def _unit_locations(src, rows) -> np.ndarray | None:
    el = src.electrodes
    if el is None or "electrodes" not in src.units.columns:
        return None
    if not all(c in el.columns for c in ("x", "y", "z")):
        return None
    try:
        first = [int(np.ravel(v)[0]) if np.size(v) else -1
                 for v in src.units.column("electrodes", rows)]
        xyz = np.stack([np.asarray(_read(el.columns[c][0]), dtype=float) for c in "xyz"], 1)
    except (TypeError, ValueError, IndexError, OSError):
        return None
    loc = np.full((len(rows), 3), np.nan)
    for i, e in enumerate(first):
        if 0 <= e < len(xyz):
            loc[i] = xyz[e]
    return loc


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.generic, bytes)):
        return _scalar(obj)
    return obj
