"""The ``nwb-lrnn`` command line.

    nwb-lrnn fit SOURCE [--rank R] [--units N] [--bin-size S] [--particles K] [--epochs E]
                        [--seed S] [--device D] [--out FILE.nwb] [--asset GLOB]
                        [--cache-dir DIR] [--eeg-preprocessing paper|zscore] ...
    nwb-lrnn info FIT.nwb
    nwb-lrnn fixed-points FIT.nwb [--method M] [--input v1,v2] [--store] [--csv OUT.csv]
    nwb-lrnn generate FIT.nwb --out OUT.{nwb,npy,fif,edf} [--n-trials N] [--n-times T]
    nwb-lrnn report FIT.nwb [--data SOURCE] [--out DIR]
    nwb-lrnn demo [--out-dir DIR] [--fast] [--teacher-student]
    nwb-lrnn version

SOURCE is a local NWB file, an NWB URL, a dandiset (``DANDI:000128[/version]`` or ``000128``,
with ``--asset PATH_OR_GLOB``) or an EEG file MNE reads (EDF, BDF, FIF, BrainVision, EEGLAB).
A user error prints one line and exits with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path

from . import _defaults
from .io.sources import EEG_SUFFIXES  # the one suffix table; the io package is lazy (no torch)

__all__ = ["build_parser", "main", "sample_eeg_path"]

logger = logging.getLogger(__name__)

SAMPLE_EEG = "S001R01.edf"
SAMPLE_EEG_ATTRIBUTION = (
    "EEG: PhysioNet EEG Motor Movement/Imagery Dataset (eegmmidb) v1.0.0, subject 1, run 1 "
    "(S001R01, eyes open), ODC Attribution 1.0. Cite Schalk et al. 2004, IEEE TBME "
    "51(6):1034-1043, and Goldberger et al. 2000, Circulation 101(23):e215-e220.")


THREADS_HELP = ("CPU threads for torch (default 0: chosen from the CPUs this process may use and "
                "finds idle; small fits use 1)")


class CLIError(Exception):
    """A user error: printed as one line."""


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars: on when stderr is a terminal, unless --quiet."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _fit_progress(args: argparse.Namespace) -> bool:
    """Fits report progress unless --quiet: a bar on a terminal, else a log line every 30 s."""
    return not getattr(args, "quiet", False)


def _set_threads(args: argparse.Namespace) -> None:
    """--threads N fixes the package's torch threads; 0 (the default) lets it choose."""
    if getattr(args, "threads", 0):
        from ._threads import set_num_threads

        set_num_threads(args.threads)


def sample_eeg_path() -> Path:
    """Path of the bundled EEG recording (PhysioNet eegmmidb ``S001R01.edf``).

    It ships as package data (``nwb_lrnn/sample_data``); a source checkout also has it in
    ``tests/data``.

    Raises
    ------
    FileNotFoundError
        Neither copy is there (a broken installation).
    """
    import nwb_lrnn

    pkg = Path(nwb_lrnn.__file__).parent
    for cand in (pkg / "sample_data" / SAMPLE_EEG, pkg.parent / "tests" / "data" / SAMPLE_EEG):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"the bundled EEG recording {SAMPLE_EEG} is missing from "
                            f"{pkg / 'sample_data'}; reinstall nwb_lrnn.")


def source_kind(source: str) -> str:
    """'dandi', 'eeg' or 'nwb' for a SOURCE argument (:func:`nwb_lrnn.io.source_kind`)."""
    from .io.sources import source_kind as kind

    return kind(source)


def load_eeg(path: str | Path, *, preprocessing: str = "zscore", bin_size: float | None = None):
    """Read an EEG file into BinnedData (:func:`nwb_lrnn.io.read`)."""
    from .io.sources import read

    return read(path, bin_size=bin_size, eeg_preprocessing=preprocessing)


def load_source(args: argparse.Namespace):
    """Read SOURCE into BinnedData as the options say (:func:`nwb_lrnn.io.read`; several
    sessions of a dandiset are merged here, :func:`_fit` fits them one by one)."""
    from .io import NWBReadError
    from .io.sources import read

    kind = source_kind(args.source)
    extra = {"merge": True} if kind == "dandi" else {}
    try:
        return read(args.source, bin_size=args.bin_size or (None if kind == "eeg" else 0.02),
                    asset=getattr(args, "asset", None),
                    eeg_preprocessing=getattr(args, "eeg_preprocessing", "zscore"),
                    api_url=getattr(args, "api_url", None),
                    cache_dir=getattr(args, "cache_dir", None), **extra)
    except NWBReadError as err:
        if "HDF5 signature" not in str(err):
            raise
        raise CLIError(f"{err} {_sniff(args.source)}Formats read: NWB (.nwb files and URLs), "
                       f"dandisets (DANDI:000128), and EEG that MNE reads "
                       f"({', '.join(EEG_SUFFIXES)}).") from None


def _sniff(source: str) -> str:
    """A hint when a file's first bytes are those of a format the CLI reads under its suffix."""
    try:
        with open(source, "rb") as f:  # the first 8 bytes only, whatever the file's size
            head = f.read(8)
    except OSError:
        return ""
    if head == b"0       ":
        return "Its first bytes are those of an EDF file: give it the .edf suffix. "
    if head == b"\xffBIOSEMI":
        return "Its first bytes are those of a BDF file: give it the .bdf suffix. "
    return ""


def _fit(args: argparse.Namespace) -> int:
    _set_threads(args)
    _check_session_options(args)
    if source_kind(args.source) != "dandi" and (args.shared or args.backend == "ray"
                                                 or args.skip_existing):
        raise CLIError(f"--shared, --backend ray and --skip-existing are for the sessions of a "
                       f"dandiset; {args.source} is one recording.")
    if getattr(args, "behavior", None) and (source_kind(args.source) != "nwb"
                                             or not Path(args.source).is_file()):
        raise CLIError(f"--behavior reads behavioural series from a local NWB file; "
                       f"{args.source} is not one (download the session and fit the file, or "
                       "decode with nwb_lrnn.baselines.compare_decoding in Python).")
    if source_kind(args.source) == "dandi":
        if args.backend == "ray" and not args.shared:
            done = _fit_sessions_ray(args)
            if done is not None:
                return done
        sessions = _dandi_sessions(args)
        if args.shared:
            return _fit_shared(args, sessions)
        if len(sessions) > 1:
            return _fit_sessions(args, sessions)
        data = sessions[0]
        out = _check_fit_args(args)
    else:
        out = _check_fit_args(args)  # every check before any data is read or trained on
        data = load_source(args)
    _fit_one(args, data, out, behavior=_read_behaviors(args, data))
    return 0


def _read_behaviors(args: argparse.Namespace, data) -> dict:
    """--behavior's series on the data's bins, read before fitting (a wrong name fails now,
    not after training); {} without --behavior."""
    names = list(getattr(args, "behavior", None) or [])
    if not names:
        return {}
    from .io import read_behavior

    try:
        return {name: read_behavior(args.source, name, like=data) for name in names}
    except ValueError as err:
        raise CLIError(f"--behavior: {err} (checked before fitting)") from None


def _decoding_metrics(est, data, behavior: dict) -> dict:
    """Behaviour decoded from the fit's latents beside PCA and FA, printed; rows for the
    file."""
    if not behavior:
        return {}
    from .baselines import compare_decoding, decoding_metrics, format_decoding

    rows = compare_decoding(est, data, behavior)
    print(f"  behaviour decoded (R², cross-validated ridge, 5 folds; {est.rank} latents each "
          "from the fit, PCA and factor analysis of the smoothed data):")
    for line in format_decoding(rows).splitlines():
        print(f"    {line}")
    return decoding_metrics(rows)


def _check_session_options(args: argparse.Namespace) -> None:
    """Options that do not go together, refused before anything is read."""
    if args.address and args.backend != "ray":
        raise CLIError("--address names a Ray cluster: give --backend ray too.")
    if args.shared and args.backend == "ray":
        raise CLIError("--shared fits one model to all sessions together, in this process: "
                       "--backend ray does not apply.")
    if args.shared and (args.append or args.skip_existing):
        raise CLIError("--shared writes one new results file: --append and --skip-existing "
                       "do not apply.")
    if args.backend == "ray":
        given = [f"--{k.replace('_', '-')}" for k in ("subject_id", "experimenter",
                                                      "institution", "checkpoint")
                 if getattr(args, k, None) is not None]
        if given or args.append:
            raise CLIError(f"--backend ray writes each session's results file from its Ray "
                           f"task: {', '.join(given + (['--append'] if args.append else []))} "
                           "apply(ies) to --backend serial only.")


def _dandi_sessions(args: argparse.Namespace) -> list:
    """Every NWB session of a dandiset (or those --asset selects), read once on the driver."""
    from .io import read_dandi

    _check_fit_args(args, out_needed=False)
    got = read_dandi(args.source, asset=args.asset, bin_size=args.bin_size or 0.02,
                     api_url=getattr(args, "api_url", None),
                     cache_dir=getattr(args, "cache_dir", None))
    return got if isinstance(got, list) else [got]


def _session_out(folder: Path, data) -> Path:
    """``<asset path without .nwb, / as _>_lrnn.nwb`` in ``folder`` (the whole path: two
    subjects may have files of the same name); ``data`` is the session's BinnedData or its
    asset path."""
    path = data if isinstance(data, str) else data.provenance.get("asset_path")
    name = str(path or "session").strip("/")
    if "/" in name and Path(name).name.startswith(Path(name).parts[0]):
        name = Path(name).name  # sub-a/sub-a_ses-1.nwb: the file name already says sub-a
    else:
        name = name.replace("/", "_")
    stem = name[:-4] if name.lower().endswith(".nwb") else name
    safe = re.sub(r"[^\w.-]+", "_", stem) or "session"
    return folder / f"{safe}_lrnn.nwb"


def _fit_sessions(args: argparse.Namespace, sessions: list) -> int:
    """One fit and one results file per session, then a summary table (summary.csv)."""
    folder, outs = _session_outs(args, sessions)
    print(f"nwb-lrnn fit: {args.source}: {len(sessions)} sessions, one fit each, results in "
          f"{folder}/")
    rows = []
    for k, (data, out) in enumerate(zip(sessions, outs, strict=True)):
        print(f"\n[{k + 1}/{len(sessions)}] {data.provenance.get('asset_path')}")
        skip = _skipped(args, data.provenance.get("asset_path"), out)
        if skip is not None:
            rows.append(skip)
            continue
        try:
            est = _fit_one(args, data, out)
        except Exception as err:  # this session fails, the others are fitted
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            print(f"  FAILED: {msg}")
            rows.append({"session": data.provenance.get("asset_path"), "status": "error",
                         "error": f"{type(err).__name__}: {msg}"[:500]})
            continue
        hist = est.history_
        rows.append({"session": data.provenance.get("asset_path"), "status": "ok",
                     "units": data.n_channels,
                     "trials": data.n_trials, "bins": data.n_time,
                     "train_bound": hist.train_bound[-1],
                     "val_bound": hist.val_bound[-1] if hist.val_bound else "",
                     "generation_bounded": est.stable_, "results": out.name})
    _write_summary(folder, rows)
    failed = sum(r["status"] == "error" for r in rows)
    if failed:
        print(f"{failed} of {len(rows)} sessions failed (summary.csv says why)")
    return 1 if failed else 0


def _session_outs(args: argparse.Namespace, sessions: list) -> tuple[Path, list[Path]]:
    """The results folder and one results file per session (BinnedData or asset paths),
    refused when taken, before anything is fitted."""
    if args.append:
        raise CLIError(f"{args.source} selects {len(sessions)} sessions; --append adds one fit "
                       "to one file: select one session with --asset.")
    folder = Path(args.out) if args.out else Path(_default_out(args.source)).with_suffix("")
    if folder.suffix.lower() == ".nwb":
        raise CLIError(f"{args.source} selects {len(sessions)} sessions: --out must be a "
                       f"folder for their results files, got {folder}.")
    outs = [_session_out(folder, d) for d in sessions]
    if len(set(outs)) < len(outs):
        raise CLIError(f"two sessions of {args.source} would write the same results file; "
                       "select them with --asset and fit them separately.")
    taken = [str(o) for o in outs if o.exists()]
    if taken and not (args.overwrite or args.skip_existing):
        raise CLIError(f"{len(taken)} results file(s) exist ({', '.join(taken[:3])}); pass "
                       "--skip-existing to fit only the other sessions, --overwrite, or "
                       "another --out folder (checked before fitting).")
    folder.mkdir(parents=True, exist_ok=True)
    return folder, outs


def _skipped(args: argparse.Namespace, session: str, out: Path) -> dict | None:
    """The summary row of a session --skip-existing leaves alone, or None."""
    if args.skip_existing and not args.overwrite and out.exists():
        print(f"  {session}: {out.name} exists, skipped (--skip-existing)")
        return {"session": session, "status": "skipped", "results": out.name}
    return None


def _write_summary(folder: Path, rows: list[dict]) -> None:
    """summary.csv (one row per session) and its printed table."""
    import csv

    summary = folder / "summary.csv"
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(summary, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nsummary ({summary}): scores are per session; sessions differ in neurons, so "
          "they are not ranked against each other")
    for r in rows:
        if r.get("status") == "skipped":
            print(f"  {r['session']}: skipped, {r['results']} exists")
            continue
        if r.get("status", "ok") != "ok":
            print(f"  {r['session']}: FAILED ({r.get('error')})")
            continue
        val = f"{r['val_bound']:.4f}" if r["val_bound"] not in ("", None) else "-"
        gen = {True: "bounded", False: "NOT bounded"}.get(r["generation_bounded"], "unchecked")
        print(f"  {r['session']}: {r['units']} units, bound {r['train_bound']:.4f} "
              f"(validation {val}), generation {gen} -> {r['results']}")


def _fit_sessions_ray(args: argparse.Namespace) -> int | None:
    """The sessions of a dandiset as Ray tasks, one per session: assets resolved once here,
    each task reads its own asset (no API request), fits, scores and writes its results
    file; None when the selection holds a single session (fitted here as usual)."""
    from .io.dandi import resolve_dandi
    from .io.fit_nwb import summarize_fit
    from .sweep import sweep

    _check_fit_args(args, out_needed=False)
    if not 0 < args.validation_fraction < 1:
        raise CLIError("--backend ray holds out part of every session: --validation-fraction "
                       f"must be in (0, 1), got {args.validation_fraction}.")
    assets = resolve_dandi(args.source, asset=args.asset,
                           api_url=getattr(args, "api_url", None))
    if len(assets) < 2:
        return None
    folder, outs = _session_outs(args, [a.path for a in assets])
    print(f"nwb-lrnn fit: {args.source}: {len(assets)} sessions, one Ray task each, results "
          f"in {folder}/")
    read = {"bin_size": args.bin_size or 0.02}
    if getattr(args, "cache_dir", None):  # absolute: Tune runs each trial in its own folder
        read["cache_dir"] = str(Path(args.cache_dir).expanduser().resolve())
    skipped = {a.path: _skipped(args, a.path, o) for a, o in zip(assets, outs, strict=True)}
    sources = {a.path: {"dandi_asset": a.to_dict()} for a in assets if skipped[a.path] is None}
    work = folder / ".ray_sweep"
    if not sources:
        _write_summary(folder, list(skipped.values()))
        return 0
    try:
        result = sweep(sources, search_space={}, fixed_params=_estimator_params(args),
                       out_dir=work, read_kwargs=read, address=args.address,
                       validation_fraction=args.validation_fraction, backend="ray",
                       include=("model", "latents", "generated", "metrics"),
                       torch_threads=args.threads or 1, max_retries=1,
                       resources_per_trial={"cpu": args.threads or 1,
                                            # Ray hides the GPUs from tasks that ask none
                                            **({"gpu": 1} if str(args.device).startswith("cuda")
                                               else {})})
    except ImportError as err:
        raise CLIError(f"--backend ray needs Ray: {err}") from None
    by_session = {r["session"]: r for r in result.table.to_dict("records")}
    rows = []
    for a, out in zip(assets, outs, strict=True):
        if skipped[a.path] is not None:
            rows.append(skipped[a.path])
            continue
        r = by_session.get(a.path, {"status": "error", "error": "no trial ran"})
        row = {"session": a.path, "status": r.get("status"), "error": r.get("error") or ""}
        if r.get("status") == "ok":
            try:
                os.replace(r["nwb_path"], out)
            except OSError as err:  # e.g. written on a node whose disk this one cannot see
                row.update(status="error", error=f"results file {r['nwb_path']}: {err}")
                rows.append(row)
                continue
            info = summarize_fit(out)
            bounded = next((m[1] for m in info.get("metrics") or []
                            if m[0] == "generation_bounded"), None)
            row.update(units=info["model"].get("n_channels"), train_bound=r.get("train_bound"),
                       val_bound=r.get("val_bound"),
                       generation_bounded=None if bounded is None else bool(bounded),
                       node_id=r.get("node_id"), results=out.name)
        rows.append(row)
    _write_summary(folder, rows)
    failed = sum(r["status"] not in ("ok", "skipped") for r in rows)
    if failed:
        print(f"{failed} of {len(rows)} sessions failed; Ray's records are in {work}")
        return 1
    import shutil

    shutil.rmtree(work, ignore_errors=True)  # Tune's records and chunk checkpoints: done with
    return 0


def _fit_shared(args: argparse.Namespace, sessions: list) -> int:
    """One latent dynamics for all sessions, a readout each (:func:`nwb_lrnn.stitch.fit_shared`),
    written to one results file with a processing module per session."""
    from .stitch import _module_name, fit_shared, write_shared

    if len(sessions) < 2:
        raise CLIError(f"--shared fits one model across sessions; {args.source} selects "
                       f"{len(sessions)}.")
    out = _check_fit_args(args)
    # the names the per-session results files would have (sub-a_ses-1_ecephys, ...)
    names = {_session_out(Path("."), d).name[: -len("_lrnn.nwb")]: d for d in sessions}
    if len(names) < len(sessions):
        raise CLIError(f"two sessions of {args.source} get the same name; select them with "
                       "--asset.")
    print(f"nwb-lrnn fit: {args.source}: {len(sessions)} sessions, one shared model "
          f"({', '.join(str(d.n_channels) for d in sessions)} units)")
    t0 = time.perf_counter()
    params = _estimator_params(args)
    params["verbose"] = bool(params.get("verbose"))
    fits = fit_shared(names, **params)
    first = next(iter(fits.values()))
    h = first.history_
    print(f"  fitted in {time.perf_counter() - t0:.1f} s: mean SMC bound per time step over "
          f"the sessions {h.train_bound[-1]:.4f}"
          + (f" (validation {h.val_bound[-1]:.4f})" if h.val_bound else ""))
    for name, est in fits.items():
        print(f"  {name}: module {_module_name(name)}, {stability_line(est)}")
    write_shared(fits, out, data=names, overwrite=args.overwrite,
                 include=("model", "latents", "metrics"), subject=_subject(args),
                 experimenter=args.experimenter, institution=args.institution)
    print(f"  wrote {out} (read it back with nwb_lrnn.stitch.read_shared)")
    return 0


def _fit_one(args: argparse.Namespace, data, out: Path, behavior: dict | None = None):
    from . import LowRankRNN
    from .results import write_nwb

    print(f"nwb-lrnn fit: {data}")
    _check_space(out, data, args)  # before training, so that no fit is lost
    ckpt = _checkpoint_path(args, out)
    est = LowRankRNN(**_estimator_params(args))
    t0 = time.perf_counter()
    if ckpt is not None and ckpt.exists():
        print(f"  resuming from the checkpoint {ckpt}")
    try:
        est.fit(data, checkpoint=ckpt, resume=ckpt is not None,
                checkpoint_every=_CHECKPOINT_EVERY)
    except ValueError as err:
        if ckpt is not None and "checkpoint" in str(err):
            raise CLIError(f"{err} (CLI: delete it, or pass --checkpoint another path or "
                           "--checkpoint none)") from None
        raise
    dt = time.perf_counter() - t0
    include = ("model", "latents", "generated", "metrics")
    if est.stable_ is False:  # keep the fit: store no surrogate data from diverging dynamics
        include = tuple(x for x in include if x != "generated")
    h = est.history_
    print(f"  fitted in {dt:.1f} s: SMC bound per time step at the last epoch "
          f"{h.train_bound[-1]:.4f}"
          + (f" (validation {h.val_bound[-1]:.4f})" if h.val_bound else ""))
    kept = est.kept_epoch_
    if h.val_bound and kept is not None and kept < len(h.val_bound) - 1:
        print(f"  kept the parameters of epoch {kept + 1} of {len(h.val_bound)}, the "
              f"best validation bound ({h.val_bound[kept]:.4f})")
    print(f"  {stability_line(est)}")
    metrics = _baseline_metrics(est, data, args)
    metrics.update(_decoding_metrics(est, data, behavior or {}))
    try:
        write_nwb(est, out, data=data, overwrite=args.overwrite, include=include,
                  metrics=metrics, mode="append" if args.append else "new",
                  subject=_subject(args), experimenter=args.experimenter,
                  institution=args.institution)
    except (OSError, ValueError) as err:  # the fit is trained: say where it is kept
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        if ckpt is not None and ckpt.exists():
            raise CLIError(f"{msg}. The trained fit is kept in {ckpt}: run the same command "
                           f"with --checkpoint {ckpt} (and another --out if needed) to write "
                           "it without training again.") from None
        raise
    print(f"  wrote {out}" + (" (the fit added to the file)" if args.append else ""))
    if ckpt is not None and args.checkpoint is None:
        ckpt.unlink(missing_ok=True)  # the automatic checkpoint has served its purpose
    return est


def _estimator_params(args: argparse.Namespace) -> dict:
    """The LowRankRNN arguments the fit options give (windows: the estimator's own rule,
    sequences > 1000 bins get random 100-bin windows)."""
    return dict(rank=args.rank, n_units=args.units, nonlinearity=args.nonlinearity,
                observation=args.observation, n_particles=args.particles,
                max_epochs=args.epochs, window=args.window,
                steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
                learning_rate=args.lr, lr_final=args.lr / _defaults.CLI_LR_DECAY,
                random_state=args.seed, device=args.device,
                validation_fraction=args.validation_fraction, verbose=_fit_progress(args))


def _subject(args: argparse.Namespace) -> dict | None:
    """--subject-id/--species/--sex/--age as a Subject dict (None: the source's Subject)."""
    if args.subject_id is None:
        if any(v is not None for v in (args.species, args.sex, args.age)):
            raise CLIError("--species, --sex and --age describe a subject: give --subject-id "
                           "too.")
        return None
    return {"subject_id": args.subject_id, "species": args.species, "sex": args.sex or "U",
            "age": args.age or "P0D/",
            "description": "Given on the nwb-lrnn command line."}


# the automatic checkpoint: rewritten every few epochs (each is a small .npz plus an fsync)
_CHECKPOINT_EVERY = 5


def _checkpoint_path(args: argparse.Namespace, out: Path) -> Path | None:
    """--checkpoint PATH, none, or (default) a hidden file next to --out, removed once the
    results file is written."""
    if args.checkpoint is not None:
        return None if args.checkpoint.lower() == "none" else Path(args.checkpoint)
    return out.with_name(f".{out.name}.checkpoint.npz")


def _check_space(out: Path, data, args: argparse.Namespace) -> None:
    """Enough free space for the results file (latents, surrogate data of the data's size,
    a copy of the file when appending), checked before training."""
    import shutil

    need = 3 * int(data.values.size) * 4 + (1 << 20)
    if args.append and out.exists():
        need += out.stat().st_size
    folder = out.parent if str(out.parent) else Path(".")
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < need:
        raise CLIError(f"not enough free space for {out}: the results need about "
                       f"{need / 2**20:.0f} MiB, {free / 2**20:.0f} MiB are free on its disk "
                       "(checked before fitting).")


def _baseline_metrics(est, data, args) -> dict:
    """The fit beside simple baselines on its held-out part, printed; rows for the file."""
    from .baselines import compare_to_baselines, comparison_metrics, format_comparison

    train, val = est.split(data)
    if val is None:
        print("  baselines: none (--validation-fraction 0: no held-out data to compare on)")
        return {}
    k = 5
    try:
        rows = compare_to_baselines(est, train, val, k=k, random_state=args.seed)
    except ValueError as err:  # e.g. a held-out part too short for VAR(5)
        print(f"  baselines: not computed ({err})")
        return {}
    what = "trials" if data.n_trials >= 2 else "of the time (the end)"
    print(f"  held-out comparison ({args.validation_fraction:g} {what}; loglik/bin: the RNN's "
          f"SMC bound, the baselines' exact one-step log-likelihood):")
    for line in format_comparison(rows, k=k).splitlines():
        print(f"    {line}")
    if not getattr(est.model_.observation, "count_pmf", True):
        print(f"    (loglik/bin n/a: observation {est.model_config_.observation!r} is a density "
              "of the transformed counts, not a probability of the counts; compare it on "
              "the other columns, or fit --observation poisson)")
    return comparison_metrics(rows)


def stability_line(est) -> str:
    """One line on the end-of-fit generation check (``est.stable_``)."""
    r = getattr(est, "stability_", None)
    if not r:
        return "generation: not checked (stability_check=0)"
    sr = r.get("scale_ratio")
    scale = f"; scale {sr:.2f}x the data's" if sr is not None else ""
    if r["stable"]:
        return (f"generation: bounded over {r['n_time']} steps x {r['n_trials']} runs (largest "
                f"|z| {r['ratio']:.2f}x the data's{scale})")
    from .estimator import generation_failure

    why = generation_failure(r)
    if why == "count":
        return (f"generation: NOT bounded over {r['n_time']} steps x {r['n_trials']} runs (a "
                f"count of {r['max_count']:.3g} in one bin); no surrogate data stored. Refit "
                "with --nonlinearity clipped_relu, a lower --lr or more --epochs.")
    if why == "scale":
        return (f"generation: OFF SCALE over {r['n_time']} steps x {r['n_trials']} runs "
                f"(bounded, largest |z| {r['ratio']:.2f}x the data's, but the generated data's "
                f"scale is {sr:.3g}x the data's); no surrogate data stored. Refit with a lower "
                "--lr, more --epochs or a lower --rank.")
    return (f"generation: NOT bounded over {r['n_time']} steps x {r['n_trials']} runs (largest "
            f"|z| {r['ratio']:.3g}x the data's{scale}); no surrogate data stored. Refit with "
            f"--nonlinearity clipped_relu, a lower --lr or more --epochs.")


def _check_fit_args(args: argparse.Namespace, *, out_needed: bool = True) -> Path | None:
    """Refuse bad options, and a taken --out, before reading data; returns the output path."""
    _subject(args)

    def need(ok: bool, what: str, value) -> None:
        if not ok:
            raise CLIError(f"{what}, got {value!r}.")

    need(args.rank >= 1, "--rank must be >= 1", args.rank)
    need(args.units >= args.rank, f"--units must be >= --rank ({args.rank})", args.units)
    need(args.particles >= 1, "--particles must be >= 1", args.particles)
    need(args.epochs >= 1, "--epochs must be >= 1", args.epochs)
    need(args.batch_size >= 1, "--batch-size must be >= 1", args.batch_size)
    need(args.lr > 0, "--lr must be > 0", args.lr)
    need(args.bin_size is None or args.bin_size > 0, "--bin-size must be > 0 (seconds)",
         args.bin_size)
    need(args.window is None or args.window >= 2, "--window must be >= 2 bins", args.window)
    need(args.steps_per_epoch is None or args.steps_per_epoch >= 1,
         "--steps-per-epoch must be >= 1", args.steps_per_epoch)
    need(0 <= args.validation_fraction < 1, "--validation-fraction must be in [0, 1)",
         args.validation_fraction)
    need(args.threads >= 0, "--threads must be >= 0 (0: automatic)", args.threads)
    if args.append and args.overwrite:
        raise CLIError("--append adds the fit to an existing file, --overwrite replaces a "
                       "results file: give one of them.")
    if not out_needed:
        return None
    out = Path(args.out) if args.out else Path(_default_out(args.source))
    if args.append:
        if not out.is_file():
            raise CLIError(f"--append adds the fit to an existing NWB file; {out} does not "
                           "exist (leave --append out to write a new results file).")
    elif out.exists():
        if not args.overwrite:
            raise CLIError(f"{out} exists; pass --overwrite to replace it, --append to add the "
                           "fit to it, or --out another file (checked before fitting, so no "
                           "fit is lost).")
        from .io.fit_nwb import check_replaceable

        try:
            check_replaceable(out, {"source": args.source})
        except FileExistsError as err:
            raise CLIError(str(err).replace("overwrite=True", "--overwrite")
                           .replace("mode='append' (CLI: --append)", "--append")
                           .replace("with mode='append' (CLI: --append)", "with --append")
                           ) from None
    folder = out.parent if str(out.parent) else Path(".")
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise CLIError(f"cannot write {out}: {existing} is not a writable folder (checked "
                       "before fitting).")
    return out


def _default_out(source: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", Path(source.rstrip("/")).name or "fit")
    for suffix in (".nwb", *EEG_SUFFIXES):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return f"{stem}_lrnn.nwb"


def _info(args: argparse.Namespace) -> int:
    """Describe a fit file; reads it with h5py only (no torch import, well under a second)."""
    from .io.fit_nwb import summarize_fit

    s = summarize_fit(args.fit)
    m, e = s["model"], s["estimator"]
    nl = m.get("nonlinearity")
    nl = nl.get("name") if isinstance(nl, dict) else nl
    bin_size = m.get("bin_size")
    bin_txt = f", bin {float(bin_size) * 1e3:g} ms" if isinstance(bin_size, (int, float)) else ""
    print(f"{args.fit}: LowRankRNN rank {m.get('rank')}, {m.get('n_units')} units, "
          f"{m.get('n_channels')} channels, {m.get('observation')} observations, "
          f"nonlinearity {nl}{bin_txt} (processing module {s['module']!r})")
    if s["epochs"]:
        val = (f", validation {s['final_val_bound']:.4f}"
               if s["final_val_bound"] is not None else "")
        print(f"  trained {s['epochs']} epochs with {e.get('n_particles')} particles; SMC "
              f"bound per time step at the last epoch: training {s['final_train_bound']:.4f}"
              f"{val}")
    for name, value, split in s["metrics"]:
        print(f"  metric {name} ({split}): {value:.4g}")
    fp = s["fixed_points"]
    if fp is None:
        print("  fixed points: not stored (nwb-lrnn fixed-points FIT --store)")
    else:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(fp.items()))
        print(f"  fixed points: {sum(fp.values())} stored" + (f" ({kinds})" if kinds else ""))
    for what in ("latents", "generated"):
        if s[what] is not None:
            print(f"  {what}: array of shape {s[what]}")
    if s["source"].get("source"):
        print(f"  source: {s['source']['source']}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    import numpy as np

    from .results import read_fit

    out = Path(args.out)
    low = out.name.lower()
    suffix = next((x for x in (".nwb", ".npy", ".fif", ".fif.gz", ".edf") if low.endswith(x)),
                  None)
    if suffix is None:
        raise CLIError(f"--out must end in .nwb, .npy, .fif or .edf, got {out.name!r}.")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it.")
    if out.exists():  # --overwrite replaces surrogate or results files, never a recording
        from .io.fit_nwb import check_replaceable, read_fit_source

        try:
            check_replaceable(out, read_fit_source(args.fit))
        except FileExistsError as err:
            raise CLIError(str(err).split("; ")[0] + "; --overwrite replaces only files "
                           "nwb_lrnn wrote. Give another --out.") from None
    if args.n_trials < 1 or args.n_times < 1:
        raise CLIError("--n-trials and --n-times must be >= 1.")
    est = read_fit(args.fit)
    if suffix in (".fif", ".fif.gz", ".edf"):
        if est.kind_ != "continuous":
            raise CLIError(f"{suffix} output is for EEG (continuous) fits; {args.fit} is a "
                           "spike-count fit: write .nwb or .npy.")
        if suffix == ".edf":
            import importlib.util

            if importlib.util.find_spec("edfio") is None:
                raise CLIError("writing EDF needs the 'edfio' package (pip install "
                               "'nwb-lrnn[edf]', or pip install edfio); or write .fif instead.")
            if args.n_trials != 1:
                raise CLIError("EDF holds one continuous recording: use --n-trials 1.")
    if suffix == ".nwb":
        from .io.fit_nwb import session_metadata
        from .results import write_nwb

        meta = session_metadata(args.fit)  # the fit's subject and session carry over
        write_nwb(est, out, include=("model", "generated"), overwrite=args.overwrite,
                  n_generated=(args.n_trials, args.n_times), burn_in=args.burn_in,
                  random_state=args.seed, subject=meta["subject"],
                  experimenter=meta["experimenter"], institution=meta["institution"],
                  lab=meta["lab"], session_start_time=meta["session_start_time"])
        print(f"wrote {args.n_trials} trial(s) x {args.n_times} bins of generated data to "
              f"{out}")
        return 0
    gen = est.sample(args.n_trials, args.n_times, burn_in=args.burn_in, random_state=args.seed)
    if suffix == ".npy":
        np.save(out, gen.values)
    else:
        _save_mne(est, args.fit, gen.values, out, suffix, overwrite=args.overwrite)
    print(f"wrote {gen} to {out}")
    if suffix in (".fif", ".fif.gz"):
        print("  as MNE Raw (read with mne.io.read_raw_fif)" if args.n_trials == 1 else
              f"  as MNE Epochs, {args.n_trials} trials (read with mne.read_epochs; "
              f"mne.io.read_raw_fif reads one-trial files only)")
    return 0


def _save_mne(est, fit_path, values, out: Path, suffix: str, *, overwrite: bool) -> None:
    """Write generated EEG as FIF or EDF, in volts when the fit recorded the z-scoring."""
    import mne
    import numpy as np

    from .io import read_fit_source, to_mne

    src = read_fit_source(fit_path)
    zs = src.get("zscore")
    values = np.asarray(values, dtype=np.float64)
    if isinstance(zs, dict) and len(zs.get("std", ())) == values.shape[2]:
        values = values * np.asarray(zs["std"]) + np.asarray(zs["mean"])
    else:
        logger.warning("%s records no z-scoring of the data: the values are written as they "
                       "are (in volts as far as MNE is concerned)", fit_path)
    info = mne.create_info(list(est.channel_names_), sfreq=1.0 / float(est.bin_size_),
                           ch_types="eeg", verbose="error")
    inst = to_mne(values, info, scale=False, verbose="error")
    if suffix == ".edf":
        sfreq = info["sfreq"]
        pad = (-inst.n_times) % round(sfreq) if float(sfreq).is_integer() else 0
        mne.export.export_raw(str(out), inst, fmt="edf", overwrite=overwrite, verbose="error")
        if pad:  # EDF holds whole data records of 1 s; MNE pads with edge values
            print(f"note: EDF stores whole 1-s records, so {pad} samples of edge values were "
                  f"appended after the {inst.n_times} generated ones and annotated "
                  f"BAD_ACQ_SKIP (write .fif, or pass --n-times as a multiple of {round(sfreq)}, "
                  f"to avoid it)")
    else:
        inst.save(str(out), overwrite=overwrite, verbose="error")


def _parse_inputs(text: str | None):
    if text is None:
        return None
    import numpy as np

    try:
        return np.array([float(v) for v in text.split(",") if v.strip()], dtype=float)
    except ValueError:
        raise CLIError(f"--input must be numbers separated by commas, got {text!r}.") from None


def _fixed_points(args: argparse.Namespace) -> int:
    from .analysis.fixed_points import find_fixed_points
    from .io import store_fixed_points
    from .results import read_fit

    est = read_fit(args.fit)
    fp = find_fixed_points(est, inputs=_parse_inputs(args.input), method=args.method,
                           verbose=_progress(args))
    print(format_fixed_points(fp))
    if args.csv:
        _write_fp_csv(fp, Path(args.csv))
        print(f"wrote {args.csv}")
    if args.store:
        store_fixed_points(args.fit, fp)
        print(f"stored the fixed_points table in {args.fit}")
    return 0


def format_fixed_points(fp) -> str:
    """The fixed-point table as text, with a summary line."""
    import numpy as np

    lines = [f"{'#':>3}  {'z':<{max(8, 9 * fp.z.shape[1] + 1)}}  {'stability':<9}  "
             f"{'kind':<5}  max|λ|"]
    for i in range(len(fp)):
        z = " ".join(f"{v:8.3f}" for v in fp.z[i])
        lines.append(f"{i:>3}  [{z}]  {fp.stability[i]:<9}  {fp.kind[i]:<5}  "
                     f"{np.abs(fp.eigenvalues[i]).max():.4f}")
    lines.append(summarize_fixed_points(fp))
    return "\n".join(lines)


def summarize_fixed_points(fp) -> str:
    """'3 fixed points (1 stable, 2 saddle), exact, method regions, 0.01 s'."""
    counts: dict[str, int] = {}
    for s in fp.stability:
        counts[str(s)] = counts.get(str(s), 0) + 1
    what = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    secs = fp.stats.get("seconds") if isinstance(fp.stats, dict) else None
    return (f"{len(fp)} fixed point{'s' if len(fp) != 1 else ''}"
            + (f" ({what})" if what else "")
            + f", {'approximate' if fp.approximate else 'exact'}, method {fp.method}"
            + (f", {secs:.2f} s" if secs is not None else ""))


def _write_fp_csv(fp, path: Path) -> None:
    import csv

    import numpy as np

    R = fp.z.shape[1]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", *(f"z_{r}" for r in range(R)), "stability", "kind",
                    "max_abs_eig", *(f"eig_{r}" for r in range(R))])
        for i in range(len(fp)):
            ev = np.asarray(fp.eigenvalues[i])
            w.writerow([i, *(f"{v:.10g}" for v in fp.z[i]), fp.stability[i], fp.kind[i],
                        f"{np.abs(ev).max():.10g}", *(f"{complex(e):.10g}" for e in ev)])


def _report(args: argparse.Namespace) -> int:
    from .report import compare_fits, format_fit_comparison, make_rank_report, make_report

    if len(args.fit) > 1:  # several fits (one per rank, say) beside their stored baselines
        if args.data:
            raise CLIError("--data is for the report of one fit; several fits are compared "
                           "on the held-out measures stored in them.")
        try:
            cmp = compare_fits(args.fit)
            print(format_fit_comparison(cmp))
            out = Path(args.out) if args.out else Path(args.fit[0]).with_name("fits_compared")
            index = make_rank_report(args.fit, out, comparison=cmp)
        except ValueError as err:
            raise CLIError(str(err)) from None
        print(f"report written: {index}")
        return 0
    args.fit = args.fit[0]
    data = None
    if args.data:
        ns = argparse.Namespace(source=args.data, bin_size=args.bin_size, asset=None)
        data = load_source(ns)
    out = Path(args.out) if args.out else Path(args.fit).with_suffix("").with_name(
        Path(args.fit).stem + "_report")
    index = make_report(args.fit, out, data=data)
    print(f"report written: {index}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import json

    from .sweep import sweep_from_config

    path = Path(args.config)
    if not path.is_file():
        raise CLIError(f"sweep config not found: {path}")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            config = yaml.safe_load(path.read_text())
        else:
            config = json.loads(path.read_text())
    except Exception as err:  # a config the user wrote: say where it is wrong
        kind = "YAML" if path.suffix in (".yaml", ".yml") else "JSON"
        raise CLIError(f"{path} is not valid {kind}: {err}") from None
    if not isinstance(config, dict):
        raise CLIError(f"{path} must hold a mapping of settings (source, out_dir, search_space, "
                       "...).")
    for key in ("out_dir", "address", "backend", "num_samples"):
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    result = sweep_from_config(config)
    with pd_options():
        print(result.table.to_string(index=False))
    for _, best in result.best_by_session.iterrows():  # never a winner across sessions
        print(f"\nbest trial of session {best.get('session')}: {best.get('trial_id')} "
              f"({result.metric} = {best.get(result.metric)}); fit: {best.get('nwb_path')}")
    print(f"summary: {Path(config['out_dir']) / 'summary.csv'}")
    return 0


def pd_options():
    import pandas as pd

    return pd.option_context("display.max_columns", 12, "display.width", 120)


# The main job's settings: full (a few minutes on 2 CPU cores) and --fast (seconds, for tests).
# Clipped ReLU keeps generated trajectories bounded (a short ReLU fit can diverge) and its
# fixed points are still found exactly (piecewise linear).
DEMO_NONLINEARITY = {"name": "clipped_relu", "clip": 1.0}
DEMO_SETTINGS = {
    "full": dict(rank=3, n_units=96, n_particles=10, max_epochs=150, window=100,
                 steps_per_epoch=20, batch_size=16, learning_rate=3e-2, n_time=None),
    "fast": dict(rank=3, n_units=16, n_particles=4, max_epochs=1, window=50,
                 steps_per_epoch=3, batch_size=4, learning_rate=3e-2, n_time=1000),
}


def _demo(args: argparse.Namespace) -> int:
    if args.teacher_student:
        return _demo_teacher_student(args)
    return _demo_eeg(args)


def _demo_eeg(args: argparse.Namespace) -> int:
    """The main job: real EEG -> paper preprocessing -> fit -> NWB results -> report."""

    from . import LowRankRNN
    from .analysis.fixed_points import find_fixed_points
    from .data import BinnedData
    from .io import from_mne, preprocess_eeg_paper, read_eeg
    from .metrics import eeg_scores
    from .report import make_report
    from .results import write_nwb

    _set_threads(args)
    cfg = dict(DEMO_SETTINGS["fast" if args.fast else "full"])
    if args.epochs is not None:
        cfg["max_epochs"] = args.epochs
    out_dir = Path(args.out_dir)
    fit_path = out_dir / "S001R01_lrnn.nwb"
    t_start = time.perf_counter()
    edf = sample_eeg_path()
    print(f"nwb-lrnn demo: rank-{cfg['rank']} clipped-ReLU low-rank RNN fitted to real EEG "
          f"({'fast, tiny settings' if args.fast else 'full settings'})")
    print(f"  {SAMPLE_EEG_ATTRIBUTION}")
    # as the paper: train on the z-scored recording, evaluate against its smoothed version
    data = from_mne(read_eeg(edf, verbose="error"), picks="eeg", verbose="error")
    ref = preprocess_eeg_paper(edf, verbose="error").values[0]
    if cfg["n_time"]:
        data = BinnedData(data.values[:, :cfg["n_time"]], data.bin_size, data.kind,
                          channel_names=data.channel_names, start_times=data.start_times,
                          provenance=data.provenance)
        ref = ref[:cfg["n_time"]]
    print(f"  data: {data} (z-scored; evaluated against the paper's smoothed version)")
    est = LowRankRNN(rank=cfg["rank"], n_units=cfg["n_units"], nonlinearity=DEMO_NONLINEARITY,
                     n_particles=cfg["n_particles"], max_epochs=cfg["max_epochs"],
                     window=cfg["window"], steps_per_epoch=cfg["steps_per_epoch"],
                     batch_size=cfg["batch_size"], learning_rate=cfg["learning_rate"],
                     lr_final=cfg["learning_rate"] / 100, noise_cov="full",
                     random_state=args.seed,
                     verbose=_fit_progress(args))
    t0 = time.perf_counter()
    est.fit(data)
    t_fit = time.perf_counter() - t0
    print(f"  fitted in {t_fit:.1f} s ({cfg['max_epochs']} epochs, N={cfg['n_units']} units, "
          f"K={cfg['n_particles']} particles)")
    print(f"  {stability_line(est)}")

    # the paper's evaluation: 2400 burn-in steps dropped, Hann-smoothed, z-scored
    fast = args.fast
    scores = eeg_scores(est, ref, n_steps=2000 if fast else 10_000,
                        burn_in=100 if fast else 2400, n_samples=200 if fast else 1000,
                        random_state=args.seed)
    d_stsp, d_h = scores["dstsp"], scores["dh"]
    fp = find_fixed_points(est, verbose=False)
    write_nwb(est, fit_path, data=data, overwrite=True, random_state=args.seed,
              include=("model", "latents", "generated", "metrics", "fixed_points"),
              fixed_points=fp, metrics={"D_stsp": d_stsp, "D_H": d_h,
                                        "D_stsp_published": scores["dstsp_published"]},
              session_description="nwb_lrnn demo: low-rank RNN fitted to PhysioNet eegmmidb "
                                  "S001R01 (ODC-By 1.0).",
              # the dataset's volunteer S001 (human; sex and age not published)
              subject={"subject_id": "S001", "species": "Homo sapiens", "sex": "U",
                       "age": "P0D/", "description": "PhysioNet eegmmidb volunteer S001."},
              institution="PhysioNet EEG Motor Movement/Imagery Dataset (eegmmidb)")
    index = make_report(fit_path, out_dir / "report", data=data, fixed_points=fp)
    bound = est.score(data)
    print(f"  SMC bound per time step: {bound:.4f}")
    print(f"  D_stsp (state-space KL, data vs generated): {d_stsp:.3f} (scored as the paper's "
          f"code does, for comparison with published figures: "
          f"{scores['dstsp_published']:.3f})")
    print(f"  D_H (Hellinger distance of power spectra): {d_h:.3f}")
    print(f"  {summarize_fixed_points(fp)}")
    print(f"  results (NWB): {fit_path}")
    print(f"  report: {index}")
    print(f"  total {time.perf_counter() - t_start:.1f} s")
    return 0


def _demo_teacher_student(args: argparse.Namespace) -> int:
    import numpy as np

    from . import LowRankRNN
    from .analysis import correlation_similarity, latent_noise_in_observation_space
    from .teachers import oscillator_teacher

    _set_threads(args)
    epochs = 50 if args.epochs is None else args.epochs
    print("nwb-lrnn demo: teacher–student fit (rank-2 teacher, 20 units, Gaussian observations)")
    teacher = oscillator_teacher(20, 2, seed=args.seed)
    data = teacher.sample(args.trials, 150, burn_in=50, random_state=args.seed + 1)
    print(f"  data: {data}")
    student = LowRankRNN(rank=2, n_units=20, nonlinearity="tanh", n_particles=32,
                         max_epochs=epochs, batch_size=8, learning_rate=0.03,
                         lr_final=0.003, random_state=args.seed, verbose=_fit_progress(args))
    t0 = time.perf_counter()
    student.fit(data)
    dt = time.perf_counter() - t0
    sd_t = latent_noise_in_observation_space(teacher.parameters_)
    sd_s = latent_noise_in_observation_space(student.parameters_)
    gen_t = teacher.sample(32, 1000, burn_in=100, random_state=7).values
    gen_s = student.sample(32, 1000, burn_in=100, random_state=7).values
    r = correlation_similarity(gen_t, gen_s)
    print(f"  fitted in {dt:.1f} s ({epochs} epochs)")
    print(f"  SMC bound per step: teacher {teacher.score(data):.3f}, "
          f"student {student.score(data):.3f}")
    print("  latent noise SD in observation space (invariant to latent coordinates):")
    for i, (a, b) in enumerate(zip(sd_t, sd_s, strict=True)):
        print(f"    direction {i}: teacher {a:.3f}  student {b:.3f}  "
              f"({100 * (b - a) / a:+.1f} %)")
    print(f"  observation noise SD: teacher 0.300, student "
          f"{np.mean(student.parameters_['noise_x']):.3f} (mean over channels)")
    print(f"  pairwise unit correlations, generated data: r = {r:.4f}")
    return 0


def _version(args: argparse.Namespace) -> int:
    from . import __version__

    print(f"nwb-lrnn {__version__}")
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is None, False or already named in its help."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def _add(sub, name: str, **kw) -> argparse.ArgumentParser:
    """A subcommand whose --help shows every option's default."""
    return sub.add_parser(name, formatter_class=_HelpFormatter, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nwb-lrnn",
        description="Fit stochastic low-rank RNNs to neural data with variational SMC.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _add(sub, "fit", help="fit a model to an NWB file, a dandiset or an EEG file")
    p.add_argument("source", help="NWB file or URL, DANDI:000128[/version], or EEG file")
    p.add_argument("--asset", help="dandiset asset path or glob")
    p.add_argument("--backend", choices=("serial", "ray"), default="serial",
                   help="several sessions of a dandiset: 'serial' fits them one after another "
                        "here; 'ray' as Ray tasks, one per session (assets resolved once here, "
                        "each task reads its own; --out must be a folder every node can write)")
    p.add_argument("--address", help="--backend ray: the Ray cluster to use ('auto', "
                                     "'ray://host:10001'; default: a local Ray)")
    p.add_argument("--skip-existing", action="store_true",
                   help="several sessions: leave those whose results file exists in --out "
                        "alone and fit the others (to finish an interrupted run)")
    p.add_argument("--shared", action="store_true",
                   help="several sessions of a dandiset: one model across them (shared latent "
                        "dynamics, a readout per session, as LFADS stitching), one results "
                        "file with a processing module per session")
    p.add_argument("--cache-dir", help="cache folder for DANDI downloads "
                                       "(default: $NWB_LRNN_CACHE or ~/.cache/nwb_lrnn)")
    p.add_argument("--api-url", help=argparse.SUPPRESS)  # another DANDI API (tests, mirrors)
    p.add_argument("--eeg-preprocessing", choices=("paper", "zscore"), default="zscore",
                   help="EEG only: 'paper' = the Hess et al. 2023 / Pals et al. 2024 recipe "
                        "(causal Hann smoothing, z-score); 'zscore' = z-score each channel")
    p.add_argument("--rank", type=int, default=_defaults.CLI_RANK,
                   help="latent dimension R (>= 1)")
    p.add_argument("--units", type=int, default=_defaults.N_UNITS, help="RNN units N (>= rank)")
    p.add_argument("--nonlinearity", default=_defaults.NONLINEARITY,
                   choices=("clipped_relu", "relu", "tanh", "identity"),
                   help="φ (clipped_relu keeps the generated dynamics bounded)")
    p.add_argument("--observation", default="auto", choices=_defaults.OBSERVATION_NAMES,
                   help="observation model: 'auto' (counts: gaussian_sqrt, else gaussian), "
                        "'gaussian_ar1' (Gaussian noise that is AR(1) in time, for smooth "
                        "signals such as EEG), 'gaussian_var1' (that noise a VAR(1) across "
                        "channels), 'gaussian_sqrt' (counts: Gaussian on 2 sqrt(y + 3/8) with "
                        "a noise variance per neuron, as factor analysis)")
    p.add_argument("--bin-size", type=float, default=None,
                   help="seconds (spikes: default 0.02; EEG: resample to 1/bin-size)")
    p.add_argument("--particles", type=int, default=_defaults.N_PARTICLES,
                   help="SMC particles K")
    p.add_argument("--epochs", type=int, default=_defaults.MAX_EPOCHS,
                   help="training epochs (max)")
    p.add_argument("--window", type=int, default=None,
                   help="training window in bins (default: whole trials; sequences longer "
                        "than 1000 bins: random 100-bin windows)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="optimiser steps per epoch (default: one pass over the trials; 50 "
                        "with automatic windows)")
    p.add_argument("--validation-fraction", type=float,
                   default=_defaults.CLI_VALIDATION_FRACTION,
                   help="held out for the validation bound and the baseline comparison: this "
                        "fraction of the trials, or the end of one long recording (0: train "
                        "on everything, no comparison)")
    p.add_argument("--behavior", nargs="+", metavar="NAME", default=[],
                   help="local NWB file: behavioural series (e.g. hand_vel hand_pos) to decode "
                        "from the fit's latents and from PCA and factor analysis with as many "
                        "dimensions (cross-validated ridge); read before fitting, printed "
                        "and stored with the fit's metrics")
    p.add_argument("--batch-size", type=int, default=_defaults.BATCH_SIZE,
                   help="sequences per step")
    p.add_argument("--lr", type=float, default=_defaults.LEARNING_RATE,
                   help=f"Adam's initial learning rate (decayed to lr/{_defaults.CLI_LR_DECAY})")
    p.add_argument("--seed", type=int, default=0, help="random seed of the fit")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', "
                                                    "'cuda[:N]'")
    p.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    p.add_argument("--out", help="output NWB file (default: <source>_lrnn.nwb)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out results file (never a recording)")
    p.add_argument("--append", action="store_true",
                   help="add the fit to the existing NWB file --out (e.g. the source "
                        "recording) as a processing module; its data are kept")
    p.add_argument("--checkpoint", metavar="PATH|none",
                   help="training checkpoint, rewritten every 5 epochs; a run that finds it "
                        "resumes (default: .<out>.checkpoint.npz next to --out, removed once "
                        "the results are written; 'none': no checkpoint)")
    p.add_argument("--subject-id", help="the Subject of a new results file (default: the "
                                        "source NWB file's Subject)")
    p.add_argument("--species", help="with --subject-id, e.g. 'Homo sapiens', 'Mus musculus'")
    p.add_argument("--sex", choices=("M", "F", "U", "O"), help="with --subject-id")
    p.add_argument("--age", help="with --subject-id, ISO 8601 duration, e.g. P90D, P25Y "
                                 "(default: unknown, P0D/)")
    p.add_argument("--experimenter", help="default: the source NWB file's")
    p.add_argument("--institution", help="default: the source NWB file's")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (a bar on a terminal, else a log line every 30 s)")
    p.set_defaults(func=_fit)

    p = _add(sub, "info", help="describe a fit stored in an NWB file")
    p.add_argument("fit")
    p.set_defaults(func=_info)

    p = _add(sub, "fixed-points", help="all fixed points of a fit and their stability")
    p.add_argument("fit")
    p.add_argument("--method", choices=("auto", "regions", "boxes", "brute", "newton"),
                   default="auto")
    p.add_argument("--input", help="constant input u, comma-separated (e.g. 0.5,-1)")
    p.add_argument("--store", action="store_true",
                   help="write the table into the fit file (replaces an existing one)")
    p.add_argument("--csv", help="also write the table to this CSV file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_fixed_points)

    p = _add(sub, "generate", help="generate surrogate data from a fit")
    p.add_argument("fit")
    p.add_argument("--out", required=True,
                   help="OUT.nwb (GeneratedData in a new NWB file), OUT.npy (trials x time x "
                        "channels), or for EEG fits OUT.fif (MNE Raw for one trial, Epochs "
                        "for several) / OUT.edf (one trial), in volts")
    p.add_argument("--n-trials", "--trials", dest="n_trials", type=int, default=1,
                   help="trials to generate (each from the initial-state distribution)")
    p.add_argument("--n-times", "--time", dest="n_times", type=int, default=1000,
                   help="time bins per trial")
    p.add_argument("--burn-in", type=int, default=0,
                   help="steps simulated first and dropped (start near the stationary state)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the generated data")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (never a recording)")
    p.set_defaults(func=_generate)

    p = _add(sub, "report", help="figures and an HTML page for a fit; for several fits (one "
                                  "per rank, say) a page comparing them with their baselines")
    p.add_argument("fit", nargs="+", help="one fit file, or several to compare (each must "
                                          "hold the held-out comparison nwb-lrnn fit stores)")
    p.add_argument("--data", help="the recorded data (same SOURCE forms as fit) for the "
                                  "data-vs-generated panels")
    p.add_argument("--bin-size", type=float, default=None,
                   help="seconds, for spike --data (default 0.02; EEG keeps its rate)")
    p.add_argument("--out", help="output folder (default: <fit>_report; several fits: "
                                 "fits_compared beside the first)")
    p.set_defaults(func=_report)

    p = _add(sub, "demo", help="the main job: fit real EEG, write NWB results and a "
                                    "report")
    p.add_argument("--out-dir", default="nwb_lrnn_demo", help="output folder "
                   "(default: ./nwb_lrnn_demo)")
    p.add_argument("--fast", action="store_true", help="tiny settings (seconds; for tests)")
    p.add_argument("--teacher-student", action="store_true",
                   help="the older demo: a teacher–student fit on simulated data")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: 150; with --fast 1; teacher-student 50)")
    p.add_argument("--trials", type=int, default=32, help="teacher–student only")
    p.add_argument("--seed", type=int, default=0, help="random seed of the fit")
    p.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_demo)

    p = _add(sub, "sweep", help="fits over a search space (seeds, ranks, ...) on Ray")
    p.add_argument("config", help="JSON or YAML file: source(s), out_dir, search_space, metric, "
                                  "... (see nwb_lrnn.sweep.sweep_from_config)")
    p.add_argument("--out-dir", help="overrides the config's out_dir")
    p.add_argument("--address", help="an existing Ray cluster (default: a local Ray)")
    p.add_argument("--backend", choices=("ray", "serial"), help="'serial' runs without Ray")
    p.add_argument("--num-samples", type=int, help="samples of the search space")
    p.set_defaults(func=_sweep)

    p = _add(sub, "version", help="print the version")
    p.set_defaults(func=_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG)
    else:  # progress lines of fits without a terminal read as plain lines
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("nwb-lrnn: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, OSError, MemoryError, ConnectionError) as err:
        if args.debug:
            raise
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"nwb-lrnn: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
