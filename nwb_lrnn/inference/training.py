"""Training: maximise the VSMC bound with Adam.

:func:`train` is a plain function over tensors; the estimator wraps it. It keeps a history of the
training (and validation) bound per epoch, stops early when the validation bound stops
improving, and guards against NaN: on a non-finite loss or gradient it restores the last good
parameters and raises :class:`FitDivergedError`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import _defaults
from .._validate import check_float, check_int, check_option
from ..model.rnn import LowRankRNNModel
from .proposals import Proposal
from .resampling import RESAMPLERS, get_resampler
from .smc import particle_filter

__all__ = ["FitDivergedError", "TrainConfig", "TrainHistory", "kept_epoch", "train"]

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "radam")


class FitDivergedError(FloatingPointError):
    """The bound or its gradient became non-finite; the last good parameters were restored."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of the VSMC training loop (saved as JSON with every fit).

    Parameters
    ----------
    n_particles : int
        K, particles per sequence.
    resampling : {'systematic', 'multinomial'}
    ess_threshold : float in (0, 1] or None
        Resample when ESS < threshold · K; None resamples every step.
    learning_rate : float
        Initial learning rate.
    lr_final : float or None
        Learning rate reached after ``max_epochs`` (exponential decay); None keeps it constant.
    grad_clip : float or None
        Maximal gradient norm.
    batch_size : int
        Sequences per optimiser step.
    max_epochs : int
    steps_per_epoch : int or None
        Optimiser steps per epoch; None: one pass over the training sequences.
    window : int or None
        Train on random windows of this many bins (long recordings); None: whole trials.
    patience : int or None
        Stop when the validation bound (else the training bound) has not improved for this many
        epochs.
    restore_best : bool
        With validation data, end with the parameters of the epoch whose validation bound was
        best (``TrainHistory.best_epoch``), not those of the last epoch. Without validation
        data the last epoch's are kept unless ``patience`` is set (the training bound of one
        epoch is a noisy estimate over random windows).
    optimizer : {'adam', 'radam'}
        Adam, or rectified Adam (Liu et al. 2020; Adam with a built-in warm-up of the
        adaptive step, the optimiser of the paper's reference code).
    """

    n_particles: int = _defaults.N_PARTICLES
    resampling: str = "systematic"
    ess_threshold: float | None = None
    learning_rate: float = _defaults.LEARNING_RATE
    lr_final: float | None = _defaults.LR_FINAL
    grad_clip: float | None = _defaults.GRAD_CLIP
    batch_size: int = _defaults.BATCH_SIZE
    max_epochs: int = _defaults.MAX_EPOCHS
    steps_per_epoch: int | None = None
    window: int | None = None
    patience: int | None = None
    optimizer: str = "adam"
    restore_best: bool = True

    def __post_init__(self):
        check_int("n_particles", self.n_particles, min_value=1)
        check_option("resampling", self.resampling, RESAMPLERS)
        check_float("ess_threshold", self.ess_threshold, min_value=0.0, max_value=1.0,
                    strict_min=True, allow_none=True)
        check_float("learning_rate", self.learning_rate, min_value=0.0, strict_min=True)
        check_float("lr_final", self.lr_final, min_value=0.0, strict_min=True, allow_none=True)
        check_float("grad_clip", self.grad_clip, min_value=0.0, strict_min=True,
                    allow_none=True)
        check_int("batch_size", self.batch_size, min_value=1)
        check_int("max_epochs", self.max_epochs, min_value=1)
        check_int("steps_per_epoch", self.steps_per_epoch, min_value=1, allow_none=True)
        check_int("window", self.window, min_value=2, allow_none=True)
        check_int("patience", self.patience, min_value=1, allow_none=True)
        check_option("optimizer", self.optimizer, OPTIMIZERS)
        if not isinstance(self.restore_best, bool):
            raise TypeError(f"restore_best must be True or False, got {self.restore_best!r}.")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclass
class TrainHistory:
    """Per-epoch record of a fit. Bounds are per time step (log p̂(y) / T, averaged)."""

    train_bound: list[float] = field(default_factory=list)
    val_bound: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    seconds: float = 0.0
    kept_epoch: int = -1  # the epoch whose parameters the model holds (from 0); -1: not recorded

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def kept_epoch(hist: TrainHistory, cfg: TrainConfig | None = None) -> int | None:
    """The epoch (from 0) whose parameters a fit holds, or None when it trained no epoch.

    ``hist.kept_epoch`` when :func:`train` recorded it; for histories written before it was
    recorded, the rule :func:`train` follows: the best epoch when it restored the best
    parameters (``cfg.patience`` set, or validation data and ``cfg.restore_best``), else the last.
    """
    n = len(hist.train_bound)
    if n == 0:
        return None
    if 0 <= hist.kept_epoch < n:
        return int(hist.kept_epoch)
    restores = cfg is not None and (cfg.patience is not None
                                    or (bool(hist.val_bound) and cfg.restore_best))
    return int(hist.best_epoch) if restores and 0 <= hist.best_epoch < n else n - 1


def _batches(n_seq: int, n_time: int, cfg: TrainConfig, generator: torch.Generator,
             window_pool: torch.Tensor | None = None):
    """Yield (sequence indices, start) for one epoch.

    ``window_pool`` (n_windows, 2) of (sequence, start) pairs restricts the random windows to
    those pairs (for instance the windows that avoid NaN segments).
    """
    steps = cfg.steps_per_epoch or max(1, math.ceil(n_seq / cfg.batch_size))
    if window_pool is not None:
        for _ in range(steps):
            j = torch.randint(len(window_pool), (cfg.batch_size,), generator=generator)
            yield window_pool[j, 0], window_pool[j, 1]
        return
    perm = torch.randperm(n_seq, generator=generator)
    for s in range(steps):
        if cfg.steps_per_epoch is None:
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
        else:
            idx = torch.randint(n_seq, (min(cfg.batch_size, n_seq) if cfg.window is None
                                        else cfg.batch_size,), generator=generator)
        if cfg.window is not None:
            starts = torch.randint(n_time - cfg.window + 1, (len(idx),), generator=generator)
        else:
            starts = None
        yield idx, starts


def _take(x: torch.Tensor | None, idx, starts, window):
    if x is None:
        return None
    if starts is None:
        return x[idx.to(x.device)]
    ar = torch.arange(window)
    t_idx = (starts[:, None] + ar[None, :]).to(x.device)
    return x[idx.to(x.device)[:, None], t_idx]


def evaluate_bound(model: LowRankRNNModel, proposal: Proposal, y: torch.Tensor,
                   inputs: torch.Tensor | None, cfg: TrainConfig, generator: torch.Generator,
                   batch_size: int = 64) -> float:
    """Mean bound per time step over all sequences (no gradient)."""
    total = 0.0
    with torch.no_grad():
        for s in range(0, y.shape[0], batch_size):
            res = particle_filter(model, proposal, y[s:s + batch_size],
                                  inputs=None if inputs is None else inputs[s:s + batch_size],
                                  n_particles=cfg.n_particles,
                                  resampler=get_resampler(cfg.resampling),
                                  ess_threshold=cfg.ess_threshold, generator=generator)
            total += float(res.log_marginal.sum())
    return total / (y.shape[0] * y.shape[1])


def _progress(total: int, verbose: bool):
    if not verbose or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="VSMC fit", unit="epoch", leave=False)


LOG_EVERY_S = 30.0
"""Without a terminal, a verbose fit logs a progress line at least this often (and at the first
and last epoch): batch jobs and ``2>&1 | tee log`` see it."""
progress_logger = logging.getLogger("nwb_lrnn.progress")


class _ProgressLog:
    """Progress lines through ``logging`` for verbose fits whose stderr is not a terminal.

    Where nothing is configured to show INFO records of ``nwb_lrnn.progress`` (no handler on
    it, its parents or the root), one stderr handler is added to it (as MNE does for its
    logger), so that the lines appear with no logging set-up.
    """

    def __init__(self, total: int, start: int, verbose: bool):
        self.on = bool(verbose) and not sys.stderr.isatty()
        self.total, self.start = total, start
        self.t0 = self.last = time.perf_counter()
        if self.on and not progress_logger.hasHandlers():
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            progress_logger.addHandler(handler)
        if self.on and progress_logger.getEffectiveLevel() > logging.INFO:
            progress_logger.setLevel(logging.INFO)

    def __call__(self, epoch: int, hist) -> None:
        if not self.on:
            return
        now = time.perf_counter()
        done = epoch + 1 - self.start
        last = epoch + 1 == self.total
        if not (done == 1 or last or now - self.last >= LOG_EVERY_S):
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.total - epoch - 1) / rate
        val = f", validation {hist.val_bound[-1]:.4f}" if hist.val_bound else ""
        progress_logger.info("VSMC fit: epoch %d/%d, bound per step %.4f%s, %.2f epochs/s, "
                             "ETA %s", epoch + 1, self.total, hist.train_bound[-1], val, rate,
                             _duration(eta))


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def train(model: LowRankRNNModel, proposal: Proposal, y: torch.Tensor,
          inputs: torch.Tensor | None, cfg: TrainConfig, *, generator: torch.Generator,
          y_val: torch.Tensor | None = None, inputs_val: torch.Tensor | None = None,
          verbose: bool = True, window_pool: torch.Tensor | None = None,
          checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1,
          resume: bool | str = False, on_epoch: Callable[[], None] | None = None,
          fingerprint: Mapping[str, Any] | None = None,
          until_epoch: int | None = None) -> TrainHistory:
    """Fit ``model`` and ``proposal`` in place by maximising the VSMC bound.

    Parameters
    ----------
    model : LowRankRNNModel
    proposal : Proposal
        Its parameters (an encoder's) are trained jointly.
    y : Tensor, shape (n_seq, T, C)
    inputs : Tensor, shape (n_seq, T, I) or None
    cfg : TrainConfig
    generator : torch.Generator
        All randomness of training (batches, windows, particles) comes from it.
    y_val, inputs_val : Tensor, optional
        Validation sequences; their bound is recorded each epoch and drives early stopping.
    verbose : bool
        Show a progress bar (only on a terminal).
    window_pool : LongTensor, shape (n_windows, 2), optional
        With ``cfg.window``: the (sequence, start) pairs that training windows are drawn from
        (uniformly, with replacement); None: every start of every sequence.
    checkpoint : path, optional
        A ``.npz`` file rewritten atomically every ``checkpoint_every`` epochs with everything
        needed to continue exactly: parameters, Adam's moments, the learning-rate schedule, the
        random generator's state and the history (arrays and JSON; no pickle).
    checkpoint_every : int
        Epochs between checkpoints.
    resume : bool | 'adopt'
        Continue from ``checkpoint`` when it exists (it must come from the same settings and
        shapes). On CPU the result is bitwise the one of an uninterrupted run. ``'adopt'``:
        continue a checkpoint whose learning rates or seed may differ from ``cfg``'s
        (:data:`ADOPTABLE`; population-based training's exploit step): its parameters, Adam's
        moments, random state and history are taken, and the learning rate continues on
        ``cfg``'s schedule from the checkpoint's epoch.
    on_epoch : callable, optional
        Called with no arguments before every epoch (the estimator uses it to give CPU threads
        back when other processes start; see :mod:`nwb_lrnn._threads`).
    fingerprint : dict, optional
        What the run belongs to (JSON values: digests of the data, the seed, the model's
        settings). Stored in the checkpoint; resuming from a checkpoint whose fingerprint
        differs is a ValueError naming the entries that differ.
    until_epoch : int, optional
        Return once this many epochs are done (counted from the start of the run, across
        resumes), before ``cfg.max_epochs``; the checkpoint is written then, and a later call
        with ``resume=True`` continues. The learning-rate schedule stays that of
        ``cfg.max_epochs``, so runs cut this way end bitwise where an uncut run ends (CPU).

    Returns
    -------
    TrainHistory

    Raises
    ------
    FitDivergedError
        When the bound or a gradient is not finite. The parameters of the last good step are
        restored first.
    """
    t0 = time.perf_counter()
    n_seq, n_time, _ = y.shape
    if cfg.window is not None and cfg.window > n_time:
        raise ValueError(f"window ({cfg.window}) must be <= the number of time bins per "
                         f"sequence ({n_time}).")
    if window_pool is not None:
        if cfg.window is None:
            raise ValueError("window_pool needs cfg.window (random windows).")
        if len(window_pool) == 0:
            raise ValueError("window_pool is empty: there is no window to train on.")
        window_pool = torch.as_tensor(window_pool, dtype=torch.long).cpu()
    params = list(model.parameters()) + [p for p in proposal.parameters()
                                         if all(p is not q for q in model.parameters())]
    opt = _make_optimizer(cfg.optimizer, params, cfg.learning_rate)
    gamma = 1.0 if cfg.lr_final is None else (cfg.lr_final / cfg.learning_rate) ** (
        1.0 / max(1, cfg.max_epochs))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    resampler = get_resampler(cfg.resampling)
    hist = TrainHistory()
    best, best_state, since_best = -math.inf, None, 0
    keep_best = cfg.patience is not None or (y_val is not None and cfg.restore_best)
    last_good = _ParamBuffer(params)
    start_epoch = 0
    named = _named_tensors(model, proposal)
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        start_epoch, best, since_best, best_vals = _load_checkpoint(
            checkpoint, named, opt, sched, generator, hist, cfg, fingerprint,
            adopt=resume == "adopt")
        if best_vals is not None:
            best_state = _ParamBuffer(params)
            best_state.values = best_vals
        last_good.save()
        logger.info("resumed from %s after epoch %d", checkpoint, start_epoch)
        if hist.stopped_early:  # it had finished: early stopping is not undone by resuming
            start_epoch = cfg.max_epochs
    every = check_int("checkpoint_every", checkpoint_every, min_value=1)
    end = cfg.max_epochs if until_epoch is None else min(
        cfg.max_epochs, check_int("until_epoch", until_epoch, min_value=1))
    bar = _progress(cfg.max_epochs, verbose)
    plog = _ProgressLog(cfg.max_epochs, start_epoch, verbose)
    if bar is not None and start_epoch:
        bar.update(start_epoch)
    try:
        for epoch in range(start_epoch, end):
            if on_epoch is not None:
                on_epoch()
            ep_total, ep_count = 0.0, 0
            for idx, starts in _batches(n_seq, n_time, cfg, generator, window_pool):
                yb = _take(y, idx, starts, cfg.window)
                ub = _take(inputs, idx, starts, cfg.window)
                try:
                    res = particle_filter(model, proposal, yb, inputs=ub,
                                          n_particles=cfg.n_particles, resampler=resampler,
                                          ess_threshold=cfg.ess_threshold, generator=generator)
                    loss = -res.log_marginal.mean() / yb.shape[1]
                except torch.linalg.LinAlgError as err:  # a covariance lost definiteness
                    last_good.restore()
                    raise FitDivergedError(
                        f"The SMC bound became non-finite at epoch {epoch} ({err}); the last "
                        "good parameters were restored. Try a smaller learning_rate.") from err
                if not torch.isfinite(loss):
                    last_good.restore()
                    raise FitDivergedError(
                        f"The SMC bound became non-finite at epoch {epoch} "
                        f"({float(loss.detach())}); "
                        "the last good parameters were restored. Try a smaller learning_rate, "
                        "more particles, or standardised data.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                else:
                    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in params
                                          if p.grad is not None))
                if not torch.isfinite(norm):
                    last_good.restore()
                    raise FitDivergedError(
                        f"A gradient became non-finite at epoch {epoch}; the last good "
                        "parameters were restored. Try a smaller learning_rate or grad_clip.")
                last_good.save()
                opt.step()
                ep_total += -float(loss.detach()) * len(idx)
                ep_count += len(idx)
            sched.step()
            hist.train_bound.append(ep_total / ep_count)
            hist.learning_rate.append(opt.param_groups[0]["lr"])
            score = hist.train_bound[-1]
            if y_val is not None:
                score = evaluate_bound(model, proposal, y_val, inputs_val, cfg, generator)
                hist.val_bound.append(score)
            best, since_best, best_state = note_score(score, epoch, hist, best, since_best,
                                                      best_state, params, keep_best)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(bound=f"{hist.train_bound[-1]:.3f}")
            plog(epoch, hist)
            logger.debug("epoch %d: train bound %.4f", epoch, hist.train_bound[-1])
            stop = cfg.patience is not None and since_best >= cfg.patience
            if stop:
                hist.stopped_early = True
            if checkpoint is not None and ((epoch + 1) % every == 0 or stop
                                           or epoch + 1 == end):
                _save_checkpoint(checkpoint, epoch + 1, named, opt, sched, generator, hist,
                                 fingerprint, cfg, best, since_best,
                                 None if best_state is None else best_state.values)
            if stop:
                logger.info("early stop at epoch %d (best %d)", epoch, hist.best_epoch)
                break
    finally:
        if bar is not None:
            bar.close()
        hist.seconds = time.perf_counter() - t0
    n_done = len(hist.train_bound)
    hist.kept_epoch = n_done - 1
    if best_state is not None:
        best_state.restore()
        hist.kept_epoch = hist.best_epoch
        if 0 <= hist.best_epoch < n_done - 1:
            logger.info("kept the parameters of epoch %d (from 1), the best %s bound (%.4f); the "
                        "last epoch's was %.4f", hist.best_epoch + 1,
                        "validation" if hist.val_bound else "training", best,
                        (hist.val_bound or hist.train_bound)[-1])
    return hist


# ------------------------------------------------------------------------------------ checkpoints
_CKPT_VERSION = 2  # 2: a fingerprint of what the run belongs to


def _named_tensors(model, proposal) -> dict[str, torch.Tensor]:
    """Every trainable tensor, by a stable name (the proposal's own ones only once)."""
    out = {f"model.{k}": p for k, p in model.named_parameters()}
    seen = {id(p) for p in out.values()}
    for k, p in proposal.named_parameters():
        if id(p) not in seen:
            out[f"proposal.{k}"] = p
    return out


def _save_checkpoint(path, epoch, named, opt, sched, generator, hist, fingerprint, cfg, best,
                     since_best, best_vals) -> None:
    """Write the training state as one .npz (arrays + a JSON header), atomically."""
    import numpy as np

    arrays: dict[str, np.ndarray] = {}
    names = list(named)
    for k, p in named.items():
        arrays[f"param/{k}"] = p.detach().cpu().numpy()
    sd = opt.state_dict()
    index = {id(p): i for i, p in enumerate(opt.param_groups[0]["params"])}
    order = [index[id(named[k])] for k in names]
    for j, i in enumerate(order):
        for key, v in sd["state"].get(i, {}).items():
            arrays[f"adam/{j}/{key}"] = torch.as_tensor(v).detach().cpu().numpy()
    if best_vals is not None:
        for j, i in enumerate(order):
            arrays[f"best/{j}"] = best_vals[i].detach().cpu().numpy()
    arrays["generator"] = generator.get_state().numpy()
    groups = [{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]]
    header = {"version": _CKPT_VERSION, "epoch": int(epoch), "names": names,
              "shapes": {k: list(p.shape) for k, p in named.items()},
              "param_groups": groups, "scheduler": sched.state_dict(),
              "history": hist.to_dict(), "config": json.loads(cfg.to_json()),
              "best": best if math.isfinite(best) else None, "since_best": since_best,
              "has_best": best_vals is not None,
              "fingerprint": None if fingerprint is None else dict(fingerprint)}
    arrays["header"] = np.frombuffer(json.dumps(header, default=float).encode(), dtype=np.uint8)
    from .._atomic import atomic_file

    with atomic_file(os.fspath(path), prefix=".ckpt-", suffix=".npz", fsync=True) as fh:
        np.savez(fh, **arrays)


def checkpoint_epochs(path: str | os.PathLike) -> int:
    """Epochs done in a training checkpoint written by :func:`train` (reads its header only).

    Raises
    ------
    ValueError
        The file is not a readable checkpoint.
    """
    import numpy as np

    try:
        with np.load(os.fspath(path), allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
        epoch = header["epoch"]
    except Exception as err:  # any damage means: not usable
        raise ValueError(f"checkpoint {os.fspath(path)} cannot be read ({err}); delete it to "
                         "start over.") from None
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"checkpoint {os.fspath(path)}: its epoch should be a non-negative "
                         f"integer, got {epoch!r:.40}.")
    return epoch


#: what ``resume='adopt'`` lets differ between a checkpoint and the run that continues it:
#: training settings (TrainConfig fields), estimator settings and the seed
ADOPTABLE = ("learning_rate", "lr_final", "random_state", "seed")


def _load_checkpoint(path, named, opt, sched, generator, hist, cfg, fingerprint=None, *,
                     adopt=False):
    import numpy as np

    try:
        with np.load(os.fspath(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(bytes(arrays["header"]).decode())
    except Exception as err:  # any damage means: not usable
        raise ValueError(f"checkpoint {os.fspath(path)} cannot be read ({err}); delete it to "
                         "start over.") from None
    if header.get("version") != _CKPT_VERSION:
        raise ValueError(f"checkpoint {path} has version {header.get('version')}, expected "
                         f"{_CKPT_VERSION} (written by another nwb_lrnn); delete it to start "
                         "over.")
    defaults = json.loads(TrainConfig().to_json())  # settings added since the checkpoint
    theirs, ours_cfg = {**defaults, **header["config"]}, json.loads(cfg.to_json())
    if adopt:
        theirs = {k: v for k, v in theirs.items() if k not in ADOPTABLE}
        ours_cfg = {k: v for k, v in ours_cfg.items() if k not in ADOPTABLE}
    if theirs != ours_cfg:
        what = ", ".join(k for k in sorted(set(theirs) | set(ours_cfg))
                         if theirs.get(k) != ours_cfg.get(k))
        raise ValueError(f"checkpoint {path} was written with other training settings "
                         f"({what}); delete it or pass resume=False.")
    if list(header["names"]) != list(named) or any(
            list(named[k].shape) != header["shapes"][k] for k in named):
        raise ValueError(f"checkpoint {path} holds parameters of another model (names or "
                         "shapes differ); delete it or pass resume=False.")
    if fingerprint is not None:
        ours = json.loads(json.dumps(dict(fingerprint), default=float))
        differ = _differences(header.get("fingerprint") or {}, ours)
        if adopt:
            differ = [d for d in differ if d[0].rsplit(".", 1)[-1] not in ADOPTABLE]
        if differ:
            what = "; ".join(f"{k}: {_short(a)} in the checkpoint, {_short(b)} here"
                             for k, a, b in differ[:4])
            raise ValueError(f"checkpoint {os.fspath(path)} belongs to another fit ({what}); "
                             "delete it, give another checkpoint path, or pass resume=False.")
    with torch.no_grad():
        for k, p in named.items():
            p.copy_(torch.from_numpy(arrays[f"param/{k}"]))
    names = list(named)
    index = {id(p): i for i, p in enumerate(opt.param_groups[0]["params"])}
    order = [index[id(named[k])] for k in names]
    state = {}
    for j, i in enumerate(order):
        st = {}
        for key in ("step", "exp_avg", "exp_avg_sq"):
            if f"adam/{j}/{key}" in arrays:
                t = torch.from_numpy(arrays[f"adam/{j}/{key}"].copy())
                st[key] = t.to(named[names[j]].device) if key != "step" else t
        if st:
            state[i] = st
    groups = [dict(g, params=[i for i in range(len(opt.param_groups[0]["params"]))])
              for g in header["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
    if adopt:  # this run's schedule, from the checkpoint's epoch on
        gamma, base = sched.gamma, sched.base_lrs
        sched.load_state_dict(header["scheduler"])
        sched.gamma, sched.base_lrs = gamma, base
        lrs = [b * gamma ** sched.last_epoch for b in base]
        for g, b, lr in zip(opt.param_groups, base, lrs, strict=True):
            g["lr"], g["initial_lr"] = lr, b
        sched._last_lr = lrs
    else:
        sched.load_state_dict(header["scheduler"])
    generator.set_state(torch.from_numpy(arrays["generator"].copy()))
    for k, v in header["history"].items():
        if hasattr(hist, k):
            setattr(hist, k, v)
    best_vals = None
    if header.get("has_best"):
        best_vals = [None] * len(order)
        for j, i in enumerate(order):
            best_vals[i] = torch.from_numpy(arrays[f"best/{j}"].copy()).to(
                named[names[j]].device)
    best = header["best"] if header["best"] is not None else -math.inf
    return int(header["epoch"]), best, int(header["since_best"]), best_vals


def _differences(theirs: dict, ours: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, checkpoint's value, this run's value) for every entry that differs."""
    out = []
    for k in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(k), ours.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append((f"{prefix}{k}", a, b))
    return out


def _short(v) -> str:
    text = json.dumps(v, default=float, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def note_score(score: float, epoch: int, hist: TrainHistory, best: float, since_best: int,
               best_state: _ParamBuffer | None, params: list, keep_best: bool
               ) -> tuple[float, int, _ParamBuffer | None]:
    """One epoch's score against the best so far: ``(best, epochs since it, its saved
    parameters)``; a new best sets ``hist.best_epoch`` and, with ``keep_best``, saves the
    parameters."""
    if score > best:
        hist.best_epoch = epoch
        if keep_best:
            best_state = best_state or _ParamBuffer(params)
            best_state.save()
        return score, 0, best_state
    return best, since_best + 1, best_state


class _ParamBuffer:
    """Preallocated copy of a list of parameters (cheap to refresh after every step)."""

    def __init__(self, params):
        self.params = params
        self.values = [p.detach().clone() for p in params]

    @torch.no_grad()
    def save(self):
        for v, p in zip(self.values, self.params, strict=True):
            v.copy_(p)

    @torch.no_grad()
    def restore(self):
        for v, p in zip(self.values, self.params, strict=True):
            p.copy_(v)


def _make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """The optimiser of :class:`TrainConfig` ``optimizer`` (both keep step, exp_avg and
    exp_avg_sq per parameter, which the checkpoints store)."""
    if name == "radam":
        return torch.optim.RAdam(params, lr=lr)
    return _adam(params, lr)


def _adam(params, lr: float) -> torch.optim.Optimizer:
    """Adam with the fused kernel where this torch and device support it (same maths)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch or unsupported device
        return torch.optim.Adam(params, lr=lr)
