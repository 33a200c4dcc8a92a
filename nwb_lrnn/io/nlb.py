"""Neural Latents Benchmark (NLB) NWB files: held-in / held-out units and trial splits.

NLB files (DANDI 000128 MC_Maze, 000138 MC_RTT, 000139 Area2_Bump, 000140 DMFC_RSG...) have a
Units table with a boolean ``heldout`` column, a trials table with a text ``split`` column
('train', 'val', 'test', 'none') and task columns (``move_onset_time``, condition columns),
and behaviour (e.g. ``hand_vel``) in ``processing/behavior``. :func:`read_nlb` reads the
held-in and held-out units of one split on the same trials and bins, ready for
:func:`nwb_lrnn.metrics.co_bps`.

Example
-------
>>> heldin, heldout = read_nlb("sub-Jenkins_ses-small_desc-train_behavior+ecephys.nwb",
...                            split="train")                     # doctest: +SKIP
>>> heldin.shape, heldout.shape                                     # doctest: +SKIP
((75, 140, 107), (75, 140, 35))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validate import check_float
from ..data import BinnedData
from .nwb import NWBReadError, _open, read_nwb

__all__ = ["read_nlb"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "none")


def read_nlb(path: Any, *, bin_size: float = 0.005,
             split: str | Sequence[str] | None = "train",
             align_to: str | None = "move_onset_time",
             window: tuple[float, float] = (-0.25, 0.45),
             heldout_column: str = "heldout", split_column: str = "split",
             cache_dir: Any = None) -> tuple[BinnedData, BinnedData | None]:
    """Read an NLB-layout NWB file as held-in and held-out spike counts.

    Parameters
    ----------
    path : str | PathLike | URL | pynwb.NWBFile
        As for :func:`~nwb_lrnn.io.read_nwb`.
    bin_size : float
        Bin width in seconds (NLB: 0.005).
    split : str, sequence of str, or None
        Trials whose ``split`` column is this value (or one of these values), e.g.
        ``"train"``, ``"val"``, ``["train", "val"]``, ``"test"``; None: all trials.
    align_to : str or None
        Trials column of the alignment event (NLB's MC_Maze: ``move_onset_time``); None:
        align to ``start_time``.
    window : (start, end)
        Signed offsets in seconds from the event: each trial covers
        [event + start, event + end). NLB's MC_Maze window is (-0.25, 0.45). (Note the
        convention differs from read_nwb's ``window=(before, after)``: here
        ``start = -before``.)
    heldout_column, split_column : str
        Names of the Units column marking held-out units and of the trials split column.
    cache_dir : path, optional
        Disk cache for URLs.

    Returns
    -------
    heldin : BinnedData
        Counts (trials, time, heldin_units); the trial table (``split``, conditions...) in
        ``heldin.trials``.
    heldout : BinnedData or None
        Counts (trials, time, heldout_units) on the same trials and bins; None when the file
        has no held-out unit (NLB test files hold only held-in units).

    Raises
    ------
    NWBReadError
        No ``heldout`` column in the Units table, no ``split`` column in the trials table,
        no trial in the split (the messages list what is there).
    ValueError
        Bad window or bin size.

    Examples
    --------
    >>> heldin, heldout = read_nlb("mc_maze.nwb", split=["train", "val"])  # doctest: +SKIP
    >>> from nwb_lrnn.metrics import co_bps
    >>> co_bps(predicted_heldout_rates, heldout.values)                  # doctest: +SKIP
    0.35
    """
    bin_size = check_float("bin_size", bin_size, min_value=0.0, strict_min=True)
    try:
        start, end = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be (start, end) offsets in seconds, got {window!r}."
                         ) from None
    if not end > start:
        raise ValueError(f"window must satisfy start < end, got {window!r}.")
    splits = None
    if split is not None:
        splits = [split] if isinstance(split, str) else list(split)
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            logger.warning("split value(s) %s are not NLB's usual %s", bad, SPLITS)
    src = _open(path, cache_dir)
    try:
        if heldout_column not in src.units.columns:
            raise NWBReadError(f"{src.label}: the Units table has no {heldout_column!r} "
                               f"column (not an NLB file?); its columns are: "
                               f"{', '.join(sorted(src.units.columns))}.")
        flags = np.array([bool(v) for v in src.units.column(heldout_column)], dtype=bool)
        if src.trials is None:
            raise NWBReadError(f"{src.label} has no trials table (/intervals/trials).")
        if splits is not None:
            if split_column not in src.trials.columns:
                raise NWBReadError(f"{src.label}: the trials table has no {split_column!r} "
                                   f"column; its columns are: "
                                   f"{', '.join(sorted(src.trials.columns))}.")
            present = sorted({str(v) for v in src.trials.column(split_column)})
            if not set(splits) & set(present):
                raise NWBReadError(f"{src.label}: no trial with {split_column} in {splits}; "
                                   f"the values present are: {present}.")
    finally:
        src.close()
    kw = dict(bin_size=bin_size, align_to=align_to or "start_time", window=(-start, end),
              trial_filter=None if splits is None else {split_column: splits},
              cache_dir=cache_dir)
    heldin = read_nwb(path, unit_filter={heldout_column: [False, 0]},
                      allow_empty_units=True, **kw)
    heldout = None
    if flags.any():
        heldout = read_nwb(path, unit_filter={heldout_column: [True, 1]},
                           allow_empty_units=True, **kw)
        if not np.allclose(heldin.start_times, heldout.start_times):
            raise NWBReadError("held-in and held-out units were read on different trials "
                               "(their obs_intervals differ); read them with read_nwb.")
    else:
        logger.info("%s: no held-out unit (an NLB test file?)", path)
    prov = dict(heldin.provenance, nlb={"split": splits, "window": [start, end],
                                        "role": "heldin"})
    heldin = heldin.replace(provenance=prov)
    if heldout is not None:
        heldout = heldout.replace(provenance=dict(heldout.provenance, nlb={
            "split": splits, "window": [start, end], "role": "heldout"}))
    return heldin, heldout
