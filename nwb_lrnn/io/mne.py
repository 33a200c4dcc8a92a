"""Bridge to MNE-Python: EEG/MEG Raw or Epochs in, :class:`~nwb_lrnn.data.BinnedData` out, and back.

:func:`from_mne` turns an ``mne.io.BaseRaw`` (one trial) or an ``mne.BaseEpochs`` (one trial per
epoch) into continuous :class:`~nwb_lrnn.data.BinnedData` with one bin per sample
(``bin_size = 1 / sfreq``), z-scored per channel by default. The means and standard deviations
used for z-scoring are kept in ``provenance["zscore"]`` so that :func:`to_mne` can turn
generated data back into volts, inside an ``mne.io.RawArray`` or ``mne.EpochsArray`` carrying a
copy of the original ``info`` (channel names, types and montage).

MNE is optional: it is imported only when one of these functions is called.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data import BinnedData

if TYPE_CHECKING:  # pragma: no cover - typing only
    import mne

__all__ = ["EEG_EXTENSIONS", "EEGReadError", "from_mne", "read_eeg", "to_mne"]

logger = logging.getLogger(__name__)

_MAX_LISTED = 10  # channel names listed in error messages


EEG_EXTENSIONS = (".edf", ".bdf", ".fif", ".fif.gz", ".vhdr", ".set", ".gdf", ".cnt")


class EEGReadError(ValueError):
    """An EEG file that MNE cannot read (damaged, truncated or of an unknown format)."""


def read_eeg(path: str | os.PathLike, *, preload: bool = True,
             verbose: bool | str | int | None = None):
    """Read an EEG recording with ``mne.io.read_raw``, with errors that name the file.

    Parameters
    ----------
    path : str | PathLike
        An EDF, BDF, FIF, BrainVision (.vhdr), EEGLAB (.set), GDF or CNT file. EDF and BDF
        labels with a type prefix are typed by it (MNE's ``infer_types=True``): ``"EEG
        Fp1"`` becomes the EEG channel ``"Fp1"``, ``"ECG ECG"`` an ECG channel, which
        :func:`from_mne` leaves out of the data channels.
    preload : bool
        Load the data into memory (default True).
    verbose : bool | str | int | None
        MNE verbosity.

    Returns
    -------
    mne.io.BaseRaw

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    EEGReadError
        The extension is not an EEG format MNE reads, or MNE fails on the file (damaged or
        truncated), or the file holds no samples.

    Examples
    --------
    >>> raw = read_eeg("tests/data/S001R01.edf")       # doctest: +SKIP
    >>> raw.info["sfreq"]                               # doctest: +SKIP
    160.0
    """
    mne = _import_mne()
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"EEG file not found: {p}")
    if os.path.isdir(p) and not p.endswith(".ds"):
        raise EEGReadError(f"{p} is a folder, not an EEG file.")
    if not p.lower().endswith((*EEG_EXTENSIONS, ".ds")):
        raise EEGReadError(f"{p}: not an EEG format nwb_lrnn reads through MNE (expected one of "
                           f"{', '.join(EEG_EXTENSIONS)}).")
    import warnings

    # EDF/BDF: channel types from the labels ('EEG Fp1' is the EEG channel 'Fp1', 'ECG ECG' an
    # ECG channel, left out of the data channels), as MNE's infer_types=True reads them;
    # labels without a type prefix ('Fc5.') keep their name and the type EEG
    extra = {"infer_types": True} if p.lower().endswith((".edf", ".bdf")) else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            raw = mne.io.read_raw(p, preload=preload, verbose=verbose, **extra)
    except (ValueError, OSError, KeyError, IndexError, RuntimeError, UnicodeDecodeError,
            NotImplementedError, struct_error()) as err:
        raise EEGReadError(f"{p} cannot be read by MNE (damaged or truncated file?): "
                           f"{type(err).__name__}: {err}") from None
    if raw.n_times == 0 or len(raw.ch_names) == 0:
        raise EEGReadError(f"{p} holds no samples or no channels.")
    return raw


def struct_error() -> type:
    import struct

    return struct.error


def _import_mne() -> Any:
    try:
        import mne
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("MNE-Python is needed to read or write MNE objects; install it with "
                          "`pip install mne` (or `pip install nwb_lrnn[mne]`).") from None
    return mne


def _names(names: Sequence[str]) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        shown += f", ... ({len(names)} in all)"
    return shown


def _describe(inst: Any) -> str:
    """A short name for ``inst`` in error messages: its file name when known."""
    fname = _filename(inst)
    kind = type(inst).__name__
    return f"{kind} from {fname!r}" if fname else kind


def _filename(inst: Any) -> str | None:
    fnames = getattr(inst, "filenames", None)
    if fnames:
        first = fnames[0]
        if first is not None:
            return str(first)
    fname = getattr(inst, "filename", None)
    return None if fname is None else str(fname)


def _pick_indices(mne: Any, info: Any, picks: Any, exclude: list[str]) -> np.ndarray:
    """Channel indices for ``picks`` with MNE's meaning, through MNE's public API only.

    None or ``"data"``: the data channels (MEG, EEG, sEEG, ECoG, DBS, fNIRS, CSD; MNE's
    ``pick_types``); ``"all"``: every channel; a channel type (``"eeg"``, ``"mag"``,
    ``"meg"``, ...) or a list of types; a list of channel names; integer indices or a slice.
    An empty result is returned empty (the caller names what was asked for).
    """
    names = list(info.ch_names)
    types = info.get_channel_types()
    n = len(names)
    if picks is None or (isinstance(picks, str) and picks == "data"):
        idx = mne.pick_types(info, meg=True, eeg=True, seeg=True, ecog=True, dbs=True,
                             fnirs=True, csd=True, exclude=[])
    elif isinstance(picks, str) and picks == "all":
        idx = np.arange(n)
    elif isinstance(picks, slice):
        idx = np.arange(n)[picks]
    else:
        items = [picks] if isinstance(picks, str) else list(np.atleast_1d(np.asarray(
            picks, dtype=object)))
        if all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in items):
            bad = [int(p) for p in items if not -n <= int(p) < n]
            if bad:
                raise ValueError(f"picks {bad} are out of range for {n} channels.")
            idx = np.asarray([int(p) % n for p in items], dtype=int)
        elif all(isinstance(p, str) for p in items):
            known_types = set(types) | set(mne.io.get_channel_type_constants()) | {"meg"}
            if all(p in known_types and p not in names for p in items):
                wanted = set()
                for p in items:
                    wanted |= {"mag", "grad"} if p == "meg" else {p}
                idx = np.asarray([i for i, t in enumerate(types) if t in wanted], dtype=int)
            else:
                missing = [p for p in items if p not in names]
                if missing:
                    raise ValueError(f"picks name channel(s) {missing[:5]} that the recording "
                                     f"does not have (it has {n}: {names[:5]}...; channel "
                                     f"types {sorted(set(types))}).")
                idx = np.asarray([names.index(p) for p in items], dtype=int)
        else:
            raise TypeError(f"picks must be None, 'data', 'all', a channel type, channel "
                            f"names, indices or a slice; got {picks!r}.")
    idx = np.asarray(idx, dtype=int)
    return idx[[names[i] not in exclude for i in idx]] if idx.size else idx


def _log_level(mne: Any, verbose: Any) -> Any:
    """MNE's log level set to ``verbose`` inside the block; left alone when it is None."""
    if verbose is None:
        return contextlib.nullcontext()
    return mne.utils.use_log_level(verbose)


def _meas_date(info: Any) -> str | None:
    date = info.get("meas_date")
    return None if date is None else date.isoformat()


def _subject_info(info: Any) -> dict | None:
    """The subject fields of ``info['subject_info']`` an NWB Subject can hold, or None.

    ``his_id`` becomes ``subject_id`` unless it is empty or EDF+'s "X" (not known); ``sex`` 1
    and 2 become "M" and "F"; ``birthday`` an ISO date."""
    si = info.get("subject_info") or {}
    his_id = str(si.get("his_id") or "").strip()
    sex = {1: "M", 2: "F"}.get(si.get("sex"))
    birthday = si.get("birthday")
    out = {"subject_id": his_id if his_id not in ("", "X") else None, "sex": sex,
           "birthday": birthday.isoformat() if hasattr(birthday, "isoformat") else None}
    return out if any(v is not None for v in out.values()) else None


def _picks_repr(picks: Any) -> Any:
    if picks is None or isinstance(picks, str):
        return picks
    if isinstance(picks, slice):
        return repr(picks)
    arr = np.asarray(picks)
    return arr.tolist()


def from_mne(
    inst: mne.io.BaseRaw | mne.BaseEpochs,
    *,
    picks: Any = None,
    zscore: bool = True,
    exclude_bads: bool = True,
    reject_by_annotation: bool = True,
    verbose: bool | str | int | None = None,
) -> BinnedData:
    """Convert an MNE Raw or Epochs object to continuous :class:`BinnedData`.

    The input is never modified; the data are copied.

    Parameters
    ----------
    inst : mne.io.BaseRaw | mne.BaseEpochs
        The recording. A Raw gives one trial of shape (n_times, n_channels); Epochs give one
        trial per epoch (epochs dropped by MNE are not included).
    picks : str | list | slice | None
        Channels to include, with MNE's meaning: None (default) or ``"data"`` for the data
        channels (MEG, EEG, sEEG, ECoG, DBS, fNIRS, CSD; no stimulus, EOG, ECG or misc
        channels), ``"all"``, a channel type such as ``"eeg"`` or ``"meg"``, a list of names
        or indices, or a slice.
    zscore : bool
        If True (default), z-score each channel over the whole recording (all epochs and
        times, ignoring annotated bad segments); the means and standard deviations (in the
        channels' units, volts for EEG) are stored in ``provenance["zscore"]``.
    exclude_bads : bool
        If True (default), leave out the channels listed in ``inst.info["bads"]``.
    reject_by_annotation : bool
        Raw only: if True (default), set the samples inside annotations whose description
        starts with ``"BAD"`` to NaN; the result then has ``nan_policy="allow"``. Epochs
        overlapping bad annotations are already dropped by MNE when the epochs are made.
    verbose : bool | str | int | None
        MNE verbosity for the duration of the call (as in MNE).

    Returns
    -------
    data : BinnedData
        ``kind="continuous"``, ``bin_size = 1 / sfreq``, values of shape
        (1, n_times, n_channels) for a Raw or (n_epochs, n_times, n_channels) for Epochs;
        ``channel_names`` are MNE's channel names, ``channel_locations`` the 3-D positions
        (metres, head frame) when a montage is set, else None. ``start_times`` is
        ``first_samp / sfreq`` for a Raw and ``events[:, 0] / sfreq + tmin`` for Epochs (MNE's
        sample numbering), and the trials table of Epochs has the column ``event_code``.
        ``provenance`` holds ``source`` ("mne"), ``filename``, ``mne_type``, ``sfreq``,
        ``highpass``, ``lowpass``, ``picks``, ``bads_excluded``, ``meas_date`` (ISO string or
        None), ``n_bad_samples`` and ``zscore`` (``{"mean": [...], "std": [...]}`` per channel,
        or None).

    Raises
    ------
    TypeError
        If ``inst`` is not an MNE Raw or Epochs.
    ValueError
        If ``picks`` selects no channel, if a channel is all NaN or flat (zero variance), if
        the data hold NaN outside the annotated bad segments, or if every sample is annotated
        bad.

    Examples
    --------
    >>> import mne
    >>> raw = mne.io.read_raw_edf("S001R01.edf", preload=True, verbose="error")
    >>> data = from_mne(raw, picks="eeg", verbose="error")
    >>> data.shape, data.bin_size
    ((1, 9760, 64), 0.00625)
    """
    mne = _import_mne()
    if isinstance(inst, mne.io.BaseRaw):
        is_raw = True
    elif isinstance(inst, mne.BaseEpochs):
        is_raw = False
    else:
        raise TypeError(f"from_mne needs an mne.io.BaseRaw or mne.BaseEpochs instance, got "
                        f"{type(inst).__name__}. Read files with mne.io.read_raw(...) first.")
    with _log_level(mne, verbose):
        return _from_mne(mne, inst, is_raw, picks, bool(zscore), bool(exclude_bads),
                         bool(reject_by_annotation))


def _from_mne(mne: Any, inst: Any, is_raw: bool, picks: Any, zscore: bool, exclude_bads: bool,
              reject_by_annotation: bool) -> BinnedData:
    info = inst.info
    what = _describe(inst)
    bads = [b for b in info["bads"] if b in info.ch_names] if exclude_bads else []
    idx = _pick_indices(mne, info, picks, exclude=bads)
    # MNE keeps bad channels that are named explicitly in picks; here exclude_bads wins
    idx = np.array([i for i in idx if info.ch_names[i] not in bads], dtype=int)
    if idx.size == 0:
        raise ValueError(f"{what}: no channel left after picks={picks!r} (bads excluded: "
                         f"{bads if bads else 'none'}); the recording has channel types "
                         f"{sorted(set(inst.get_channel_types()))}.")
    ch_names = [info.ch_names[i] for i in idx]
    sfreq = float(info["sfreq"])

    if is_raw:
        arr = np.asarray(inst.get_data(picks=idx, reject_by_annotation=None), dtype=np.float64)
        arr = arr[None]  # (1, n_ch, n_times)
        bad_mask = np.zeros(arr.shape[-1], dtype=bool)
        if reject_by_annotation and len(inst.annotations):
            # MNE's own rule for which samples BAD_ annotations cover, probed on one channel
            probe = np.isnan(inst.get_data(picks=idx[:1], reject_by_annotation="NaN")[0])
            orig_nan = np.isnan(arr[0, 0])
            bad_mask = (probe & ~orig_nan) | (orig_nan & _annotated_bad(inst, arr.shape[-1]))
        start_times = np.array([inst.first_samp / sfreq])
        trials = None
    else:
        arr = np.asarray(inst.get_data(picks=idx), dtype=np.float64)  # (n_ep, n_ch, n_times)
        bad_mask = np.zeros(arr.shape[-1], dtype=bool)
        events = np.asarray(inst.events)
        start_times = events[:, 0] / sfreq + float(inst.tmin)
        trials, epochs_info = _epochs_trials(inst, events)
    if arr.shape[0] == 0:
        raise ValueError(f"{what}: there is no epoch left (all were dropped).")

    # NaN that no BAD_ annotation explains
    nan = np.isnan(arr)
    if nan.any():
        unexplained = nan & ~bad_mask[None, None, :]
        if unexplained.any():
            per_ch = unexplained.any(axis=(0, 2))
            all_nan = nan.all(axis=(0, 2))
            if all_nan.any():
                names = [ch_names[i] for i in np.flatnonzero(all_nan)]
                raise ValueError(f"{what}: channel(s) {_names(names)} are all NaN; mark them "
                                 f"bad (inst.info['bads']) or leave them out with picks.")
            names = [ch_names[i] for i in np.flatnonzero(per_ch)]
            first = int(np.argmax(unexplained.any(axis=(0, 1))))
            raise ValueError(f"{what}: channel(s) {_names(names)} contain "
                             f"{int(unexplained.sum())} NaN value(s) not covered by a BAD_ "
                             f"annotation (first at sample {first}, t={first / sfreq:.3f} s); "
                             f"annotate these segments as BAD_... or interpolate them.")
    if bad_mask.all():
        raise ValueError(f"{what}: every sample is inside a BAD_ annotation; nothing is left.")
    arr[:, :, bad_mask] = np.nan

    good = arr[:, :, ~bad_mask]
    mean = good.mean(axis=(0, 2))
    std = good.std(axis=(0, 2))
    flat = ~(std > 0.0) | (good.max(axis=(0, 2)) == good.min(axis=(0, 2)))
    if flat.any():
        names = [ch_names[i] for i in np.flatnonzero(flat)]
        raise ValueError(f"{what}: channel(s) {_names(names)} are flat (standard deviation 0); "
                         f"mark them bad (inst.info['bads']) or leave them out with picks.")
    if zscore:
        arr = (arr - mean[None, :, None]) / std[None, :, None]

    values = np.transpose(arr, (0, 2, 1))  # (trials, time, ch)
    n_bad = int(bad_mask.sum())

    locations = None
    if inst.get_montage() is not None:
        locs = np.array([info["chs"][i]["loc"][:3] for i in idx], dtype=np.float64)
        locs[np.all(locs == 0, axis=1)] = np.nan
        locations = locs

    provenance = {
        "source": "mne",
        "mne_type": type(inst).__name__,
        "filename": _filename(inst),
        "sfreq": sfreq,
        "highpass": float(info["highpass"]),
        "lowpass": float(info["lowpass"]),
        "picks": "data" if picks is None else _picks_repr(picks),
        "bads_excluded": bads,
        "meas_date": _meas_date(info),
        "subject_info": _subject_info(info),
        "n_bad_samples": n_bad,
        "zscore": {"mean": mean.tolist(), "std": std.tolist()} if zscore else None,
    }
    if not is_raw:
        provenance["epochs"] = epochs_info
    logger.info("Read %s: %d trial(s) x %d samples x %d channels at %g Hz%s.", what,
                values.shape[0], values.shape[1], values.shape[2], sfreq,
                f", {n_bad} sample(s) in BAD_ annotations set to NaN" if n_bad else "")
    return BinnedData(values, 1.0 / sfreq, "continuous", channel_names=ch_names,
                      channel_locations=locations, start_times=start_times, trials=trials,
                      provenance=provenance, nan_policy="allow" if n_bad else "raise")


def _epochs_trials(inst: Any, events: np.ndarray) -> tuple[dict, dict]:
    """The trials table of Epochs (event code, name, sample, and the metadata's columns) and
    what rebuilds the same Epochs later (tmin, event_id, the metadata's column names)."""
    codes = events[:, 2].astype(np.int64)
    event_id = {str(k): int(v) for k, v in (inst.event_id or {}).items()}
    name_of = {v: k for k, v in event_id.items()}
    trials: dict[str, np.ndarray] = {
        "event_code": codes,
        "event": np.asarray([name_of.get(int(c), str(int(c))) for c in codes], dtype=object),
        "event_sample": events[:, 0].astype(np.int64),
        "event_prev": events[:, 1].astype(np.int64)}
    columns = []
    meta = getattr(inst, "metadata", None)
    if meta is not None:
        for col in meta.columns:
            vals = np.asarray(meta[col].to_numpy())
            if vals.dtype.kind in "biuf" or (vals.dtype.kind in "OUS" and all(
                    isinstance(v, str) for v in vals)):
                trials[f"metadata.{col}"] = vals if vals.dtype.kind != "U" else vals.astype(
                    object)
                columns.append(str(col))
            else:
                logger.info("Epochs metadata column %r (mixed types) is not carried over", col)
    return trials, {"tmin": float(inst.tmin), "event_id": event_id,
                    "metadata_columns": columns}


def epochs_like(data: Any, values: np.ndarray, info: Any) -> Any:
    """An ``mne.EpochsArray`` of ``values`` (trials, time, channels) carrying the events,
    ``tmin``, ``event_id`` and metadata that ``data`` (read from Epochs by :func:`from_mne`)
    came with; plain trials get events at their start times, ``tmin=0``."""
    mne = _import_mne()
    sfreq = float(info["sfreq"])
    trials = data.trials or {}
    ep = data.provenance.get("epochs") if isinstance(data.provenance, dict) else None
    arr = np.transpose(np.asarray(values, dtype=np.float64), (0, 2, 1))
    if isinstance(ep, dict) and "event_sample" in trials:
        events = np.column_stack([np.asarray(trials["event_sample"], int),
                                  np.asarray(trials["event_prev"], int),
                                  np.asarray(trials["event_code"], int)])
        metadata = None
        cols = [c for c in ep.get("metadata_columns", []) if f"metadata.{c}" in trials]
        if cols:
            import pandas as pd

            metadata = pd.DataFrame({c: trials[f"metadata.{c}"] for c in cols})
        event_id = {k: v for k, v in ep.get("event_id", {}).items()
                    if v in set(events[:, 2].tolist())} or None
        return mne.EpochsArray(arr, info, events=events, tmin=float(ep["tmin"]),
                               event_id=event_id, metadata=metadata, verbose=False)
    starts = np.asarray(data.start_times, dtype=float)
    events = np.column_stack([np.round(starts * sfreq).astype(int), np.zeros(len(starts), int),
                              np.asarray(trials.get("event_code", np.ones(len(starts))), int)])
    return mne.EpochsArray(arr, info, events=events, tmin=0.0, verbose=False)


def _annotated_bad(raw: Any, n_times: int) -> np.ndarray:
    """Boolean mask (n_times,) of the samples inside annotations starting with 'bad'."""
    mask = np.zeros(n_times, dtype=bool)
    sfreq = raw.info["sfreq"]
    onsets = raw.annotations.onset - raw.first_time
    for onset, dur, desc in zip(onsets, raw.annotations.duration,
                                raw.annotations.description, strict=True):
        if not desc.lower().startswith("bad"):
            continue
        start = max(int(np.round(onset * sfreq)), 0)
        stop = min(int(np.round((onset + dur) * sfreq)), n_times)
        mask[start:stop] = True
    return mask


def to_mne(
    data: BinnedData | np.ndarray,
    info: mne.Info,
    *,
    scale: bool | None = None,
    verbose: bool | str | int | None = None,
) -> mne.io.RawArray | mne.EpochsArray:
    """Wrap binned data (for instance generated by a fitted model) in an MNE object.

    Parameters
    ----------
    data : BinnedData | ndarray, shape (n_trials, n_times, n_channels) or (n_times, n_channels)
        The data, one bin per sample. A :class:`BinnedData` must have ``1 / bin_size`` equal to
        ``info["sfreq"]``.
    info : mne.Info
        Measurement info with exactly ``n_channels`` channels, typically ``raw.info`` of the
        recording the model was fitted on (after the same picks). It is copied, never
        modified.
    scale : bool | None
        Whether to undo the z-scoring of :func:`from_mne` with the means and standard
        deviations in ``data.provenance["zscore"]``. None (default): undo it when the
        provenance has it. True: undo it, and raise if it is missing. False: keep the values
        as they are.
    verbose : bool | str | int | None
        MNE verbosity (as in MNE).

    Returns
    -------
    inst : mne.io.RawArray | mne.EpochsArray
        A RawArray for one trial (or a 2-D array), an EpochsArray (one epoch per trial,
        ``tmin=0``) otherwise; its info is ``info.copy()``, so channel names, types and
        montage are kept.

    Raises
    ------
    TypeError
        If ``info`` is not an ``mne.Info`` or ``data`` is not a BinnedData or an array.
    ValueError
        If the channel count or the sampling rate disagree with ``info``, or if ``scale=True``
        but the provenance has no z-scoring figures.

    Examples
    --------
    >>> data = from_mne(raw, verbose="error")             # z-scored, (1, n_times, n_ch)
    >>> raw2 = to_mne(data, raw.copy().pick("eeg").info)  # back in volts
    >>> raw2.get_data().shape
    (64, 9760)
    """
    mne = _import_mne()
    if not isinstance(info, mne.Info):
        raise TypeError(f"info must be an mne.Info (e.g. raw.info), got {type(info).__name__}.")
    sfreq = float(info["sfreq"])
    provenance: dict[str, Any] = {}
    if isinstance(data, BinnedData):
        values = np.asarray(data.values, dtype=np.float64)
        provenance = data.provenance
        data_sfreq = 1.0 / data.bin_size
        if not np.isclose(data_sfreq, sfreq, rtol=1e-6, atol=0.0):
            raise ValueError(f"data was generated at {data_sfreq:g} Hz but info says "
                             f"{sfreq:g} Hz (bin_size {data.bin_size:g} s); resample one of "
                             f"them first.")
    elif isinstance(data, np.ndarray) or hasattr(data, "__array__"):
        values = np.asarray(data, dtype=np.float64)
        if values.ndim == 2:
            values = values[None]
        if values.ndim != 3:
            raise ValueError(f"data must be shaped (n_trials, n_times, n_channels) or "
                             f"(n_times, n_channels), got shape {values.shape}.")
    else:
        raise TypeError(f"data must be a BinnedData or an ndarray, got {type(data).__name__}.")
    n_ch = values.shape[2]
    if n_ch != len(info.ch_names):
        raise ValueError(f"data has {n_ch} channels but info has {len(info.ch_names)} "
                         f"({_names(info.ch_names)}); pick the same channels in info "
                         f"(e.g. raw.copy().pick(...).info).")
    if isinstance(data, BinnedData) and list(data.channel_names) != list(info.ch_names):
        logger.debug("Channel names of data and info differ; using info's.")

    zs = provenance.get("zscore") if isinstance(provenance, dict) else None
    if scale is None:
        scale = zs is not None
    elif scale and zs is None:
        raise ValueError("scale=True but data.provenance has no 'zscore' means/stds (data "
                         "were not z-scored by from_mne); pass scale=False.")
    if scale:
        mean = np.asarray(zs["mean"], dtype=np.float64)
        std = np.asarray(zs["std"], dtype=np.float64)
        if mean.shape != (n_ch,) or std.shape != (n_ch,):
            raise ValueError(f"data.provenance['zscore'] has {mean.size} means and {std.size} "
                             f"stds but data has {n_ch} channels.")
        values = values * std + mean

    with _log_level(mne, verbose):
        new_info = info.copy()
        if values.shape[0] == 1:
            return mne.io.RawArray(values[0].T, new_info, verbose=verbose)
        return mne.EpochsArray(np.transpose(values, (0, 2, 1)), new_info, tmin=0.0,
                               verbose=verbose)
