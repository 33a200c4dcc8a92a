"""One model across sessions: shared latent dynamics, a readout per session ("stitching").

Sessions of one dandiset often record different neurons of the same circuit. As LFADS does
(Pandarinath et al. 2018), :func:`fit_shared` fits one latent dynamics — the transition's
U, V, h, decay, latent noise and initial state — jointly to all of them, with an observation
model (readout: C, d and the noise or rates) and a proposal of each session's own, so that
every session informs the dynamics and none has to share neurons with another. Each optimiser
step sums the bound of one batch of every session.

The result is one :class:`~nwb_lrnn.LowRankRNN` per session whose ``model_.transition`` is
the same module: each transforms, samples and scores its own session as a plain fit does.
:func:`write_shared` writes them into one NWB file, a processing module per session
(``lrnn_<session>``), each a complete model; :func:`read_shared` reloads them.

This module uses the estimator's internals (its settings, initialisation and fitted-state
setter) as a friend of :mod:`nwb_lrnn.estimator`.

Examples
--------
>>> fits = fit_shared({"ses-1": data1, "ses-2": data2}, rank=3, n_units=64,
...                   max_epochs=100, validation_fraction=0.2)     # doctest: +SKIP
>>> fits["ses-2"].sample(4, 200).values.shape                       # doctest: +SKIP
>>> write_shared(fits, "shared.nwb", data={"ses-1": data1, "ses-2": data2})  # doctest: +SKIP
>>> again = read_shared("shared.nwb")                               # doctest: +SKIP
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._validate import check_int
from .data import BinnedData

__all__ = ["fit_shared", "read_shared", "write_shared"]

logger = logging.getLogger(__name__)

MODULE_PREFIX = "lrnn_"


def _named(sessions: Mapping[str, BinnedData] | Sequence[BinnedData]) -> dict[str, BinnedData]:
    if isinstance(sessions, Mapping):
        out = {str(k): v for k, v in sessions.items()}
    elif isinstance(sessions, Sequence) and not isinstance(sessions, (str, bytes)):
        out = {f"session_{i}": v for i, v in enumerate(sessions)}
    else:
        raise TypeError("sessions must be a dict name -> BinnedData or a list of BinnedData, "
                        f"got {type(sessions).__name__}.")
    if len(out) < 2:
        raise ValueError(f"fit_shared needs at least 2 sessions, got {len(out)} (fit one "
                         "session with LowRankRNN.fit).")
    for name, d in out.items():
        if not isinstance(d, BinnedData):
            raise TypeError(f"session {name!r} must be a BinnedData, got {type(d).__name__}.")
    first = next(iter(out.values()))
    for name, d in out.items():
        if d.kind != first.kind:
            raise ValueError(f"session {name!r} holds {d.kind!r} data, another {first.kind!r}: "
                             "one shared model explains one kind of data.")
        if not np.isclose(d.bin_size, first.bin_size, rtol=1e-9, atol=0.0):
            raise ValueError(f"session {name!r} has bins of {d.bin_size:g} s, another of "
                             f"{first.bin_size:g} s: the shared dynamics need one bin size.")
        if d.n_inputs != first.n_inputs:
            raise ValueError(f"session {name!r} has {d.n_inputs} inputs, another "
                             f"{first.n_inputs}.")
        if d.nan_mask is not None:
            raise ValueError(f"session {name!r} contains NaN values; drop or interpolate the "
                             "bad segments first.")
    return out


def fit_shared(sessions: Mapping[str, BinnedData] | Sequence[BinnedData], *,
               warm_epochs: int | None = None, verbose: bool | None = None,
               **params: Any) -> dict[str, Any]:
    """Fit one latent dynamics jointly to several sessions, each with its own readout.

    Parameters
    ----------
    sessions : dict of name -> BinnedData, or list of BinnedData (named session_0, ...)
        The same kind of data and bin size; the channels (neurons) may differ in number and
        identity from session to session.
    warm_epochs : int, optional
        Epochs of the two warm-up phases (default ``max_epochs // 4``): the first session is
        fitted alone (its dynamics set the latents' coordinates), then each other session's
        readout and proposal are fitted to those dynamics, held fixed; the remaining
        ``max_epochs - warm_epochs`` epochs train everything jointly (the history records
        those).
    verbose : bool, optional
        Log a line per tenth of the epochs (default: the estimator's ``verbose``).
    **params
        :class:`~nwb_lrnn.LowRankRNN` arguments, shared by all sessions (``readout`` must be
        'affine': with 'units' a neuron *is* a unit of the network). ``validation_fraction``
        holds out part of every session; the validation bound (mean over sessions) picks the
        epoch kept when ``restore_best`` (the default).

    Returns
    -------
    dict of name -> LowRankRNN
        Fitted, their ``model_.transition`` one shared module; ``history_`` holds the mean
        bound over sessions per epoch; ``shared_with_`` names the other sessions.

    Raises
    ------
    ValueError, TypeError
        Fewer than two sessions, sessions that differ in kind, bin size or inputs, NaN, or
        invalid estimator settings (the message names the session or parameter).
    FitDivergedError
        The bound became non-finite (the last good parameters are restored).
    """
    import torch

    from .estimator import (
        LowRankRNN,
        _check_memory,
        _fit_bytes,
        _generator,
        _resolve_device,
        _seed_from,
    )
    from .inference.proposals import make_proposal
    from .inference.resampling import get_resampler
    from .inference.smc import particle_filter
    from .inference.training import (
        FitDivergedError,
        TrainHistory,
        _batches,
        _make_optimizer,
        _ParamBuffer,
        _take,
        evaluate_bound,
        note_score,
    )
    from .model.rnn import LowRankRNNModel

    named = _named(sessions)
    template = LowRankRNN(**params)
    if template.readout != "affine":
        raise ValueError("fit_shared needs readout='affine' (a readout per session); with "
                         "readout='units' each recorded neuron is a unit of the network, "
                         "which sessions with other neurons cannot share.")
    verbose = template.verbose if verbose is None else bool(verbose)
    device = _resolve_device(template.device)
    seed = _seed_from(template.random_state)
    gen = _generator(seed, device)
    init_gen = torch.Generator().manual_seed(seed)

    ests, models, props, train, val, cfgs = {}, {}, {}, {}, {}, {}
    shared = None
    tcfg = None
    for name, data in named.items():
        est = copy.deepcopy(template)
        mcfg, cfg, prop_name = est._validated_settings(data)
        tcfg = tcfg or cfg
        cfgs[name] = cfg  # its own windows: one session may be long, another in trials
        tr, va = est.split(data)
        if cfg.window is not None and cfg.window > tr.n_time:
            raise ValueError(f"session {name!r}: window ({cfg.window}) must be <= its "
                             f"training bins ({tr.n_time}).")
        _check_memory(_fit_bytes(cfg, mcfg, tr.n_trials, tr.n_time), "fitting",
                      "fewer n_particles, a smaller batch_size or window, or fewer n_units")
        model = LowRankRNNModel(mcfg, generator=init_gen)
        if shared is None:
            shared = model.transition
        else:
            model.transition = shared  # one dynamics for all sessions
        est._init_from_data(model, tr)
        prop = make_proposal(prop_name, model, generator=init_gen,
                             **est._proposal_options(data.kind))
        model.to(device)
        prop.to(device)
        ests[name], models[name], props[name] = (est, (mcfg, prop_name)), model, prop
        train[name] = tr.astensor(device=device)
        val[name] = None if va is None else va.astensor(device=device)

    names = list(named)
    resampler = get_resampler(tcfg.resampling)
    has_val = all(v is not None for v in val.values())

    def unique(mods):
        return list({id(p): p for m in mods for p in m.parameters()}.values())

    def run(sub: list[str], params: list, n_epochs: int, hist: TrainHistory | None,
            what: str) -> float:
        """``n_epochs`` epochs over the sessions ``sub`` (a batch of each per step), training
        ``params``; with ``hist``, the bounds are recorded and the best epoch kept. Returns
        the last epoch's mean training bound."""
        if n_epochs <= 0:
            return -math.inf
        opt = _make_optimizer(tcfg.optimizer, params, tcfg.learning_rate)
        gamma = 1.0 if tcfg.lr_final is None else (tcfg.lr_final / tcfg.learning_rate) ** (
            1.0 / max(1, n_epochs))
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
        keep_best = hist is not None and (tcfg.patience is not None
                                          or (has_val and tcfg.restore_best))
        best, best_state, since_best = -math.inf, None, 0
        last_good = _ParamBuffer(params)
        log_every = max(1, n_epochs // 10)
        for epoch in range(n_epochs):
            iters = [_batches(train[n][0].shape[0], train[n][0].shape[1], cfgs[n], gen)
                     for n in sub]
            total, count = 0.0, 0
            for batch in itertools.zip_longest(*iters):
                loss, n_used = 0.0, 0
                for n, b in zip(sub, batch, strict=True):
                    if b is None:
                        continue
                    idx, starts = b
                    y, u = train[n]
                    yb = _take(y, idx, starts, cfgs[n].window)
                    res = particle_filter(models[n], props[n], yb,
                                          inputs=_take(u, idx, starts, cfgs[n].window),
                                          n_particles=tcfg.n_particles, resampler=resampler,
                                          ess_threshold=tcfg.ess_threshold, generator=gen)
                    loss = loss - res.log_marginal.mean() / yb.shape[1]
                    n_used += 1
                loss = loss / n_used
                if not torch.isfinite(loss):
                    last_good.restore()
                    raise FitDivergedError(f"The SMC bound became non-finite at epoch {epoch} "
                                           f"of the shared fit ({what}); the last good "
                                           "parameters were restored. Try a smaller "
                                           "learning_rate.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                norm = (torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
                        if tcfg.grad_clip is not None else torch.tensor(0.0))
                if not torch.isfinite(norm):
                    last_good.restore()
                    raise FitDivergedError(f"A gradient became non-finite at epoch {epoch} of "
                                           f"the shared fit ({what}); the last good "
                                           "parameters were restored.")
                last_good.save()
                opt.step()
                total += -float(loss.detach())
                count += 1
            sched.step()
            if verbose and (epoch % log_every == 0 or epoch + 1 == n_epochs):
                logger.info("shared fit, %s: epoch %d/%d, bound %.4f", what, epoch + 1,
                            n_epochs, total / count)
            if hist is None:
                continue
            hist.train_bound.append(total / count)
            hist.learning_rate.append(opt.param_groups[0]["lr"])
            score = hist.train_bound[-1]
            if has_val:
                score = float(np.mean([evaluate_bound(models[n], props[n], *val[n], cfgs[n],
                                                      gen) for n in sub]))
                hist.val_bound.append(score)
            best, since_best, best_state = note_score(score, epoch, hist, best, since_best,
                                                      best_state, params, keep_best)
            if tcfg.patience is not None and since_best >= tcfg.patience:
                hist.stopped_early = True
                break
        if hist is not None:
            hist.kept_epoch = len(hist.train_bound) - 1
            if best_state is not None:
                best_state.restore()
                hist.kept_epoch = hist.best_epoch
        return total / count

    # the coordinates of the latents: set by the first session alone, then every other
    # session's readout (and proposal) fitted to those dynamics, held fixed; then all jointly.
    # Started jointly from each session's own PCA readout, the shared fit of two teacher
    # sessions was still behind either session's own fit after 400 epochs (held-out bound
    # -2.69 vs -2.65 and -3.03 vs -2.97 per step), its dynamics further from the teacher's.
    warm = (max(1, tcfg.max_epochs // 4) if warm_epochs is None
            else check_int("warm_epochs", warm_epochs, min_value=0,
                           max_value=tcfg.max_epochs - 1))
    t0 = time.perf_counter()
    first = names[0]
    run([first], unique([models[first], props[first]]), warm, None, f"{first} alone")
    for n in names[1:]:
        _align(n, lambda n=n: run([n], unique([models[n].observation, props[n]]), warm, None,
                                  f"the readout of {n} to the dynamics of {first}"),
               models[n].observation, props[n])
    hist = TrainHistory()
    run(names, unique([*models.values(), *props.values()]), tcfg.max_epochs - warm, hist,
        "all sessions")
    hist.seconds = time.perf_counter() - t0

    out = {}
    for name in names:
        est, (mcfg, prop_name) = ests[name]
        data = named[name]
        est._set_fitted(model=models[name], proposal=props[name], proposal_name=prop_name,
                        model_config=mcfg, train_config=cfgs[name], kind=data.kind,
                        channel_names=list(data.channel_names), random_seed=seed,
                        device=device, history=copy.deepcopy(hist))
        est.info_ = None
        zs = data.provenance.get("zscore") if isinstance(data.provenance, dict) else None
        est.zscore_ = None if zs is None else {"mean": list(zs["mean"]),
                                                "std": list(zs["std"])}
        est.window_starts_ = None
        est.shared_with_ = [n for n in names if n != name]
        if float(est.stability_check) > 0:
            est.check_generation(BinnedData(train[name][0].cpu().numpy(), data.bin_size,
                                            data.kind), factor=float(est.stability_check),
                                 random_state=seed, warn=True)
        out[name] = est
    return out


def _align(name: str, fit, observation, proposal) -> None:
    """Fit a session's readout to given dynamics from its PCA start and from that start
    mirrored (first latent axis negated), keeping the better: a readout cannot turn a
    rotation's sense by a continuous change (it would pass through a singular C), so a
    start of the wrong handedness stays in a worse optimum. Measured on one session whose
    channels were another's reversed, started from PCA alone: held-out bound -2.92 per step
    against -2.68 for that session's own fit."""
    import torch

    C = getattr(observation, "C", None)
    if not isinstance(C, torch.nn.Parameter) or C.ndim != 2:
        fit()
        return
    start = [copy.deepcopy(m.state_dict()) for m in (observation, proposal)]
    results = []
    for mirror in (False, True):
        for m, st in zip((observation, proposal), start, strict=True):
            m.load_state_dict(st)
        if mirror:
            with torch.no_grad():
                C[:, 0].neg_()
        bound = fit()
        results.append((bound, [copy.deepcopy(m.state_dict()) for m in (observation, proposal)]))
    bound, states = max(results, key=lambda r: r[0])
    logger.info("session %s: readout fitted from its PCA start (%.4f) and mirrored (%.4f)",
                name, results[0][0], results[1][0])
    for m, st in zip((observation, proposal), states, strict=True):
        m.load_state_dict(st)


def _module_name(session: str) -> str:
    return MODULE_PREFIX + (re.sub(r"[^\w.-]+", "_", session).strip("_") or "session")


def write_shared(fits: Mapping[str, Any], path: str | os.PathLike, *,
                 data: Mapping[str, BinnedData] | None = None, overwrite: bool = False,
                 include: Sequence[str] = ("model", "metrics"), **kwargs: Any) -> Path:
    """Write the fits of :func:`fit_shared` into one NWB file, a processing module per
    session (``lrnn_<session>``, each a complete model with the shared dynamics).

    Parameters
    ----------
    fits : dict of name -> LowRankRNN
    path : path
    data : dict of name -> BinnedData, optional
        Each session's data (provenance, latents, measures).
    overwrite : bool
        Replace an existing results file.
    include : sequence of str
        What each module holds (see :func:`nwb_lrnn.write_nwb`).
    **kwargs
        Passed to :func:`nwb_lrnn.write_nwb` for the file (``subject``, ...).

    Returns
    -------
    Path
    """
    from .results import write_nwb

    data = dict(data or {})
    names = [_module_name(n) for n in fits]
    if len(set(names)) < len(names):
        raise ValueError(f"two session names give the same module name: {names}.")
    path = Path(path).expanduser()
    for i, (name, est) in enumerate(fits.items()):
        write_nwb(est, path, data=data.get(name), mode="new" if i == 0 else "append",
                  overwrite=overwrite if i == 0 else False, include=include,
                  module_name=_module_name(name),
                  metrics={"shared_sessions": float(len(fits))}, **(kwargs if i == 0 else {}))
    return path


def read_shared(path: str | os.PathLike, *, device: str = "auto") -> dict[str, Any]:
    """Reload the fits written by :func:`write_shared`: ``{module name: LowRankRNN}``."""
    from .io.fit_nwb import fit_modules
    from .results import read_fit

    path = Path(path).expanduser()
    modules = [m for m in fit_modules(path) if m.startswith(MODULE_PREFIX)]
    if not modules:
        raise ValueError(f"{path} holds no shared fit (no processing module "
                         f"{MODULE_PREFIX}<session> with a model).")
    return {m: read_fit(path, module_name=m, device=device) for m in modules}
