"""``nwb-lrnn report``: a folder of PNG figures and one offline HTML page for a fit."""

from __future__ import annotations

import html
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["compare_fits", "format_fit_comparison", "make_rank_report", "make_report"]

logger = logging.getLogger(__name__)


def _stored_series(path: Path, name: str):
    import h5py

    with h5py.File(path, "r") as f:
        for mod in f.get("processing", {}).values():
            if name in mod and "trial_index" in mod[name]:
                g = mod[name]
                data = g["data"][()]
                idx = g["trial_index"][()]
                spread = g["spread"][()] if "spread" in g else None
                n_tr = int(idx.max()) + 1 if idx.size else 0
                if n_tr and data.shape[0] % n_tr == 0:
                    shape = (n_tr, data.shape[0] // n_tr, *data.shape[1:])
                    return data.reshape(shape), None if spread is None else spread.reshape(shape)
    return None, None


def make_report(fit_path: str | Path, out_dir: str | Path, *, data: Any = None,
                fixed_points: Any = "auto") -> Path:
    """Write figures and ``index.html`` describing a fit.

    Parameters
    ----------
    fit_path : path
        An NWB file written by :func:`~nwb_lrnn.write_nwb`.
    out_dir : path
        Folder for the PNG files and ``index.html`` (created).
    data : BinnedData, optional
        The recorded data, for the data-vs-generated panels (spectra, spike statistics).
    fixed_points : FixedPoints, 'auto' or None
        'auto' computes them when the nonlinearity is piecewise linear.

    Returns
    -------
    Path of ``index.html``.
    """
    from .results import read_fit

    fit_path, out = Path(fit_path), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    est = read_fit(fit_path)
    latents, spread = _stored_series(fit_path, "posterior_latents")
    generated, _ = _stored_series(fit_path, "generated")
    if generated is None:
        generated = est.sample(4, 1000, random_state=0).values
    figures: list[tuple[str, str, str]] = []  # (file, title, caption)
    from . import viz

    def save(fig, name, title, caption):
        fig.savefig(out / name, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(fig)
        figures.append((name, title, caption))

    if est.history_.train_bound:
        save(viz.plot_training(est.history_), "training.png", "Training curve",
             "VSMC bound per time step after each epoch (higher is better).")
    if latents is not None:
        thin = ""
        if spread is not None:
            sd, rng = float(np.median(spread)), float(np.ptp(latents[0]))
            if rng > 0 and 4 * sd < 0.02 * rng:
                thin = (f" The band is too thin to see here: median SD {sd:.3g} against a range "
                        f"of {rng:.3g} (the posterior is sharp).")
        save(viz.plot_latents(latents, spread, bin_size=est.bin_size_), "latents.png",
             "Posterior latents", "Smoothed posterior mean of the latents with ±2 SD (first "
             "trial); the SD combines 4 independent particle-filter runs, since one run's "
             "ancestral paths coalesce far from the end of a sequence." + thin)
    fp = None
    if fixed_points == "auto":
        try:
            from .analysis.fixed_points import find_fixed_points

            fp = find_fixed_points(est, verbose=False)
        except Exception as err:  # a report still comes out without them
            logger.info("fixed points not computed: %s", err)
    elif fixed_points is not None:
        fp = fixed_points
    stored = est.stable_, est.stability_
    check = est.check_generation(
        n_time=stored[1]["n_time"] if stored[1] else 10_000,
        n_trials=stored[1]["n_trials"] if stored[1] else 4, random_state=0, warn=False,
        return_trace=True)
    if stored[1]:  # the fit's own check stays what the page reports
        est.stable_, est.stability_ = stored
    save(viz.plot_generation_check(check, bin_size=est.bin_size_), "generation.png",
         "Long simulation", f"The model run freely for {check['n_time']} steps "
         f"({check['n_trials']} runs, from the initial state, with noise): the largest |z| at "
         "each step against the largest |z| of the data's posterior. Bounded means it stays "
         f"below {check['bound_factor']:g}x the data's range.")
    if est.model_config_.rank >= 2:
        save(viz.plot_flow_field(est, latents=latents, fixed_points=fp), "flow_field.png",
             "Flow field", "Drift F(z) − z of the fitted latent dynamics in the first two "
             "latent dimensions, with fixed points by stability; for rank > 2 the plane goes "
             "through a fixed point (the title says which and how many lie on it), else the "
             "other dimensions are at their mean.")
    if data is not None:
        values = data.values
        save(viz.plot_traces(values, generated, bin_size=est.bin_size_, kind=est.kind_,
                             channel_names=getattr(data, "channel_names", None)),
             "traces.png", "Recorded and generated activity",
             "The three most variable channels: the first trial of the data as fitted (black) "
             "and a trial generated by the model (orange), on the same axes"
             + (" (counts as 5-bin moving-average rates)." if est.kind_ == "counts" else "."))
        if est.kind_ == "continuous":
            save(viz.plot_spectra(values, generated, bin_size=est.bin_size_), "spectra.png",
                 "Power spectra", "Power spectra (smoothed along frequency) of the data as "
                 "fitted and of data generated by the model, averaged over channels; D_H here "
                 "compares them as they are (metrics.eeg_scores applies the paper's "
                 "evaluation: generated data Hann-smoothed, against the smoothed recording).")
        else:
            save(viz.plot_spike_statistics(values, generated, bin_size=est.bin_size_),
                 "spikes.png", "Spike statistics", "Data vs generated: mean rates, pairwise "
                 "correlations, population counts per bin.")
    elif est.kind_ == "continuous":
        save(viz.plot_spectra(generated, generated, bin_size=est.bin_size_), "spectra.png",
             "Power spectrum (generated)", "No recorded data given: the spectrum of the "
             "generated data alone.")
    index = out / "index.html"
    from .io.fit_nwb import summarize_fit

    stored = summarize_fit(fit_path)["metrics"]
    index.write_text(_html(fit_path, est, figures, fp, stored))
    return index


def _comparison_html(stored) -> str:
    """The held-out comparison with the baselines (metrics named 'model.measure')."""
    from .baselines import _LABELS, stored_comparison

    table = stored_comparison(stored)
    if not table:
        return ""
    cols = [c for c in _LABELS if any(c in r for r in table.values())]
    head = "".join(f"<th>{html.escape(_LABELS[c])}</th>" for c in cols)
    def cell(r, c):
        v, sd = r.get(c, float("nan")), r.get(f"{c}_sd")
        spread = f" ± {sd:.2g}" if sd is not None and math.isfinite(sd) else ""
        return f"<td>{v:.4g}{spread}</td>"

    body = "".join(
        f"<tr><th>{html.escape(m)}</th>" + "".join(cell(r, c) for c in cols) + "</tr>"
        for m, r in table.items())
    return ("<h2>Held-out comparison with baselines</h2><p>The fit beside simple models "
            "fitted to the same training part and measured on the same held-out part. "
            "loglik/bin: log-likelihood per time bin (the RNN's SMC bound; the baselines' exact "
            "one-step predictive density); MSE: k-step-ahead prediction error of the "
            "observations; D_stsp, D_H, rate r and Fano ratio compare generated with held-out "
            "data (mean ± SD over independent generated draws). A model that adds nothing "
            "over VAR or a GLM does not beat them here.</p>"
            f"<table><tr><th>model</th>{head}</tr>{body}</table>")


def _decoding_html(stored) -> str:
    """The decoding comparison (metrics named 'decoding.model.behaviour'), or ''."""
    from .baselines import stored_decoding

    table = stored_decoding(stored)
    if not table:
        return ""
    names = list(dict.fromkeys(n for r in table.values() for n in r))
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><th>{html.escape(m)}</th>"
        + "".join(f"<td>{r[n]:.3f}</td>" if n in r else "<td>n/a</td>" for n in names)
        + "</tr>" for m, r in table.items())
    return ("<h2>Behaviour decoded from the latents</h2><p>Cross-validated R² (ridge "
            "regression, the same folds for every model; higher is better) of each "
            "behavioural series from the fit's posterior latents and from PCA and factor "
            "analysis with as many dimensions. Latents that model the dynamics should decode "
            "at least as well as factor analysis.</p>"
            f"<table><tr><th>model</th>{head}</tr>{body}</table>")


def _html(fit_path, est, figures, fp, stored=()) -> str:
    cfg = est.model_config_
    rows = {"file": str(fit_path), "rank": cfg.rank, "units": cfg.n_units,
            "channels": cfg.n_channels, "observation": cfg.observation,
            "nonlinearity": json.dumps(cfg.nonlinearity), "bin size (s)": est.bin_size_,
            "proposal": est.proposal_name_, "particles": est.train_config_.n_particles,
            "epochs trained": len(est.history_.train_bound),
            "SMC bound per time step, training, last epoch (nats; higher is better)":
                (f"{est.history_.train_bound[-1]:.4f}" if est.history_.train_bound else "n/a")}
    if est.history_.val_bound:
        h = est.history_
        rows["SMC bound per time step, validation, last epoch (nats)"] = f"{h.val_bound[-1]:.4f}"
        kept = est.kept_epoch_
        if kept is not None and kept < len(h.val_bound):
            rows["epoch whose parameters the fit holds (its validation bound)"] = (
                f"{kept + 1} ({h.val_bound[kept]:.4f})"
                + ("" if kept == h.best_epoch or not 0 <= h.best_epoch < len(h.val_bound)
                   else f"; the best was epoch {h.best_epoch + 1} "
                        f"({h.val_bound[h.best_epoch]:.4f})"))
    labels = {"bound_per_step": "SMC bound per time step, one filter pass over the data "
                                "stored with the fit (nats)",
              "D_stsp": "D_stsp: state-space KL, generated vs data (lower is better)",
              "D_stsp_published": "D_stsp as the paper's evaluation code computes it",
              "D_H": "D_H: Hellinger distance of power spectra (lower is better)"}
    for name, value, split in stored:
        if name == "bound_per_step" and split == "validation":
            continue  # the validation row above
        if "." not in name and not name.startswith("generation_"):
            rows[f"{labels.get(name, name)} [{split}]"] = f"{value:.4g}"
    if est.stability_:
        st = est.stability_
        sr = st.get("scale_ratio")
        rows["generation check (bounded and on the data's scale)"] = (
            f"{'passed' if st['stable'] else 'FAILED'} ({st['n_time']} steps x {st['n_trials']} "
            f"runs; largest |z| {float(st['ratio']):.3g}x the data's"
            + (f"; generated scale {float(sr):.3g}x the data's, median over channels"
               if sr is not None else "") + ")")
    if fp is not None:
        rows["fixed points"] = ", ".join(f"{k}: {int(np.sum(np.asarray(fp.stability) == k))}"
                                         for k in sorted(set(map(str, fp.stability))))
    table = "\n".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                      for k, v in rows.items())
    figs = "\n".join(f'<figure><h2>{html.escape(t)}</h2><img src="{html.escape(n)}" '
                     f'alt="{html.escape(t)}"><figcaption>{html.escape(c)}</figcaption>'
                     "</figure>" for n, t, c in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>nwb_lrnn report</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}th,td{{text-align:left;padding:2px 12px 2px 0}}
img{{max-width:100%}}figure{{margin:1.5em 0}}figcaption{{color:#555}}</style></head>
<body><h1>Low-rank RNN fit</h1><table>{table}</table>{_comparison_html(stored)}
{_decoding_html(stored)}{figs}
</body></html>
"""


# ------------------------------------------------------------------ several fits, side by side
def compare_fits(fit_paths: list[str | Path]) -> dict[str, Any]:
    """The held-out comparisons with baselines stored in several fit files (one per rank,
    say), side by side, and for each baseline and measure the smallest rank that beats it.

    Reads only the files' metrics (h5py; no model is built). Each file must hold the rows
    :func:`~nwb_lrnn.baselines.compare_to_baselines` gives, stored as metrics named
    ``'<model>.<measure>'`` on the validation split, as ``nwb-lrnn fit`` writes them (or
    ``write_nwb(..., metrics=...)``).

    Parameters
    ----------
    fit_paths : list of paths
        NWB fit files, typically of one recording at several ranks.

    Returns
    -------
    dict
        ``fits``: a list, sorted by rank, of dicts with ``path``, ``label``, ``rank``,
        ``observation``, ``measures`` ({measure: value}) and ``sd`` ({measure: SD over the
        generated draws}); ``baselines``: {name: {"measures": ..., "sd": ...}}, from the first
        file; ``same_split``: whether every file holds the same baseline values (the fits were
        measured on the same held-out part); ``first_better``: {baseline: {measure: the
        smallest rank whose fit is better, or None}}. Files that hold a decoding comparison
        (``nwb-lrnn fit --behavior``, :func:`~nwb_lrnn.baselines.compare_decoding`) add
        ``decoding`` ({model: {behaviour: R²}}) to their fit's dict, and the result has
        ``decoding_first_level``: {'fa' | 'pca': {behaviour: the smallest rank whose latents
        decode it at least as well, or None}}.

    Raises
    ------
    ValueError
        A file holds no comparison (the message names it).

    Examples
    --------
    >>> cmp = compare_fits(["rank2.nwb", "rank3.nwb", "rank4.nwb"])  # doctest: +SKIP
    >>> cmp["first_better"]["var5"]["dh"]  # doctest: +SKIP
    4
    """
    from .baselines import badness, stored_comparison, stored_decoding
    from .io.fit_nwb import summarize_fit

    fits, baselines, same = [], None, True
    for path in fit_paths:
        info = summarize_fit(path)
        rows = stored_comparison(info["metrics"])
        if "lowrank_rnn" not in rows:
            raise ValueError(f"{path}: the file holds no held-out comparison with baselines "
                             "(metrics 'lowrank_rnn.<measure>' on the validation split); fit "
                             "with nwb-lrnn fit and a validation fraction > 0, or pass "
                             "write_nwb(..., metrics=...) the rows of compare_to_baselines.")
        split_rows = {m: _measures(r) for m, r in rows.items()}
        rnn = split_rows.pop("lowrank_rnn")
        if baselines is None:
            baselines = split_rows
        elif split_rows and split_rows != baselines:
            same = False
        cfg = info["model"]
        rank = int(cfg.get("rank", 0))
        obs = str(cfg.get("observation", ""))
        fits.append({"path": str(path), "label": f"rank {rank}, {obs} ({Path(path).name})",
                     "rank": rank, "observation": obs, **rnn,
                     "decoding": stored_decoding(info["metrics"])})
    fits.sort(key=lambda f: f["rank"])
    baselines = baselines or {}
    first: dict[str, dict[str, int | None]] = {}
    for bname, b in baselines.items():
        first[bname] = {}
        for measure, bval in b["measures"].items():
            first[bname][measure] = next(
                (f["rank"] for f in fits if measure in f["measures"]
                 and badness(measure, f["measures"][measure]) < badness(measure, bval)), None)
    # decoding: the smallest rank whose latents decode a behaviour at least as well as factor
    # analysis (and PCA) of the same rank
    decoding: dict[str, dict[str, int | None]] = {}
    for f in fits:
        for model in ("fa", "pca"):
            for name, r2 in f["decoding"].get(model, {}).items():
                best = decoding.setdefault(model, {})
                rnn = f["decoding"].get("lowrank_rnn", {}).get(name)
                if best.get(name) is None:
                    best[name] = f["rank"] if rnn is not None and rnn >= r2 else None
    return {"fits": fits, "baselines": baselines, "same_split": same, "first_better": first,
            "decoding_first_level": decoding}


def _measures(row: dict[str, float]) -> dict[str, dict[str, float]]:
    return {"measures": {k: v for k, v in row.items() if not k.endswith("_sd")},
            "sd": {k[:-3]: v for k, v in row.items() if k.endswith("_sd")}}


def format_fit_comparison(cmp: dict[str, Any]) -> str:
    """:func:`compare_fits`'s result as text: a table of every fit and baseline, then the
    smallest rank that beats each baseline on each measure."""
    from .baselines import _LABELS, format_comparison

    rows = [{"model": f"rank {f['rank']}", **f["measures"],
             **{f"{k}_sd": v for k, v in f["sd"].items()}} for f in cmp["fits"]]
    rows += [{"model": name, **b["measures"], **{f"{k}_sd": v for k, v in b["sd"].items()}}
             for name, b in cmp["baselines"].items()]
    lines = [format_comparison(rows), ""]
    if not cmp["same_split"]:
        lines.append("note: the files' baselines differ: the fits were not all measured on the "
                     "same held-out part, so their rows do not compare exactly.")
    for bname, per in cmp["first_better"].items():
        parts = [f"{_LABELS.get(m, m)} {'rank ' + str(r) if r is not None else 'no rank fitted'}"
                 for m, r in per.items() if m in _LABELS]
        lines.append(f"smallest rank better than {bname}: " + ", ".join(parts))
    dec = [f for f in cmp["fits"] if f.get("decoding")]
    if dec:
        names = list(dict.fromkeys(n for f in dec for r in f["decoding"].values() for n in r))
        lines += ["", "behaviour decoded, R² (the fit's latents / PCA / FA of the same rank):"]
        for f in dec:
            d = f["decoding"]
            cells = [f"{n} " + " / ".join(
                f"{d[m][n]:.3f}" if n in d.get(m, {}) else "n/a"
                for m in ("lowrank_rnn", "pca", "fa")) for n in names]
            lines.append(f"  rank {f['rank']}: " + "; ".join(cells))
        for model, per in cmp.get("decoding_first_level", {}).items():
            parts = [f"{n} {'rank ' + str(r) if r is not None else 'no rank fitted'}"
                     for n, r in per.items()]
            lines.append(f"smallest rank decoding at least as well as {model.upper()}: "
                         + ", ".join(parts))
    return "\n".join(lines)


def make_rank_report(fit_paths: list[str | Path], out_dir: str | Path, *,
                     comparison: dict[str, Any] | None = None) -> Path:
    """Write ``index.html`` and ``ranks.png`` comparing several fits of one recording (one per
    rank, say) with the baselines stored in them (see :func:`compare_fits`).

    The figure has one panel per measure: the fits' values against rank (error bars: SD over
    the generated draws), each baseline a dashed line; the page's table marks, for each
    baseline and measure, the smallest rank that beats it. ``comparison``: what
    :func:`compare_fits` already returned for these files (not read again).

    Returns
    -------
    Path of ``index.html``.
    """
    from . import viz
    from .baselines import _LABELS

    cmp = compare_fits(fit_paths) if comparison is None else comparison
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plt = viz._plt()
    measures = [m for m in _LABELS if any(m in f["measures"] for f in cmp["fits"])]
    fig, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures), 3.0),
                             squeeze=False)
    ranks = [f["rank"] for f in cmp["fits"]]
    for ax, m in zip(axes[0], measures, strict=True):
        vals = [f["measures"].get(m, float("nan")) for f in cmp["fits"]]
        sds = [f["sd"].get(m, float("nan")) for f in cmp["fits"]]
        err = [0.0 if not math.isfinite(v) else v for v in sds]
        ax.errorbar(ranks, vals, yerr=err, marker="o", color="k", label="low-rank RNN",
                    capsize=3)
        ok = [(v - e, v + e) for v, e in zip(vals, err, strict=True) if math.isfinite(v)]
        lo, hi = (min(a for a, _ in ok), max(b for _, b in ok)) if ok else (0.0, 1.0)
        span = max(hi - lo, 1e-3 * max(abs(lo), abs(hi), 1e-12))
        for j, (bname, b) in enumerate(cmp["baselines"].items()):
            v = b["measures"].get(m)
            if v is None or not math.isfinite(v):
                continue
            if lo - 3 * span <= v <= hi + 3 * span:  # far-off baselines would flatten the fits
                ax.axhline(v, ls="--", color=f"C{j}", label=bname)
                lo, hi = min(lo, v), max(hi, v)
            else:
                ax.plot([], [], ls="--", color=f"C{j}", label=f"{bname} ({v:.3g}, off scale)")
        ax.set_ylim(lo - 0.15 * span, hi + 0.15 * span)
        ax.legend(fontsize=6)
        ax.set_xlabel("rank")
        ax.set_title(_LABELS[m])
        ax.set_xticks(sorted(set(ranks)))
    fig.tight_layout()
    fig.savefig(out / "ranks.png", dpi=110)
    plt.close(fig)
    cols = measures
    def cell(v, sd=None):
        spread = f" ± {sd:.2g}" if sd is not None and math.isfinite(sd) else ""
        return f"<td>{v:.4g}{spread}</td>" if math.isfinite(v) else "<td>n/a</td>"

    body = "".join(
        f"<tr><th>{html.escape(f['label'])}</th>"
        + "".join(cell(f["measures"].get(c, float("nan")), f["sd"].get(c)) for c in cols)
        + "</tr>" for f in cmp["fits"])
    body += "".join(
        f"<tr><th>{html.escape(name)}</th>"
        + "".join(cell(b["measures"].get(c, float("nan")), b["sd"].get(c)) for c in cols)
        + "</tr>" for name, b in cmp["baselines"].items())
    head = "".join(f"<th>{html.escape(_LABELS[c])}</th>" for c in cols)
    first = "".join(
        f"<tr><th>{html.escape(name)}</th>" + "".join(
            f"<td>{'rank ' + str(per[c]) if per.get(c) is not None else 'none fitted'}</td>"
            for c in cols) + "</tr>" for name, per in cmp["first_better"].items())
    warn = ("" if cmp["same_split"] else "<p><b>The files' baselines differ</b>: the fits were "
            "not all measured on the same held-out part.</p>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>nwb_lrnn: fits compared</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}th,td{{text-align:left;padding:2px 12px 2px 0}}
img{{max-width:100%}}</style></head>
<body><h1>Fits compared with baselines</h1>
<p>Every fit and baseline measured on the held-out part stored with the fits: loglik/bin
(the RNN's SMC bound, the baselines' exact one-step density; higher is better), k-step
prediction errors, and generated-vs-held-out measures (mean ± SD over generated draws).</p>
{warn}<table><tr><th>model</th>{head}</tr>{body}</table>
<h2>Smallest rank that beats each baseline</h2>
<table><tr><th>baseline</th>{head}</tr>{first}</table>
<figure><img src="ranks.png" alt="measures against rank"><figcaption>Each measure against
rank (error bars: SD over generated draws); dashed: the baselines (one far from every fit is
named in the legend with its value instead of being drawn).</figcaption></figure>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index
