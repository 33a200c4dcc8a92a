"""Hyperparameter sweeps, seeds and whole dandisets as Ray Tune trials.

Every trial fits a :class:`~nwb_lrnn.LowRankRNN` on a training split, scores it on a validation
split, writes the fit as ``out_dir/trial_<id>.nwb`` and reports the score to Ray Tune. Training
runs in chunks of epochs through the estimator's own checkpoints
(``LowRankRNN.fit(checkpoint=..., resume=True, until_epoch=...)``: arrays and JSON, no pickle);
after each chunk the checkpoint is handed to Tune, so a trial whose worker dies resumes exactly
where it stopped.

Ray is optional: it is imported inside the functions that need it
(``pip install 'nwb-lrnn[ray]'``); ``backend="serial"`` runs the same trials one after another
in this process without Ray.

Examples
--------
>>> from nwb_lrnn.sweep import sweep
>>> res = sweep(data, search_space={"rank": [1, 2, 3], "random_state": [0, 1]},
...             fixed_params={"n_units": 64, "max_epochs": 100},
...             metric="val_bound", out_dir="sweep_out")            # doctest: +SKIP
>>> res.table[["rank", "random_state", "val_bound", "nwb_path"]]    # doctest: +SKIP
>>> est = res.best_estimator()                                      # doctest: +SKIP

The module itself is callable, so ``nwb_lrnn.sweep(...)`` is :func:`sweep` whether
``nwb_lrnn.sweep`` resolves to this module or to the function.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _defaults
from .data import BinnedData

logger = logging.getLogger(__name__)

__all__ = ["METRICS", "SweepResult", "run_trial", "sweep", "sweep_from_config",
           "sweep_sessions"]

METRICS = ("val_bound", "dstsp", "co_bps")
_DEFAULT_MODE = {"val_bound": "max", "dstsp": "min", "co_bps": "max"}
_RAY_HINT = "Ray is needed for sweeps on Ray: pip install 'nwb-lrnn[ray]'"
#: columns of :attr:`SweepResult.table` besides the parameters
_BOOK_COLUMNS = ("trial_id", "session", "status", "nwb_path", "seconds", "epochs",
                 "start_epoch", "restored", "error")


def _import_ray():
    try:
        import ray
        from ray import tune
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"{_RAY_HINT} ({err})") from None
    return ray, tune


# ---------------------------------------------------------------------------- sources
def _session_name(src: Any, i: int) -> str:
    if isinstance(src, Mapping):
        for key in ("name", "asset", "path", "url"):
            if src.get(key):
                return str(src[key])
        if isinstance(src.get("dandi_asset"), Mapping) and src["dandi_asset"].get("path"):
            return str(src["dandi_asset"]["path"])
        return f"session_{i}"
    if isinstance(src, BinnedData):
        return f"session_{i}"
    return str(src)


# what a dict source holds: a file, a URL, a dandiset to resolve, or an asset resolved already
# (``{"dandi_asset": io.dandi.resolve_dandi(...)[i].to_dict()}``, checked when read)
_SOURCE_KEYS = ("path", "url", "dandiset", "dandi_asset")


def _normalize_sources(data_or_sources: Any) -> dict[str, Any]:
    """``{name: BinnedData | source spec}`` from the accepted inputs of :func:`sweep`."""
    if isinstance(data_or_sources, BinnedData):
        return {"data": data_or_sources}
    if isinstance(data_or_sources, (str, os.PathLike)):
        return {str(data_or_sources): str(data_or_sources)}
    if isinstance(data_or_sources, Mapping):
        if not data_or_sources:
            raise ValueError("data_or_sources is an empty dict: give at least one session.")
        if any(k in data_or_sources for k in _SOURCE_KEYS):
            return {_session_name(data_or_sources, 0): dict(data_or_sources)}
        out = {}
        for name, src in data_or_sources.items():
            out[str(name)] = _check_source(src, str(name))
        return out
    if isinstance(data_or_sources, Sequence):
        if len(data_or_sources) == 0:
            raise ValueError("data_or_sources is an empty list: give at least one source.")
        out = {}
        for i, src in enumerate(data_or_sources):
            name = _session_name(src, i)
            if name in out:
                name = f"{name}#{i}"
            out[name] = _check_source(src, name)
        return out
    raise TypeError("data_or_sources must be a BinnedData, a dict name -> BinnedData/source, "
                    "or a list of sources (NWB paths, URLs or dicts such as {'dandiset': "
                    f"'000128', 'asset': 'sub-*/...nwb'}}); got {type(data_or_sources).__name__}.")


def _check_source(src: Any, name: str) -> Any:
    if isinstance(src, BinnedData):
        return src
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, Mapping):
        if not any(k in src for k in _SOURCE_KEYS):
            raise ValueError(f"source {name!r} is a dict without 'path', 'url', 'dandiset' or "
                             f"'dandi_asset': {dict(src)!r}.")
        return dict(src)
    raise TypeError(f"source {name!r} must be a BinnedData, a path/URL or a dict; got "
                    f"{type(src).__name__}.")


_DANDI_KEYS = ("dandiset", "asset", "version", "api_url")
#: what population-based training may change in a running trial (the rest is its model)
PBT_MUTABLE = ("learning_rate", "lr_final")


def _expand_dandisets(sessions: dict[str, Any], read_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Dandiset sources resolved once, here on the driver, into one source per NWB asset
    (``{"dandi_asset": DandiAsset.to_dict(), **reader kwargs}``), named by asset path: the
    trials read their asset with no DANDI API request of their own, however many seeds or
    settings share it."""
    from .io.dandi import resolve_dandi
    from .io.sources import source_kind

    out: dict[str, Any] = {}
    for name, src in sessions.items():
        if isinstance(src, str) and source_kind(src) == "dandi":
            spec = {"dandiset": src}
        elif isinstance(src, Mapping) and "dandiset" in src:
            spec = dict(src)
        else:
            out[name] = src
            continue
        kw = {k: v for k, v in {**read_kwargs, **spec}.items() if k in _DANDI_KEYS}
        rest = {k: v for k, v in spec.items() if k not in _DANDI_KEYS and k != "name"}
        assets = resolve_dandi(str(kw.pop("dandiset")), **kw)
        for a in assets:
            key = a.path if len(sessions) == 1 else f"{name}:{a.path}"
            if key in out:
                raise ValueError(f"two sources select the same asset {a.path!r}.")
            out[key] = {"dandi_asset": a.to_dict(), **rest}
        logger.info("%s: %d NWB asset(s), resolved once for every trial", name, len(assets))
    return out


def load_source(src: Any, read_kwargs: Mapping[str, Any] | None = None) -> BinnedData:
    """Read one sweep source into :class:`~nwb_lrnn.BinnedData` (inside the trial's worker).

    Parameters
    ----------
    src : BinnedData | str | dict
        A ``BinnedData`` (returned as is); a local NWB path or an NWB URL (read with
        :func:`~nwb_lrnn.io.read_nwb`); an EEG file MNE reads (``.edf``, ``.bdf``, ``.fif``,
        ``.vhdr``, ``.set``; read with ``mne.io.read_raw`` and
        :func:`~nwb_lrnn.io.from_mne`); ``"DANDI:000128[/version]"``; or a dict
        ``{"dandiset": ..., "asset": ..., "version": ..., **reader kwargs}``,
        ``{"path": ..., **reader kwargs}`` or ``{"url": ..., **reader kwargs}``.
    read_kwargs : dict, optional
        Reader keyword arguments shared by all sources (e.g. ``{"bin_size": 0.02}``); a dict
        source's own keys win.

    Returns
    -------
    BinnedData
    """
    if isinstance(src, BinnedData):
        return src
    kw = dict(read_kwargs or {})
    if isinstance(src, Mapping) and "dandi_asset" in src:  # resolved on the driver
        from .io.dandi import read_dandi_asset

        kw.update({k: v for k, v in src.items() if k != "dandi_asset"})
        for k in _DANDI_KEYS:
            kw.pop(k, None)
        _need_bin_size(kw, src["dandi_asset"].get("path"))
        return read_dandi_asset(src["dandi_asset"], **kw)
    if isinstance(src, Mapping):
        kw.update({k: v for k, v in src.items() if k not in ("path", "url", "name")})
        target = src.get("path") or src.get("url")
    else:
        target = str(src)
    from .io.sources import read, source_kind

    if isinstance(src, Mapping) and "dandiset" in src:
        target = kw.pop("dandiset")
    if source_kind(target) != "eeg":
        _need_bin_size(kw, target)
    else:
        kw.pop("bin_size", None)  # EEG keeps its own rate (one latent step per sample)
    out = read(target, **kw)
    if isinstance(out, list):
        raise ValueError(f"source {target or src!r} selects {len(out)} sessions; give one "
                         "asset per source (list them to run one task per session).")
    return out


def _check_read_settings(src: Any, read_kwargs: dict[str, Any]) -> None:
    """The reader settings a source needs (a bin size for spikes), checked on the driver."""
    from .io.sources import source_kind

    if isinstance(src, BinnedData):
        return
    kw = {**read_kwargs, **(src if isinstance(src, Mapping) else {})}
    target = (src.get("path") or src.get("url") or (src.get("dandi_asset") or {}).get("path")
              if isinstance(src, Mapping) else str(src))
    if isinstance(src, Mapping) and "dandi_asset" in src:
        _need_bin_size(kw, target)
    elif target is not None and source_kind(str(target)) != "eeg":
        _need_bin_size(kw, target)


def _need_bin_size(kw: Mapping[str, Any], target: Any) -> None:
    if "bin_size" not in kw:
        raise ValueError(f"reading {target!r} needs a bin size: pass read_kwargs="
                         "{'bin_size': 0.02} (seconds) or put 'bin_size' in the source dict.")


def _split(data: BinnedData, validation_fraction: float, seed: int,
           ) -> tuple[BinnedData, BinnedData]:
    """Train/validation split: by trials when there are >= 2, else in time."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}.")
    if data.n_trials >= 2:
        return data.split_trials(validation_fraction, random_state=seed)
    return data.split_time(1.0 - validation_fraction)


# ---------------------------------------------------------------------------- metrics
def heldout_channels(n_channels: int) -> np.ndarray:
    """The neurons a ``co_bps`` sweep holds out: every 5th (indices 4, 9, ...; at least one).

    The fit sees the others only; co-bps scores how well its latents predict these on the
    validation trials (the Neural Latents Benchmark's protocol, :mod:`nwb_lrnn.analysis.heldout`).
    """
    if n_channels < 2:
        raise ValueError("metric='co_bps' holds out neurons and needs at least 2, got "
                         f"{n_channels}.")
    idx = np.arange(4, n_channels, 5)
    return idx if idx.size else np.array([n_channels - 1])


def _channels(data: BinnedData, idx: np.ndarray) -> BinnedData:
    names = [data.channel_names[i] for i in idx]
    return BinnedData(data.values[:, :, idx], data.bin_size, data.kind, inputs=data.inputs,
                      channel_names=names, start_times=data.start_times,
                      provenance=data.provenance)


def _heldin_heldout(data: BinnedData) -> tuple[BinnedData, BinnedData]:
    out = heldout_channels(data.n_channels)
    keep = np.setdiff1d(np.arange(data.n_channels), out)
    return _channels(data, keep), _channels(data, out)


def compute_metric(est, val: BinnedData, metric: str, *, random_state: int = 0,
                   train: BinnedData | None = None,
                   heldout: tuple[BinnedData, BinnedData] | None = None) -> float:
    """Score a fitted estimator on validation data.

    Parameters
    ----------
    est : LowRankRNN
        Fitted.
    val : BinnedData, shape (trials, time, channels)
    metric : {'val_bound', 'dstsp', 'co_bps'}
        'val_bound': the SMC bound per time step (``est.score``; higher is better).
        'dstsp': D_stsp between data generated by the model (same shape as ``val``, after a
        burn-in of 100 steps) and ``val`` (continuous data; lower is better).
        'co_bps': the Neural Latents Benchmark's held-out bits per spike: ``est`` was fitted
        to held-in neurons; readouts from its latents on ``train`` to the held-out neurons'
        counts predict them on ``val`` (spike data; higher is better). Needs ``train`` and
        ``heldout`` = (held-out counts of ``train``, of ``val``).
    train : BinnedData, optional
        The held-in training data (``co_bps``).
    heldout : (BinnedData, BinnedData), optional
        The held-out neurons' counts on the training and validation trials (``co_bps``).

    Returns
    -------
    float
    """
    from . import metrics as M

    if metric == "val_bound":
        return float(est.score(val, random_state=random_state))
    if metric == "dstsp":
        gen = est.sample(val.n_trials, val.n_time, burn_in=100, random_state=random_state)
        return float(M.dstsp(val.values, gen.values, random_state=random_state))
    if metric == "co_bps":
        if val.kind != "counts":
            raise ValueError("metric='co_bps' needs spike counts; these data are "
                             f"{val.kind!r} (use 'val_bound' or 'dstsp').")
        if train is None or heldout is None:
            raise ValueError("metric='co_bps' is computed on held-out neurons: pass train= "
                             "(held-in training data) and heldout=(train, val) counts of the "
                             "held-out neurons (run_trial does this).")
        from .analysis.heldout import predict_heldout

        rates = predict_heldout(est, train, heldout[0], val, random_state=random_state)
        return float(M.co_bps(rates, heldout[1].values))
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")


# ---------------------------------------------------------------------------- one trial
def run_trial(params: Mapping[str, Any], data: BinnedData, *, metric: str = "val_bound",
              nwb_path: str | os.PathLike | None = None, validation_fraction: float = 0.2,
              chunk_epochs: int | None = None, checkpoint_dir: str | os.PathLike | None = None,
              on_chunk: Callable[[dict[str, Any], Path], None] | None = None,
              include: Sequence[str] = ("model", "metrics"), torch_threads: int | None = 1,
              adopt: bool = False, split_seed: int | None = None) -> dict[str, Any]:
    """Fit, score and write one :class:`~nwb_lrnn.LowRankRNN` (one sweep trial; no Ray).

    Training runs in chunks of ``chunk_epochs`` epochs through the estimator's own
    ``fit(checkpoint=..., resume=True, until_epoch=...)``: one fit's learning-rate schedule and
    Adam state, cut at the chunk ends, so a trial that was stopped and resumed ends bitwise
    where an uninterrupted fit with the same settings ends (on CPU). After each chunk the
    metric is computed on the validation split with what the fit holds at that point (with
    ``restore_best``, the default: its best validation epoch so far) and ``on_chunk(report,
    checkpoint)`` is called with the path of the training checkpoint, where a Tune trial saves
    it and reports.

    Parameters
    ----------
    params : dict
        ``LowRankRNN`` constructor arguments (``verbose`` is forced to False).
    data : BinnedData, shape (trials, time, channels)
        Split into training and validation parts (by trials, or in time for one trial).
    metric : {'val_bound', 'dstsp', 'co_bps'}
        See :func:`compute_metric`.
    nwb_path : path, optional
        Where to write the fit (atomically, replacing a previous attempt's file).
    validation_fraction : float in (0, 1)
    chunk_epochs : int, optional
        Epochs per chunk (default: ``ceil(max_epochs / 10)``).
    checkpoint_dir : path, optional
        A folder holding a checkpoint that ``on_chunk`` was given (file ``fit.ckpt.npz``) to
        resume from.
    on_chunk : callable(report: dict, checkpoint: Path), optional
    include : sequence of str
        What :func:`~nwb_lrnn.write_nwb` writes.
    torch_threads : int or None
        ``torch.set_num_threads`` in this process (None: leave as is).
    adopt : bool
        The checkpoint may come from another trial whose learning rates or seed differ
        (population-based training's exploit step): continued with ``resume='adopt'``.
    split_seed : int, optional
        Seed of the train/validation split (default: the trial's ``random_state``; a
        population shares one split so that its scores compare).

    Returns
    -------
    dict
        ``metric`` value under its name, ``train_bound`` / ``val_bound_epoch`` (last epoch),
        ``epochs``, ``start_epoch`` (epoch this attempt started at: > 0 after a resume),
        ``restored``, ``kept_epoch``, ``seconds`` (of this attempt), ``nwb_path`` and ``pid``.

    Examples
    --------
    >>> out = run_trial({"rank": 2, "n_units": 8, "max_epochs": 4}, data,
    ...                 nwb_path="fit.nwb")                      # doctest: +SKIP
    >>> out["val_bound"], out["epochs"]                          # doctest: +SKIP
    (-1.42, 4)
    """
    import shutil

    import torch

    from .estimator import LowRankRNN, _seed_from
    from .inference.training import checkpoint_epochs

    if torch_threads is not None:
        from ._threads import set_num_threads

        torch.set_num_threads(int(torch_threads))
        set_num_threads(int(torch_threads))
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    t0 = time.perf_counter()
    params = {**dict(params), "verbose": False}
    est = LowRankRNN(**params)
    total = int(est.max_epochs)
    seed = _seed_from(est.random_state)
    chunk = int(chunk_epochs) if chunk_epochs else max(1, math.ceil(total / 10))
    if chunk < 1:
        raise ValueError(f"chunk_epochs must be >= 1, got {chunk_epochs}.")
    train_data, val = _split(data, validation_fraction,
                             seed if split_seed is None else int(split_seed))
    held = {}
    if metric == "co_bps":  # the fit sees held-in neurons only (NLB protocol)
        if data.kind != "counts":
            raise ValueError("metric='co_bps' needs spike counts; these data are "
                             f"{data.kind!r} (use 'val_bound' or 'dstsp').")
        train_data, train_out = _heldin_heldout(train_data)
        val, val_out = _heldin_heldout(val)
        held = {"train": train_data, "heldout": (train_out, val_out)}

    work = Path(tempfile.mkdtemp(prefix="nwb_lrnn_trial_"))
    ckpt = work / CHECKPOINT_FILE
    try:
        restored = False
        if checkpoint_dir is not None:
            src = Path(checkpoint_dir) / CHECKPOINT_FILE
            if not src.is_file():
                raise FileNotFoundError(f"{checkpoint_dir} holds no {CHECKPOINT_FILE} (a "
                                        "checkpoint that run_trial's on_chunk was given).")
            shutil.copyfile(src, ckpt)
            restored = True
        start_epoch = checkpoint_epochs(ckpt) if restored else 0
        done, report = start_epoch, {}
        while True:
            est.fit(train_data, validation_data=val, checkpoint=ckpt,
                    resume="adopt" if adopt and restored and done == start_epoch else True,
                    until_epoch=min(total, done + chunk))
            hist = est.history_
            done = len(hist.train_bound)
            finished = done >= total or bool(hist.stopped_early)
            value = compute_metric(est, val, metric, random_state=seed, **held)
            report = {metric: value, "epochs": done, "start_epoch": start_epoch,
                      "restored": restored, "pid": os.getpid(),
                      "train_bound": hist.train_bound[-1],
                      "val_bound_epoch": hist.val_bound[-1] if hist.val_bound else math.nan,
                      "kept_epoch": hist.kept_epoch, "stopped_early": bool(hist.stopped_early),
                      "seconds": time.perf_counter() - t0}
            if finished:
                break
            if on_chunk is not None:
                on_chunk(report, ckpt)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = dict(report)
    if nwb_path is not None:
        from .results import write_nwb

        # no surrogate data from diverging dynamics (the fit itself is kept, as the CLI does)
        keep = tuple(x for x in include if not (x == "generated" and est.stable_ is False))
        write_nwb(est, nwb_path, data=train_data, include=keep, overwrite=True,
                  metrics={f"sweep_{metric}": out[metric]})
        out["nwb_path"] = str(nwb_path)
    out["seconds"] = time.perf_counter() - t0
    return out


CHECKPOINT_FILE = "fit.ckpt.npz"  # the estimator's training checkpoint, in a Tune checkpoint
_TRIAL_FILE = "trial.json"  # beside it: epochs done and the worker's pid (for people)


def _tune_trainable(config: dict[str, Any], sessions: dict[str, Any] | None = None,
                    settings: dict[str, Any] | None = None) -> None:
    """Ray Tune function trainable: one :func:`run_trial` with checkpoints per chunk."""
    import shutil

    from ray import tune

    settings = dict(settings or {})
    config = dict(config)
    session = config.pop("session")
    params = {**settings["fixed_params"], **config}
    data = load_source(sessions[session], settings["read_kwargs"])
    trial_id = tune.get_context().get_trial_id()
    nwb_path = Path(settings["out_dir"]) / f"trial_{trial_id}.nwb"
    metric = settings["metric"]

    def on_chunk(report: dict[str, Any], ckpt: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="nwb_lrnn_ckpt_") as tmp:
            shutil.copyfile(ckpt, Path(tmp) / CHECKPOINT_FILE)
            (Path(tmp) / _TRIAL_FILE).write_text(json.dumps(
                {"epochs_done": int(report["epochs"]), "pid": os.getpid()}))
            tune.report({**report, "status": "running", "session": session},
                        checkpoint=tune.Checkpoint.from_directory(tmp))

    kwargs = dict(metric=metric, nwb_path=nwb_path,
                  validation_fraction=settings["validation_fraction"],
                  chunk_epochs=settings["chunk_epochs"], on_chunk=on_chunk,
                  include=settings["include"], torch_threads=settings["torch_threads"])
    if settings.get("scheduler") == "pbt":  # one split for the population; exploits adopt
        kwargs.update(adopt=True, split_seed=0)
    ckpt = tune.get_checkpoint()
    if ckpt is None:
        out = run_trial(params, data, **kwargs)
    else:
        with ckpt.as_directory() as d:
            out = run_trial(params, data, checkpoint_dir=d, **kwargs)
    import ray

    tune.report({**out, "status": "ok", "session": session,
                 "node_id": ray.get_runtime_context().get_node_id()})


# ---------------------------------------------------------------------------- results
@dataclasses.dataclass
class SweepResult:
    """Outcome of :func:`sweep`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per trial: ``trial_id``, ``session``, the searched parameters, the metric,
        ``status`` ('ok' or 'error'), ``nwb_path``, ``seconds``, ``epochs``, ``start_epoch``
        (> 0 when the trial resumed from a checkpoint), ``restored`` and ``error``.
    metric, mode : str
    out_dir : Path
        Holds the ``trial_<id>.nwb`` files, ``summary.csv`` and ``summary.json``.
    """

    table: Any
    metric: str
    mode: str
    out_dir: Path

    @property
    def best(self):
        """The row (pandas Series) of the best finished trial.

        Scores of different sessions (other neurons, other recordings) are not comparable:
        with more than one session this raises, and :attr:`best_by_session` gives one winner
        per session.

        Raises
        ------
        RuntimeError
            No trial finished.
        ValueError
            The sweep covers several sessions.
        """
        sessions = self._sessions()
        if len(sessions) > 1:
            raise ValueError(f"the sweep covers {len(sessions)} sessions, whose scores are not "
                             "comparable; use best_by_session (one best trial per session).")
        return self._best_of(self.table)

    @property
    def best_by_session(self):
        """The best finished trial of each session (a pandas DataFrame, one row per session)."""
        import pandas as pd

        rows = [self._best_of(self.table[self.table["session"].astype(str) == s])
                for s in self._sessions()]
        return pd.DataFrame(rows).reset_index(drop=True)

    def _sessions(self) -> list[str]:
        if "session" not in self.table:
            return ["-"]
        return sorted({str(s) for s in self.table["session"]})

    def _best_of(self, table):
        import pandas as pd

        values = pd.to_numeric(table[self.metric], errors="coerce")
        ok = table[(table["status"] == "ok") & values.notna()]
        if ok.empty:
            raise RuntimeError(f"no trial of the sweep in {self.out_dir} finished; see the "
                               "'error' column of the table.")
        vals = values[ok.index]
        idx = vals.idxmax() if self.mode == "max" else vals.idxmin()
        return ok.loc[idx]

    def best_estimator(self, device: str = "auto"):
        """The best trial's fit, reloaded with :func:`~nwb_lrnn.read_fit`."""
        from .results import read_fit

        return read_fit(self.best["nwb_path"], device=device)  # one session only (see best)

    def save(self) -> tuple[Path, Path]:
        """Write ``summary.csv`` and ``summary.json`` into :attr:`out_dir` (atomically)."""
        csv_path, json_path = self.out_dir / "summary.csv", self.out_dir / "summary.json"
        records = json.loads(self.table.to_json(orient="records"))
        payload = {"metric": self.metric, "mode": self.mode, "n_trials": len(self.table),
                   "trials": records}
        try:  # one best trial per session: scores of different sessions are not compared
            payload["best_by_session"] = json.loads(
                self.best_by_session.to_json(orient="records"))
        except RuntimeError:
            payload["best_by_session"] = []
        payload["best"] = (payload["best_by_session"][0]
                           if len(payload["best_by_session"]) == 1 else None)
        from ._atomic import atomic_write_bytes

        for path, text in ((csv_path, self.table.to_csv(index=False)),
                           (json_path, json.dumps(payload, indent=1))):
            atomic_write_bytes(path, text.encode(), suffix=".tmp")
        return csv_path, json_path

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> SweepResult:
        """Read a finished sweep back from ``out_dir/summary.json``."""
        import pandas as pd

        out_dir = Path(out_dir)
        payload = json.loads((out_dir / "summary.json").read_text())
        return cls(pd.DataFrame(payload["trials"]), payload["metric"], payload["mode"],
                   out_dir)


def _table(rows: list[dict[str, Any]], param_names: Sequence[str], metric: str):
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas comes with ray[tune]
        raise ImportError("sweep results are pandas tables: pip install 'nwb-lrnn[ray]' "
                          "(or pandas)") from None

    cols = ["trial_id", "session", *param_names, metric, "status", "nwb_path", "seconds",
            "epochs", "start_epoch", "restored", "error"]
    table = pd.DataFrame(rows)
    for c in cols:
        if c not in table.columns:
            table[c] = None
    extra = [c for c in table.columns if c not in cols]
    return table[cols + extra].reset_index(drop=True)


# ---------------------------------------------------------------------------- sweep
def _check_space(search_space: Mapping[str, Any] | None, fixed: Mapping[str, Any]) -> None:
    from .estimator import LowRankRNN

    valid = set(LowRankRNN._get_param_names())
    for where, space in (("search_space", search_space or {}), ("fixed_params", fixed)):
        bad = [k for k in space if k not in valid]
        if bad:
            raise ValueError(f"{where} has unknown LowRankRNN parameter(s) {bad}; valid: "
                             f"{', '.join(sorted(valid))}.")


def _grid(search_space: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Expand plain lists (and scalars) into the list of grid points (serial backend)."""
    keys, axes = [], []
    for k, v in search_space.items():
        if isinstance(v, Mapping) and "grid_search" in v:
            v = v["grid_search"]
        if isinstance(v, (list, tuple)):
            axes.append(list(v))
        elif hasattr(v, "sample") or callable(v):
            raise ValueError(f"search_space[{k!r}] is a Ray Tune search object; "
                             "backend='serial' takes plain lists only (use backend='ray').")
        else:
            axes.append([v])
        keys.append(k)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes)]


def sweep(data_or_sources: Any, *, search_space: Mapping[str, Any] | None = None,
          metric: str = "val_bound", mode: str | None = None,
          out_dir: str | os.PathLike, num_samples: int = 1, address: str | None = None,
          max_retries: int = 1, resources_per_trial: Mapping[str, float] | None = None,
          fixed_params: Mapping[str, Any] | None = None, verbose: int | None = None,
          read_kwargs: Mapping[str, Any] | None = None, validation_fraction: float = 0.2,
          chunk_epochs: int | None = None, include: Sequence[str] = ("model", "metrics"),
          torch_threads: int | None = 1, backend: str = "ray",
          experiment_name: str | None = None, scheduler: str = "fifo",
          storage_path: str | None = None) -> SweepResult:
    """Fit many :class:`~nwb_lrnn.LowRankRNN` s as Ray Tune trials; gather them as NWB files.

    Parameters
    ----------
    data_or_sources : BinnedData | list | dict
        One ``BinnedData`` (shipped once through Ray's object store); a list of sources that
        each trial reads itself (NWB paths, NWB URLs, ``"DANDI:000128"`` strings, EEG files,
        or dicts ``{"dandiset": "000128", "asset": "sub-1/sub-1_ses-1.nwb", "bin_size":
        0.02}``, see :func:`load_source`); or a dict ``name -> BinnedData or source``. With
        more than one session, ``session`` becomes a grid axis: every parameter setting is
        fitted on every session.
    search_space : dict, optional
        ``LowRankRNN`` parameter -> plain list (a grid axis), scalar (fixed), or a Ray Tune
        search object (``tune.choice``, ``tune.loguniform``…, drawn ``num_samples`` times),
        e.g. ``{"rank": [1, 2, 3], "learning_rate": tune.loguniform(1e-3, 1e-1)}``.
    metric : {'val_bound', 'dstsp', 'co_bps'}
        Computed on the validation split after training (see :func:`compute_metric`).
    mode : {'max', 'min'}, optional
        Default: 'min' for 'dstsp', else 'max'.
    out_dir : path
        Receives ``trial_<trial id>.nwb`` per trial, ``summary.csv``, ``summary.json`` and
        Tune's own records in ``ray_results/``.
    num_samples : int
        Repetitions of the grid (Tune's ``num_samples``).
    address : str, optional
        A Ray cluster to connect to (``"ray://host:10001"``, ``"auto"``). Default: the
        running Ray instance of this process, else a local one started with every CPU this
        process may use.
    max_retries : int
        Attempts after a failure per trial (Tune's ``FailureConfig(max_failures)``); a retry
        resumes from the trial's last checkpoint.
    resources_per_trial : dict, optional
        Default ``{"cpu": 1}``.
    fixed_params : dict, optional
        ``LowRankRNN`` arguments of every trial (``search_space`` wins).
    verbose : int, optional
        Tune's verbosity (default 0: quiet).
    read_kwargs : dict, optional
        Reader arguments for path/URL sources, e.g. ``{"bin_size": 0.02}``.
    validation_fraction : float in (0, 1)
        Held-out trials (or final fraction of time for single-trial data).
    chunk_epochs : int, optional
        Epochs between checkpoints (default: a tenth of ``max_epochs``).
    include : sequence of str
        What each trial's NWB file holds (see :func:`~nwb_lrnn.write_nwb`).
    torch_threads : int or None
        Torch threads per trial.
    backend : {'ray', 'serial'}
        'serial': the same trials one after another in this process, without Ray (plain
        lists only; no retries).
    experiment_name : str, optional
        Tune experiment name (default: ``sweep_<timestamp>``).
    scheduler : {'fifo', 'asha', 'pbt'}
        'fifo': every trial runs to its end. 'asha': Tune's asynchronous successive halving
        over the chunk reports (time attribute ``epochs``, grace period one chunk, reduction
        factor 2): trials behind the others at a rung stop early, with status 'stopped' and
        their last metric in the table (no NWB file). 'pbt': Tune's population-based
        training: every chunk, trials in the bottom quarter continue from the checkpoint of
        one in the top quarter with its ``learning_rate`` / ``lr_final`` perturbed
        (:data:`PBT_MUTABLE`, those of ``search_space`` are mutated, from its lists or
        distributions); the population shares one train/validation split, and with several
        sessions each session is its own population (one Tune experiment each). Ray only.
    storage_path : str, optional
        Where Tune keeps its records and the trials' checkpoints: a folder shared by every
        node, or an object-store URI (``s3://bucket/sweeps``, ``gs://...``), which Ray needs
        for multi-node runs. Default ``out_dir/ray_results``. The trials' NWB files go to
        ``out_dir``, which must then be a folder every node can write.

    Returns
    -------
    SweepResult
        Also written to ``out_dir/summary.csv`` and ``out_dir/summary.json``.

    Raises
    ------
    ImportError
        Ray is not installed (``pip install 'nwb-lrnn[ray]'``).
    ValueError
        Unknown metric, mode or parameter name.

    Examples
    --------
    >>> res = sweep(["a.nwb", "b.nwb"], read_kwargs={"bin_size": 0.02},
    ...             search_space={"rank": [2, 3], "random_state": [0, 1, 2]},
    ...             fixed_params={"n_units": 128, "max_epochs": 200},
    ...             out_dir="runs/sweep1")                        # doctest: +SKIP
    >>> res.best_by_session[["session", "rank", "val_bound", "nwb_path"]]  # doctest: +SKIP
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    mode = _DEFAULT_MODE[metric] if mode is None else mode
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}.")
    if backend not in ("ray", "serial"):
        raise ValueError(f"backend must be 'ray' or 'serial', got {backend!r}.")
    if scheduler not in ("fifo", "asha", "pbt"):
        raise ValueError(f"scheduler must be 'fifo', 'asha' or 'pbt', got {scheduler!r}.")
    if scheduler != "fifo" and backend == "serial":
        raise ValueError(f"scheduler={scheduler!r} needs backend='ray'.")
    if int(num_samples) < 1 or int(max_retries) < 0:
        raise ValueError("num_samples must be >= 1 and max_retries >= 0.")
    search_space = dict(search_space or {})
    fixed = dict(fixed_params or {})
    _check_space(search_space, fixed)
    if scheduler != "fifo" and "max_epochs" in search_space:
        raise ValueError(f"scheduler={scheduler!r} compares trials at the same epochs: give "
                         "max_epochs in fixed_params, not in search_space.")
    if scheduler == "pbt" and not set(search_space) & set(PBT_MUTABLE):
        raise ValueError(f"scheduler='pbt' mutates {' or '.join(PBT_MUTABLE)}: give at least "
                         f"one of them in search_space (got {sorted(search_space)}).")
    sessions = _expand_dandisets(_normalize_sources(data_or_sources), dict(read_kwargs or {}))
    for src in sessions.values():  # settings every read needs: wrong for all, so fail now
        _check_read_settings(src, dict(read_kwargs or {}))
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {"fixed_params": fixed, "read_kwargs": dict(read_kwargs or {}),
                "out_dir": str(out_dir), "metric": metric,
                "validation_fraction": float(validation_fraction),
                "chunk_epochs": chunk_epochs, "include": tuple(include),
                "torch_threads": torch_threads, "scheduler": scheduler}
    param_names = list(search_space)
    t0 = time.perf_counter()
    if backend == "serial":
        rows = _run_serial(sessions, search_space, int(num_samples), settings)
    else:
        run = functools.partial(_run_ray, search_space=search_space, metric=metric, mode=mode,
                                num_samples=int(num_samples), address=address,
                                max_retries=int(max_retries),
                                resources=dict(resources_per_trial or {"cpu": 1}),
                                verbose=verbose, settings=settings, out_dir=out_dir,
                                scheduler=scheduler, storage_path=storage_path)
        name = experiment_name or time.strftime("sweep_%Y%m%d-%H%M%S")
        if scheduler == "pbt" and len(sessions) > 1:
            # a population exploits its own members: one per session, never across sessions
            rows = [r for i, (k, src) in enumerate(sessions.items())
                    for r in run({k: src}, experiment_name=f"{name}_session{i}")]
        else:
            rows = run(sessions, experiment_name=name)
    result = SweepResult(_table(rows, param_names, metric), metric, mode, out_dir)
    result.save()
    n_ok = int((result.table["status"] == "ok").sum())
    logger.info("sweep: %d of %d trials finished in %.1f s; summary in %s", n_ok,
                len(result.table), time.perf_counter() - t0, out_dir / "summary.csv")
    return result


def _run_serial(sessions, search_space, num_samples, settings) -> list[dict[str, Any]]:
    rows = []
    points = _grid(search_space)
    stamp = f"{os.getpid():x}{int(time.time() * 1000) % 10**8:x}"
    i = 0
    for _ in range(num_samples):
        for session, src in sessions.items():
            try:
                data, failed = load_source(src, settings["read_kwargs"]), None
            except Exception as err:  # this session's trials fail, the others run
                logger.warning("session %s cannot be read: %s", session, err)
                data, failed = None, f"{type(err).__name__}: {err}"
            for point in points:
                trial_id = f"serial_{stamp}_{i:05d}"
                i += 1
                row = {"trial_id": trial_id, "session": session, **point}
                if failed is not None:
                    rows.append({**row, "status": "error", "error": failed})
                    continue
                try:
                    out = run_trial({**settings["fixed_params"], **point}, data,
                                    metric=settings["metric"],
                                    nwb_path=Path(settings["out_dir"]) / f"trial_{trial_id}.nwb",
                                    validation_fraction=settings["validation_fraction"],
                                    chunk_epochs=settings["chunk_epochs"],
                                    include=settings["include"],
                                    torch_threads=settings["torch_threads"])
                    row.update(out, status="ok", error=None)
                except Exception as err:
                    logger.warning("trial %s failed: %s", trial_id, err)
                    row.update(status="error", error=f"{type(err).__name__}: {err}")
                rows.append(row)
    return rows


def _ensure_ray(address: str | None):
    ray, _ = _import_ray()
    if address is not None:
        if ray.is_initialized():
            logger.info("Ray is already initialised; using it instead of address=%r", address)
        else:
            ray.init(address=address, log_to_driver=False)
    elif not ray.is_initialized():
        n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
        logger.info("starting a local Ray with %d CPUs", n_cpus)
        ray.init(num_cpus=n_cpus, include_dashboard=False, log_to_driver=False)
    return ray


def _to_tune_space(search_space: Mapping[str, Any], tune) -> dict[str, Any]:
    space = {}
    for k, v in search_space.items():
        space[k] = tune.grid_search(list(v)) if isinstance(v, (list, tuple)) else v
    return space


def _error_text(err: BaseException | None) -> str | None:
    """One line naming the original exception of a failed trial (not Ray's wrapper)."""
    if err is None:
        return "trial ended without a final result"
    seen = 0
    while getattr(err, "cause", None) is not None and seen < 5:
        err, seen = err.cause, seen + 1
    text = str(err)
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if "Error" in last and ":" in last:  # a traceback's last line, "ValueError: ..."
        return last[:500]
    return f"{type(err).__name__}: {last}"[:500]


def _run_ray(sessions, *, search_space, metric, mode, num_samples, address, max_retries,
             resources, verbose, settings, experiment_name, out_dir, scheduler="fifo",
             storage_path=None) -> list[dict[str, Any]]:
    _ensure_ray(address)
    _, tune = _import_ray()
    space = _to_tune_space(search_space, tune)
    space["session"] = tune.grid_search(list(sessions))
    trainable = tune.with_resources(
        tune.with_parameters(_tune_trainable, sessions=sessions, settings=settings),
        resources)
    name = experiment_name
    sched = None
    total = int(settings["fixed_params"].get("max_epochs", _defaults.MAX_EPOCHS))
    chunk = settings["chunk_epochs"] or max(1, math.ceil(total / 10))
    if scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        sched = ASHAScheduler(time_attr="epochs", max_t=total, grace_period=chunk,
                              reduction_factor=2)
    elif scheduler == "pbt":
        from ray.tune.schedulers import PopulationBasedTraining

        sched = PopulationBasedTraining(
            time_attr="epochs", perturbation_interval=chunk,
            hyperparam_mutations={k: (list(v) if isinstance(v, (list, tuple)) else v)
                                  for k, v in search_space.items() if k in PBT_MUTABLE})
    tuner = tune.Tuner(
        trainable, param_space=space,
        # reuse_actors: a worker that has imported torch and nwb_lrnn runs the next trial
        tune_config=tune.TuneConfig(metric=metric, mode=mode, num_samples=num_samples,
                                    reuse_actors=True, scheduler=sched),
        run_config=tune.RunConfig(
            name=name, storage_path=storage_path or str(out_dir / "ray_results"),
            failure_config=tune.FailureConfig(max_failures=max_retries),
            verbose=0 if verbose is None else verbose))
    grid = tuner.fit()
    rows = []
    for res in grid:
        cfg = dict(res.config or {})
        m = dict(res.metrics or {})
        row = {"trial_id": m.get("trial_id") or Path(res.path).name,
               "session": cfg.get("session"),
               **{k: cfg.get(k) for k in search_space}}
        keep = (metric, "nwb_path", "seconds", "epochs", "start_epoch", "restored",
                "train_bound", "val_bound_epoch", "stopped_early", "pid", "node_id")
        row.update({k: m[k] for k in keep if k in m})
        if res.error is None and m.get("status") == "ok":
            row.update(status="ok", error=None)
        elif res.error is None and m.get("status") == "running":  # stopped by the scheduler
            row.update(status="stopped", error=None)
            row.pop("nwb_path", None)
        else:
            row.update(status="error", error=_error_text(res.error))
            row.pop("nwb_path", None)
        rows.append(row)
    rows.sort(key=lambda r: str(r["trial_id"]))
    return rows


def sweep_sessions(sources: Any, *, estimator_params: Mapping[str, Any],
                   out_dir: str | os.PathLike, metric: str = "val_bound",
                   **kwargs: Any) -> SweepResult:
    """One fit per session (e.g. every asset of a dandiset), each written as NWB.

    Parameters
    ----------
    sources : list | dict
        Sessions, as for :func:`sweep` (list of NWB paths/URLs/dandiset asset dicts, or
        name -> BinnedData).
    estimator_params : dict
        ``LowRankRNN`` arguments shared by all sessions.
    out_dir : path
    metric : str
    **kwargs
        Passed to :func:`sweep` (``address``, ``max_retries``, ``read_kwargs``, ...).

    Returns
    -------
    SweepResult
        One row per session.

    Examples
    --------
    >>> assets = [{"dandiset": "000128", "asset": a, "bin_size": 0.005}
    ...           for a in ["sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb"]]
    >>> res = sweep_sessions(assets, estimator_params={"rank": 3, "n_units": 128},
    ...                      out_dir="fits/000128")             # doctest: +SKIP
    """
    return sweep(sources, search_space={}, fixed_params=estimator_params, out_dir=out_dir,
                 metric=metric, **kwargs)


#: keys accepted by :func:`sweep_from_config`
CONFIG_KEYS = ("source", "sources", "search_space", "fixed_params", "metric", "mode",
               "out_dir", "address", "num_samples", "max_retries", "resources_per_trial",
               "read_kwargs", "validation_fraction", "chunk_epochs", "include", "backend",
               "experiment_name", "verbose", "torch_threads", "scheduler", "storage_path")


def sweep_from_config(config: Mapping[str, Any]) -> SweepResult:
    """Run :func:`sweep` from a JSON/YAML-like dict (for ``nwb-lrnn sweep CONFIG.json``).

    Parameters
    ----------
    config : dict
        With the keys below (:data:`CONFIG_KEYS`; any other key is an error).

    Other Parameters
    ----------------
    source / sources : str | list | dict (required, one of them)
        A path/URL/``"DANDI:..."`` string, a list of them or of dicts
        (``{"dandiset": "000128", "asset": "sub-1/...nwb"}``), or name -> source.
    out_dir : str (required)
    search_space : dict
        Parameter -> list (grid) or scalar. Ray search objects may be written as
        ``{"choice": [...]}``, ``{"uniform": [lo, hi]}``, ``{"loguniform": [lo, hi]}``,
        ``{"randint": [lo, hi]}``.
    fixed_params : dict
        ``LowRankRNN`` arguments of every trial.
    metric ('val_bound'), mode, address, num_samples (1), max_retries (1),
    resources_per_trial ({"cpu": 1}), read_kwargs (e.g. {"bin_size": 0.02}),
    validation_fraction (0.2), chunk_epochs, include, backend ('ray'), experiment_name,
    verbose, torch_threads (1), scheduler ('fifo'), storage_path
        As in :func:`sweep`.

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> cfg = {"sources": ["a.nwb", "b.nwb"], "read_kwargs": {"bin_size": 0.02},
    ...        "search_space": {"rank": [2, 3], "learning_rate": {"loguniform": [1e-3, 1e-1]}},
    ...        "fixed_params": {"n_units": 64}, "num_samples": 4, "out_dir": "sweep1"}
    >>> sweep_from_config(cfg)  # doctest: +SKIP
    """
    cfg = dict(config)
    unknown = [k for k in cfg if k not in CONFIG_KEYS]
    if unknown:
        raise ValueError(f"unknown sweep config key(s) {unknown}; accepted: "
                         f"{', '.join(CONFIG_KEYS)}.")
    if ("source" in cfg) == ("sources" in cfg):
        raise ValueError("the sweep config needs exactly one of 'source' or 'sources'.")
    if "out_dir" not in cfg:
        raise ValueError("the sweep config needs 'out_dir'.")
    src = cfg.pop("source", None) if "source" in cfg else cfg.pop("sources")
    space = dict(cfg.pop("search_space", None) or {})
    for k, v in list(space.items()):
        if isinstance(v, Mapping) and len(v) == 1 and next(iter(v)) != "grid_search":
            (kind, args), = v.items()
            _, tune = _import_ray()
            fns = {"choice": tune.choice, "uniform": tune.uniform,
                   "loguniform": tune.loguniform, "randint": tune.randint,
                   "quniform": tune.quniform, "qloguniform": tune.qloguniform}
            if kind not in fns:
                raise ValueError(f"search_space[{k!r}]: unknown distribution {kind!r}; use "
                                 f"one of {sorted(fns)} or a list.")
            space[k] = fns[kind](args) if kind == "choice" else fns[kind](*args)
    return sweep(src, search_space=space, **cfg)


class _CallableModule(types.ModuleType):
    """``nwb_lrnn.sweep(...)`` calls :func:`sweep` although ``nwb_lrnn.sweep`` is a module."""

    def __call__(self, *args: Any, **kwargs: Any) -> SweepResult:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
