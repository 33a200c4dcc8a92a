"""Figures and the HTML report of a fit."""

from pathlib import Path

import numpy as np

from nwb_lrnn import LowRankRNN, write_nwb
from nwb_lrnn.cli import main
from nwb_lrnn.io import read_nwb
from nwb_lrnn.teachers import oscillator_teacher

PYNAPPLE = Path(__file__).parent / "data" / "A8604-211122.nwb"


def test_report_for_spikes_via_cli(tmp_path, capsys):
    data = read_nwb(PYNAPPLE, bin_size=0.1, time_range=(0.0, 60.0)).windows(100)
    est = LowRankRNN(rank=2, n_units=6, max_epochs=2, n_particles=4, verbose=False,
                     random_state=0).fit(data)
    fit = write_nwb(est, tmp_path / "fit.nwb", data=data)
    out = tmp_path / "report"
    assert main(["report", str(fit), "--data", str(PYNAPPLE), "--bin-size", "0.1",
                 "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    for png in ("training.png", "latents.png", "flow_field.png", "spikes.png", "traces.png"):
        assert (out / png).stat().st_size > 5000, png
        assert f'src="{png}"' in html
    assert "gaussian_sqrt" in html and "report written" in capsys.readouterr().out


def test_report_for_continuous_data(tmp_path):
    from nwb_lrnn.report import make_report

    teacher = oscillator_teacher(6, 2)
    data = teacher.sample(3, 200, random_state=0)
    est = LowRankRNN(rank=2, n_units=6, max_epochs=2, n_particles=4, verbose=False,
                     random_state=0).fit(data)
    fit = write_nwb(est, tmp_path / "fit.nwb", data=data)
    index = make_report(fit, tmp_path / "r", data=data)
    assert (tmp_path / "r" / "spectra.png").exists() and index.exists()
    assert np.isfinite(est.score(data))


def test_flow_field_of_a_rank3_network_is_drawn_through_a_fixed_point():
    """The plane shown passes through a fixed point, so the fixed points drawn solid are zeros
    of the field in the figure; the others are said to be off the plane."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from nwb_lrnn import LowRankRNN, find_fixed_points
    from nwb_lrnn.viz import plot_flow_field

    rng = np.random.default_rng(3)
    est = LowRankRNN.from_parameters(U=rng.normal(size=(30, 3)),
                                     V=2.0 * rng.normal(size=(3, 30)) / 30,
                                     h=0.1 + 0.3 * np.abs(rng.normal(size=30)), decay=0.8,
                                     nonlinearity="relu", random_state=0)  # z = 0 is fixed
    fp = find_fixed_points(est, verbose=False)
    assert len(fp.z) >= 1
    fig = plot_flow_field(est, fixed_points=fp)
    title = fig.axes[0].get_title()
    assert "through a" in title and f"of {len(fp.z)} fixed points lie on it" in title
    # the field vanishes at the fixed point the plane goes through
    import torch

    z0 = torch.as_tensor(np.asarray(fp.z)[[0]], dtype=est.model_.transition.U_t.dtype)
    drift = est.model_.transition.mean(z0).detach().numpy() - np.asarray(fp.z)[[0]]
    assert np.abs(drift).max() < 1e-5


def _fit_with_comparison(tmp_path, rank, rows, name, decoding=None):
    teacher = oscillator_teacher(4, 2)
    data = teacher.sample(2, 60, random_state=0)
    est = LowRankRNN(rank=rank, n_units=4, max_epochs=1, n_particles=4, verbose=False,
                     random_state=0).fit(data)
    metrics = {f"{m}.{k}": (v, "validation") for m, r in rows.items() for k, v in r.items()}
    metrics.update({f"decoding.{m}.{k}": (v, "cross_validation")
                    for m, r in (decoding or {}).items() for k, v in r.items()})
    return write_nwb(est, tmp_path / name, data=data, metrics=metrics)


def test_rank_comparison_shows_decoding_against_fa_of_the_same_rank(tmp_path, capsys):
    from nwb_lrnn.report import compare_fits, format_fit_comparison

    rows = {"lowrank_rnn": {"mse_1": 0.3}, "var1": {"mse_1": 0.2}}
    f1 = _fit_with_comparison(tmp_path, 1, rows, "r1.nwb", {
        "lowrank_rnn": {"vel": 0.10, "pos": 0.30}, "pca": {"vel": 0.12, "pos": 0.20},
        "fa": {"vel": 0.11, "pos": 0.30}})
    f2 = _fit_with_comparison(tmp_path, 2, rows, "r2.nwb", {
        "lowrank_rnn": {"vel": 0.25, "pos": 0.31}, "pca": {"vel": 0.30, "pos": 0.25},
        "fa": {"vel": 0.20, "pos": 0.35}})
    cmp = compare_fits([f2, f1])
    assert cmp["fits"][0]["decoding"]["fa"] == {"vel": 0.11, "pos": 0.30}
    # at least as well as FA: pos at rank 1 (0.30 >= 0.30), vel at rank 2; PCA: pos at rank 1,
    # vel never
    assert cmp["decoding_first_level"] == {"fa": {"vel": 2, "pos": 1},
                                           "pca": {"vel": None, "pos": 1}}
    text = format_fit_comparison(cmp)
    assert "rank 2: vel 0.250 / 0.300 / 0.200; pos 0.310 / 0.250 / 0.350" in text
    assert "smallest rank decoding at least as well as FA: vel rank 2, pos rank 1" in text
    assert "as well as PCA: vel no rank fitted, pos rank 1" in text


def test_several_fits_are_compared_by_rank_with_their_baselines(tmp_path, capsys):
    import pytest

    from nwb_lrnn.report import compare_fits

    var5 = {"loglik_per_bin": 1.0, "mse_1": 0.1, "dh": 0.10, "dh_sd": 0.01}
    f2 = _fit_with_comparison(tmp_path, 2, {"lowrank_rnn": {
        "loglik_per_bin": 0.5, "mse_1": 0.3, "dh": 0.05, "dh_sd": 0.02}, "var5": var5}, "r2.nwb")
    f1 = _fit_with_comparison(tmp_path, 1, {"lowrank_rnn": {
        "loglik_per_bin": 2.0, "mse_1": 0.2, "dh": 0.20, "dh_sd": 0.02}, "var5": var5}, "r1.nwb")
    cmp = compare_fits([f2, f1])
    assert [f["rank"] for f in cmp["fits"]] == [1, 2] and cmp["same_split"]
    # higher log-likelihood is better, lower D_H and error: rank 1 beats VAR(5) on the first,
    # rank 2 on D_H, none on the 1-step error
    assert cmp["first_better"]["var5"] == {"loglik_per_bin": 1, "mse_1": None, "dh": 2}
    assert cmp["fits"][1]["sd"]["dh"] == pytest.approx(0.02)
    out = tmp_path / "cmp"
    assert main(["report", str(f1), str(f2), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "smallest rank better than var5: loglik/bin rank 1, MSE 1-step no rank fitted, " \
           "D_H rank 2" in text
    assert (out / "ranks.png").stat().st_size > 5000
    assert "Smallest rank that beats each baseline" in (out / "index.html").read_text()
    # measured on another held-out part: said, not hidden
    f3 = _fit_with_comparison(tmp_path, 3, {"lowrank_rnn": {"dh": 0.01},
                                            "var5": {**var5, "dh": 0.3}}, "r3.nwb")
    assert not compare_fits([f1, f3])["same_split"]
    # a fit without a stored comparison is named
    bare = _fit_with_comparison(tmp_path, 1, {}, "bare.nwb")
    with pytest.raises(ValueError, match="bare.nwb: the file holds no held-out comparison"):
        compare_fits([f1, bare])
    assert main(["report", str(f1), str(bare)]) != 0
