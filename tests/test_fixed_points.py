"""Exact fixed points and cycles against brute force, Newton, jacrev and a net with a known set."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from nwb_lrnn import LowRankRNN
from nwb_lrnn.analysis.fixed_points import (
    FixedPoints,
    find_cycles,
    find_fixed_points,
    zaslavsky_bound,
)


def _net(N, R, nl="relu", seed=0, gain=1.5, decay=0.5, n_inputs=0):
    rng = np.random.default_rng(seed)
    return LowRankRNN.from_parameters(
        U=rng.normal(size=(N, R)), V=rng.normal(size=(R, N)) * gain, h=rng.normal(size=N),
        decay=decay, nonlinearity=nl,
        B=rng.normal(size=(N, n_inputs)) if n_inputs else None)


def _same(a: FixedPoints, b: FixedPoints) -> bool:
    return a.z.shape == b.z.shape and np.allclose(a.z, b.z, atol=1e-7)


# ------------------------------------------------------------------ exactness
@pytest.mark.parametrize("N, R", [(14, 2), (11, 3), (8, 4)])
def test_relu_regions_equal_brute_force(N, R):
    n_found = 0
    for seed in range(4):
        est = _net(N, R, "relu", seed)
        exact = find_fixed_points(est, method="regions", verbose=False)
        brute = find_fixed_points(est, method="brute", verbose=False)
        assert _same(exact, brute), (seed, exact.z, brute.z)
        # every region listed once: Zaslavsky's count for N hyperplanes in general position
        assert exact.stats["n_regions"] == zaslavsky_bound(N, R)
        n_found += len(exact)
    assert n_found > 0  # the comparison is not vacuous


@pytest.mark.parametrize("N, R", [(9, 2), (8, 3)])
def test_clipped_relu_regions_and_boxes_equal_brute_force(N, R):
    n_found = 0
    for seed in range(4):
        est = _net(N, R, "clipped_relu", seed)
        brute = find_fixed_points(est, method="brute", verbose=False)
        regions = find_fixed_points(est, method="regions", verbose=False)
        boxes = find_fixed_points(est, method="boxes", verbose=False)
        assert _same(regions, brute) and _same(boxes, brute), seed
        # two parallel planes per unit: Σ_i C(N, i) 2^i regions
        assert regions.stats["n_regions"] == sum(math.comb(N, i) * 2 ** i for i in range(R + 1))
        n_found += len(brute)
    assert n_found > 4


def test_boxes_equal_regions_on_a_larger_clipped_net():
    est = _net(60, 3, "clipped_relu", seed=1, gain=3.0 / math.sqrt(60), decay=0.9)
    a = find_fixed_points(est, method="regions", verbose=False)
    b = find_fixed_points(est, method="boxes", verbose=False)
    assert len(a) >= 3 and _same(a, b)
    # branch and bound solves far fewer systems than there are regions
    assert b.stats["n_solves"] < a.stats["n_regions"]


def test_chunking_does_not_change_the_result():
    est = _net(40, 3, "relu", seed=3, gain=0.5)
    a = find_fixed_points(est, verbose=False)
    b = find_fixed_points(est, chunk_size=1024, verbose=False)
    assert _same(a, b) and a.stats["n_regions"] == b.stats["n_regions"]


def test_newton_finds_nothing_outside_the_exact_set():
    for nl in ("relu", "clipped_relu"):
        est = _net(12, 2, nl, seed=2)
        exact = find_fixed_points(est, verbose=False)
        newton = find_fixed_points(est, method="newton", n_starts=3000, verbose=False)
        assert newton.approximate and not exact.approximate
        for z in newton.z:
            assert np.abs(exact.z - z).max(axis=1).min() < 1e-6
        # and many starts do find the stable ones
        for z in exact.z[np.array(exact.stability) == "stable"]:
            assert np.abs(newton.z - z).max(axis=1).min() < 1e-6


def test_jacobian_eigenvalues_match_jacrev():
    est = _net(12, 3, "relu", seed=2)
    fp = find_fixed_points(est, verbose=False)
    assert len(fp)
    tr = est.model_.transition.double()
    for z, ev in zip(fp.z, fp.eigenvalues, strict=True):
        J = torch.func.jacrev(lambda x: tr.mean(x[None])[0])(torch.tensor(z))
        ref = np.linalg.eigvals(J.detach().numpy())
        assert np.allclose(np.sort_complex(ref), np.sort_complex(ev), atol=1e-9)


def test_fixed_points_are_fixed_and_stable_ones_attract():
    est = _net(30, 2, "clipped_relu", seed=0, gain=3.0 / math.sqrt(30), decay=0.8)
    fp = find_fixed_points(est, verbose=False)
    tr = est.model_.transition.double()
    z = torch.tensor(fp.z)
    assert torch.allclose(tr.mean(z), z, atol=1e-9)
    stable = [i for i, s in enumerate(fp.stability) if s == "stable"]
    assert stable
    for i in stable:
        w = z[i:i + 1] + 1e-3
        for _ in range(500):
            w = tr.mean(w)
        assert torch.allclose(w[0], z[i], atol=1e-6)


# ------------------------------------------------------------------ a net with a known set
def _switches(R: int, n_dummy: int, seed: int = 0):
    """R independent bistable switches, rotated, plus units with no output.

    Along each axis z' = 0.5 z + φ(z − 0.5) with φ clipped at 1 has fixed points 0 (stable,
    λ = 0.5), 1 (unstable, λ = 1.5) and 2 (stable): 3^R fixed points in all.
    """
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.normal(size=(R, R)))[0]
    U = np.concatenate([Q.T, rng.normal(size=(n_dummy, R))])  # unit r reads (Q e_r)ᵀ z
    V = np.concatenate([Q, np.zeros((R, n_dummy))], 1)
    h = np.concatenate([np.full(R, 0.5), rng.normal(size=n_dummy)])
    est = LowRankRNN.from_parameters(U=U, V=V, h=h, decay=0.5, nonlinearity="clipped_relu")
    coords = np.array(list(itertools.product([0.0, 1.0, 2.0], repeat=R)))
    return est, coords @ Q.T, coords


@pytest.mark.parametrize("R, method", [(2, "regions"), (2, "boxes"), (3, "regions"),
                                       (3, "boxes")])
def test_known_set_of_fixed_points(R, method):
    est, expected, coords = _switches(R, n_dummy=10)
    fp = find_fixed_points(est, method=method, verbose=False)
    assert len(fp) == 3 ** R
    order = np.lexsort(expected.T[::-1])
    assert np.allclose(fp.z, expected[order], atol=1e-6)  # parameters are float32
    n_unstable_axes = (coords[order] == 1.0).sum(1)
    want = ["stable" if k == 0 else "unstable" if k == R else "saddle" for k in n_unstable_axes]
    assert fp.stability == want
    assert set(fp.kind) == {"node"}
    # eigenvalues are 0.5 and 1.5 only
    assert np.allclose(np.sort(np.abs(fp.eigenvalues), 1),
                       np.sort(np.where(coords[order] == 1.0, 1.5, 0.5), 1))


def test_constant_input_shifts_the_threshold():
    est = _net(10, 2, "relu", seed=4, n_inputs=2)
    u = np.array([0.3, -1.2])
    p = est.parameters_
    shifted = LowRankRNN.from_parameters(U=p["U"], V=p["V"], h=p["h"] - p["B"] @ u,
                                         decay=p["decay"], nonlinearity="relu")
    a = find_fixed_points(est, inputs=u, verbose=False)
    b = find_fixed_points(shifted, verbose=False)
    assert _same(a, b) and np.allclose(a.inputs, u)
    with pytest.raises(ValueError, match="length 2"):
        find_fixed_points(est, inputs=[1.0], verbose=False)


def test_tanh_is_approximate():
    est = _net(20, 2, "tanh", seed=0, gain=0.3)
    fp = find_fixed_points(est, verbose=False)
    assert fp.approximate and fp.method == "newton" and len(fp) >= 1
    tr = est.model_.transition.double()
    z = torch.tensor(fp.z)
    assert torch.allclose(tr.mean(z), z, atol=1e-7)
    assert (fp.pattern == -1).all()
    with pytest.raises(ValueError, match="piecewise-linear"):
        find_fixed_points(est, method="regions", verbose=False)


def test_result_table_and_repr():
    est, _, _ = _switches(2, n_dummy=3)
    fp = find_fixed_points(est, verbose=False)
    df = fp.to_dataframe()
    assert list(df.columns[:2]) == ["z_0", "z_1"] and len(df) == 9
    assert "4 stable" in repr(fp) and "exact" in repr(fp)
    assert fp.unit_activity.shape == (9, 5) and fp.pattern.shape == (9, 5)
    assert fp.types[0].endswith("node")


def test_bad_input():
    with pytest.raises(ValueError, match="fitted"):
        find_fixed_points(LowRankRNN(rank=2, n_units=8))
    with pytest.raises(TypeError, match="LowRankRNN"):
        find_fixed_points(np.zeros(3))
    with pytest.raises(ValueError, match="method"):
        find_fixed_points(_net(5, 2), method="magic")
    with pytest.raises(ValueError, match="activation patterns"):
        find_fixed_points(_net(40, 2), method="brute")
    with pytest.raises(ValueError, match="bounded nonlinearity"):
        find_fixed_points(_net(10, 2, "relu"), method="boxes")
    with pytest.raises(ValueError, match="no input weights"):
        find_fixed_points(_net(5, 2), inputs=[1.0])


# ------------------------------------------------------------------ cycles
def _brute_cycles(est, period):
    """Every sequence of activation patterns (2^N)^period, composed and solved."""
    p = est.parameters_
    U, V, h, a = p["U"], p["V"], p["h"], p["decay"]
    N, R = U.shape
    F = lambda z: a * z + V @ np.maximum(U @ z - h, 0)  # noqa: E731
    pats = list(itertools.product([0.0, 1.0], repeat=N))
    maps = [(a * np.eye(R) + V @ np.diag(s) @ U, V @ (np.array(s) * -h)) for s in pats]
    out = []
    for seq in itertools.product(range(len(pats)), repeat=period):
        A, b = np.eye(R), np.zeros(R)
        for k in seq:
            A, b = maps[k][0] @ A, maps[k][0] @ b + maps[k][1]
        try:
            z = np.linalg.solve(np.eye(R) - A, b)
        except np.linalg.LinAlgError:
            continue
        w = z
        for _ in range(period):
            w = F(w)
        if np.abs(w - z).max() < 1e-8 * (1 + np.abs(z).max()) and \
                np.abs(F(z) - z).max() > 1e-6:
            if not any(np.abs(z - o).max() < 1e-7 for o in out):
                out.append(z)
    return np.array(out).reshape(-1, R)


def test_period_two_cycles_equal_brute_force():
    total = 0
    for seed in range(6):
        est = _net(5, 2, "relu", seed, gain=2.5, decay=0.3)
        cyc = find_cycles(est, period=2)
        ref = _brute_cycles(est, 2)
        pts = cyc.points.reshape(-1, 2)
        assert len(pts) == len(ref), seed
        for z in ref:
            assert np.abs(pts - z).max(axis=1).min() < 1e-7
        total += len(cyc)
        # an orbit really maps onto itself
        for orb in cyc.points:
            tr = est.model_.transition.double()
            nxt = tr.mean(torch.tensor(orb)).detach().numpy()
            assert np.allclose(nxt, np.roll(orb, -1, axis=0), atol=1e-8)
    assert total > 0


def test_cycles_refuse_too_large_problems():
    with pytest.raises(ValueError, match="max_candidates"):
        find_cycles(_net(200, 3, "relu"), period=3)
