"""Results files: a fitted estimator written into NWB, and read back.

The step above io: :func:`write_nwb` exports the estimator into a plain
:class:`~nwb_lrnn.io.FitRecord`, computes what the results file holds with it (posterior
latents, surrogate data, measures, fixed points: a :class:`~nwb_lrnn.io.FitResults`) and hands
both to :func:`nwb_lrnn.io.fit_nwb.write_fit`, which knows no torch. :func:`read_fit` is the
inverse: :func:`nwb_lrnn.io.fit_nwb.read_fit_record`, then
:func:`nwb_lrnn.estimator.import_fit`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

import numpy as np

from ._validate import check_option
from .io.fit_nwb import (
    INCLUDE,
    MODULE_NAME,
    FitFileError,
    check_fit_target,
    read_fit_record,
    write_fit,
)
from .io.records import FitResults

__all__ = ["fit_results", "read_fit", "write_nwb"]

logger = logging.getLogger(__name__)


def write_nwb(estimator, path: str | os.PathLike, *, data=None, mode: str = "new",
              include: Iterable[str] = ("model", "latents", "generated", "metrics"),
              overwrite: bool = False, n_generated: tuple[int, int] | None = None,
              burn_in: int = 0, random_state: int = 0, fixed_points=None,
              metrics: Mapping[str, float] | None = None, subject=None,
              session_description: str | None = None,
              module_name: str = MODULE_NAME, experimenter: str | list[str] | None = None,
              institution: str | None = None, lab: str | None = None,
              session_start_time: datetime | None = None) -> Path:
    """Write a fitted :class:`~nwb_lrnn.LowRankRNN` into an NWB file.

    Parameters
    ----------
    estimator : LowRankRNN
        A fitted estimator (or one from ``LowRankRNN.from_parameters``).
    path : path
        Output file.
    data : BinnedData | mne.io.Raw | mne.Epochs, optional
        The data the model was fitted on (or evaluated with): its provenance is recorded and
        it is used for the posterior latents and the metrics.
    mode : {'new', 'append'}
        'new': a standalone results file (session metadata from the source NWB file when it
        is local, otherwise from ``subject``/``session_description``). 'append': add the
        processing module to the existing NWB file at ``path`` (through a copy and an atomic
        replace; the original is untouched if anything fails).
    include : iterable of {'model', 'latents', 'generated', 'metrics', 'fixed_points'}
        What to write ('latents' and 'metrics' need ``data``; 'fixed_points' needs
        ``fixed_points`` or a piecewise-linear model).
    overwrite : bool
        Replace an existing file in mode 'new' (only an nwb_lrnn results file: a recording
        is never replaced).
    n_generated : (n_trials, n_time), optional
        Size of the surrogate data (default: the shape of ``data``, else (1, 1000)).
    burn_in, random_state : int
        Of the surrogate data.
    fixed_points : FixedPoints, optional
        A precomputed fixed-point table.
    metrics : dict, optional
        Extra measures to store: name -> value (split 'user') or name -> (value, split), e.g.
        ``{"var1.loglik_per_bin": (-80.2, "validation")}`` for a baseline's measure.
    subject : pynwb.file.Subject or dict, optional
        Subject metadata for a new file (DANDI needs subject_id, species, sex, age). Default:
        the source NWB file's Subject; a warning says when there is none.
    session_description : str, optional
    module_name : str
        Name of the processing module.
    experimenter, institution, lab : optional
        Default: the source NWB file's. ``session_start_time`` is always the recording's
        (its NWB file, or the MNE recording's ``meas_date``), not the time of writing.

    Local file paths in the provenance are stored as file names (with the file's SHA-256):
    a results file carries no absolute path of this machine. The output checks run before
    anything is computed.

    Returns
    -------
    Path of the written file.

    Raises
    ------
    FileExistsError
        ``path`` exists, mode 'new' and ``overwrite=False``.
    FileNotFoundError
        mode 'append' and ``path`` does not exist.
    ValueError
        Unfitted estimator, unknown ``include`` entries, or ``data`` that does not match.

    Examples
    --------
    >>> write_nwb(est, "fit.nwb", data=data)     # doctest: +SKIP
    >>> est2 = read_fit("fit.nwb")                # doctest: +SKIP
    """
    from .estimator import LowRankRNN, NotFittedError, export_fit

    if not isinstance(estimator, LowRankRNN):
        raise TypeError(f"estimator must be a LowRankRNN, got {type(estimator).__name__}.")
    if not hasattr(estimator, "model_"):
        raise NotFittedError("write_nwb needs a fitted LowRankRNN: call fit(data) or "
                             "LowRankRNN.from_parameters(...) first.")
    mode = check_option("mode", mode, ("new", "append"))
    include = tuple(include)
    for item in include:
        check_option("include", item, INCLUDE)
    if data is not None:
        data = estimator.check_data(data)  # once: MNE input is read and z-scored here only
    path = check_fit_target(path, mode=mode, overwrite=overwrite, data=data)
    if "latents" in include and data is None:
        logger.info("no data given: posterior latents are not written")
    results = fit_results(estimator, data, include=include, n_generated=n_generated,
                          burn_in=burn_in, random_state=random_state,
                          fixed_points=fixed_points, metrics=metrics)
    return write_fit(export_fit(estimator), path, results=results, data=data,
                     include_model="model" in include, mode=mode, overwrite=overwrite,
                     subject=subject, session_description=session_description,
                     module_name=module_name, experimenter=experimenter,
                     institution=institution, lab=lab, session_start_time=session_start_time)


def fit_results(est, data=None, *, include: Iterable[str] = ("latents", "generated", "metrics"),
                n_generated: tuple[int, int] | None = None, burn_in: int = 0,
                random_state: int = 0, fixed_points=None,
                metrics: Mapping[str, float] | None = None) -> FitResults:
    """What a results file holds besides the model, computed with a fitted estimator.

    Parameters
    ----------
    est : LowRankRNN
        Fitted.
    data : BinnedData, optional
        The fitted data (posterior latents and the training bound need it).
    include, n_generated, burn_in, random_state, fixed_points, metrics
        As for :func:`write_nwb`.

    Returns
    -------
    FitResults
    """
    include = tuple(include)
    out = FitResults(burn_in=int(burn_in), generated_seed=int(random_state))
    if "latents" in include and data is not None:
        out.latents, out.latents_sd = est.transform(data, return_std=True, n_runs=4)
        out.latent_start_times = np.asarray(data.start_times, dtype=float)
    if "generated" in include:
        if n_generated is None:
            n_generated = (data.n_trials, data.n_time) if data is not None else (1, 1000)
        same_shape = data is not None and tuple(n_generated) == (data.n_trials, data.n_time)
        out.generated = est.sample(int(n_generated[0]), int(n_generated[1]), burn_in=burn_in,
                                   random_state=random_state,
                                   inputs=data.inputs if same_shape and not burn_in else None)
    if "metrics" in include:
        rows = []
        if data is not None:
            rows.append(("bound_per_step", float(est.score(data)), "train"))
        hist = est.history_
        kept = est.kept_epoch_
        if hist.val_bound and kept is not None and kept < len(hist.val_bound):
            # of the epoch whose parameters the fit holds
            rows.append(("bound_per_step", float(hist.val_bound[kept]), "validation"))
        stab = getattr(est, "stability_", None)
        if stab:  # the long simulation at the end of the fit (LowRankRNN.check_generation)
            rows.append(("generation_bounded", float(bool(stab["stable"])), "generation"))
            rows.append(("generation_max_abs_z_ratio", float(stab["ratio"]), "generation"))
            if stab.get("scale_ratio") is not None:
                rows.append(("generation_scale_ratio", float(stab["scale_ratio"]),
                             "generation"))
        for k, v in (metrics or {}).items():
            value, split = v if isinstance(v, tuple) and len(v) == 2 else (v, "user")
            rows.append((str(k), float(value), str(split)))
        out.metrics = rows
    if "fixed_points" in include:
        fp = fixed_points
        if fp is None:
            from .analysis.fixed_points import find_fixed_points

            fp = find_fixed_points(est, verbose=False)
        out.fixed_points = fp
    return out


def read_fit(path: str | os.PathLike, *, module_name: str | None = None,
             device: str = "auto"):
    """Reload a fit written by :func:`write_nwb` as a fitted :class:`~nwb_lrnn.LowRankRNN`.

    ``sample`` with the same ``random_state`` gives identical output to the estimator that
    was written; ``transform`` agrees to numerical precision. Nothing in the file is executed:
    parameters are read as arrays, settings as JSON.

    Parameters
    ----------
    path : path
        An NWB file with a ``LowRankRNNModel`` in a processing module.
    module_name : str, optional
        The processing module (default: the first one that holds a model).
    device : str

    Raises
    ------
    FileNotFoundError, FitFileError
    """
    from .estimator import import_fit

    record = read_fit_record(path, module_name=module_name)
    try:
        return import_fit(record, device=device)
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise FitFileError(f"{Path(path).expanduser()}: {err}") from None
