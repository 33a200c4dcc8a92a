"""Every fixed point of a low-rank RNN's latent map, exactly, in polynomial time.

The deterministic part of the latent dynamics is

    F(z) = a ⊙ z + V φ(U z + c),     c = B u − h   (a constant input u, or none),

with U (N, R), V (R, N). For a piecewise-linear φ (ReLU: one breakpoint per unit, clipped ReLU:
two) each unit cuts the latent space R^R along the hyperplanes {z : u_iᵀ z + c_i = breakpoint}.
Inside every region of that hyperplane arrangement F is affine, so the region's only candidate
fixed point solves one R × R linear system

    (I − diag(a) − V diag(s) U) z = V (s ⊙ c + o)           (s, o: slope and offset of φ's pieces)

and is kept if it really is a fixed point of F (it lies in its own region).

Methods
-------
``"regions"`` (exact, the default for ReLU and for clipped ReLU up to a few million regions)
    Enumerates every region of the arrangement exactly once, in batches: each region that is
    bounded below in a generic direction d has a unique lowest vertex, and every vertex is the
    intersection of R hyperplanes, so looping over R-subsets of units (batched linear algebra,
    chunked so that memory stays bounded) lists those regions; the regions unbounded below are
    the regions of the same arrangement cut by a hyperplane dᵀz = T beyond every vertex, a
    problem of dimension R − 1 solved by the same routine. In general position that lists
    exactly Σ_{i≤R} C(M, i) regions for M hyperplanes (Zaslavsky's bound; fewer for clipped ReLU,
    whose two hyperplanes per unit are parallel: Σ_{i≤R} C(N, i) 2^i). To make the arrangement
    generic, the offsets used *for enumerating* are moved by a tiny random amount; each region of
    the true arrangement survives such a move with its activation pattern, and candidates are
    always solved and checked with the true parameters, so the move never adds or loses a fixed
    point. Cost O(N^R · N R²) for fixed R.
``"boxes"`` (exact, the default for clipped ReLU with more regions than ``max_regions``)
    Branch and bound: fixed points of a bounded φ lie in the box spanned by (I − diag(a))⁻¹ V φ;
    a box is pruned when an interval (Krawczyk-type) image shows no fixed point can lie in it,
    shrunk to that image otherwise, split until at most a few hyperplanes cross it, and then every
    region inside it is solved. The bounds are rigorous (inflated by the tolerance), so nothing
    is pruned that holds a fixed point. Cost follows the number of fixed points, not N^R.
``"brute"`` (exact, tiny networks only)
    Every activation pattern (2^N or 3^N of them): the reference the tests compare against.
``"newton"`` (approximate, any φ, the only choice for tanh)
    Newton's method on F(z) − z from many starts, deduplicated. Flagged ``approximate=True``.

Acceptance tolerance: a candidate z* is a fixed point when ‖F(z*) − z*‖_∞ ≤ tol · (1 + ‖z*‖_∞)
with the true φ (``tol=1e-8`` by default, float64 throughout).

Example
-------
>>> import numpy as np
>>> from nwb_lrnn import LowRankRNN
>>> from nwb_lrnn.analysis.fixed_points import find_fixed_points
>>> rng = np.random.default_rng(0)
>>> est = LowRankRNN.from_parameters(U=rng.normal(size=(30, 2)), V=rng.normal(size=(2, 30)) / 10,
...                                  h=rng.normal(size=30), decay=0.8, nonlinearity="relu")
>>> fp = find_fixed_points(est, verbose=False)
>>> fp.z.shape[1], fp.approximate
(2, False)
"""

from __future__ import annotations

import itertools
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._threads import threads_for
from .._validate import check_float, check_int, check_option

__all__ = ["Cycles", "FixedPoints", "find_cycles", "find_fixed_points", "zaslavsky_bound"]

logger = logging.getLogger(__name__)

METHODS = ("auto", "regions", "boxes", "brute", "newton")
_DT = torch.float64


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@dataclass
class FixedPoints:
    """All fixed points of a network's latent map (one row per fixed point).

    Attributes
    ----------
    z : ndarray, shape (n, R)
        Locations z* in latent coordinates.
    unit_activity : ndarray, shape (n, N)
        Pre-activations x* = U z* + c of every unit (c = B u − h).
    eigenvalues : ndarray of complex, shape (n, R)
        Eigenvalues of the Jacobian a ⊙ I + V diag(φ'(x*)) U, sorted by decreasing modulus.
    stability : list of str, length n
        'stable' (all |λ| < 1), 'unstable' (all |λ| > 1), 'saddle' (some of each) or 'marginal'
        (some |λ| within ``marginal_tol`` of 1).
    kind : list of str, length n
        'focus' when the Jacobian has complex eigenvalues, else 'node'.
    pattern : ndarray of int8, shape (n, N)
        Index of φ's linear piece each unit is on (ReLU: 0 off, 1 on; clipped ReLU: 0 off,
        1 linear, 2 saturated); −1 for smooth φ.
    approximate : bool
        True when found by Newton's method (not guaranteed complete).
    method : str
    inputs : ndarray or None, shape (n_inputs,)
        The constant input the fixed points are for.
    stats : dict
        Work done: ``n_solves`` (R × R systems solved), ``n_regions`` (regions listed),
        ``zaslavsky_bound``, ``n_singular`` (regions whose system was singular),
        ``seconds``, and method-specific counts.
    """

    z: np.ndarray
    unit_activity: np.ndarray
    eigenvalues: np.ndarray
    stability: list[str]
    kind: list[str]
    pattern: np.ndarray
    approximate: bool = False
    method: str = "regions"
    inputs: np.ndarray | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for s in self.stability:
            counts[s] = counts.get(s, 0) + 1
        what = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"
        tag = "approximate" if self.approximate else "exact"
        return f"<FixedPoints | {len(self)} found ({what}), {tag}, method={self.method!r}>"

    @property
    def types(self) -> list[str]:
        """'stable node', 'saddle focus', … (stability and kind together)."""
        return [f"{s} {k}" for s, k in zip(self.stability, self.kind, strict=True)]

    def to_dataframe(self):
        """One row per fixed point: z_0…z_{R−1}, stability, kind, max |λ| (a pandas DataFrame)."""
        import pandas as pd

        cols = {f"z_{r}": self.z[:, r] for r in range(self.z.shape[1])}
        cols["stability"] = self.stability
        cols["kind"] = self.kind
        cols["max_abs_eig"] = (np.abs(self.eigenvalues).max(axis=1) if len(self)
                               else np.zeros(0))
        cols["n_active"] = (self.pattern > 0).sum(axis=1) if len(self) else np.zeros(0, int)
        return pd.DataFrame(cols)


@dataclass
class Cycles:
    """Periodic orbits z_1 → z_2 → … → z_p → z_1 of the latent map (p = ``period``).

    Attributes
    ----------
    points : ndarray, shape (n, period, R)
        The orbit of each cycle, starting from its lexicographically smallest point.
    multipliers : ndarray of complex, shape (n, R)
        Eigenvalues of the Jacobian of F^p along the orbit (Floquet multipliers).
    stability : list of str
    period : int
    stats : dict
    """

    points: np.ndarray
    multipliers: np.ndarray
    stability: list[str]
    period: int
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def __repr__(self) -> str:
        return f"<Cycles | period {self.period}, {len(self)} found>"


# --------------------------------------------------------------------------------------------
# the network in float64
# --------------------------------------------------------------------------------------------
@dataclass
class _Net:
    U: torch.Tensor  # (N, R)
    V: torch.Tensor  # (R, N)
    a: torch.Tensor  # (R,)
    c: torch.Tensor  # (N,)
    phi: Any
    bps: torch.Tensor  # (nb,)
    slopes: torch.Tensor  # (nb + 1,)
    offsets: torch.Tensor  # (nb + 1,)
    K: torch.Tensor = None  # (N, R²): row k is vec(V[:, k] U[k, :])
    cV: torch.Tensor = None  # (N, R): c_k V[:, k]
    probe: torch.Tensor = None  # a random order of the units, for cheap early tests

    def __post_init__(self):
        N, R = self.U.shape
        self.K = torch.einsum("rk,kq->krq", self.V, self.U).reshape(N, R * R)
        self.cV = self.c[:, None] * self.V.T
        self.probe = torch.randperm(N, generator=torch.Generator().manual_seed(12345)).to(
            self.U.device)

    @property
    def N(self) -> int:
        return self.U.shape[0]

    @property
    def R(self) -> int:
        return self.U.shape[1]

    def pieces(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the linear piece of φ at pre-activation x (counts breakpoints below x)."""
        out = torch.zeros(x.shape, dtype=torch.long, device=x.device)
        for b in self.bps.tolist():
            out += x > b
        return out

    def slope_offset(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Slope and offset of φ's linear piece at x (offset None when every offset is 0).

        Overwrites ``x`` (it becomes the slopes): these arrays are the largest the search
        makes, and one pass over them is most of its time.
        """
        sl, of = self.slopes.tolist(), self.offsets.tolist()
        bps = self.bps.tolist()
        O = None
        if any(of):
            O = torch.full_like(x, of[0])
            for j, b in enumerate(bps):
                if of[j + 1] != of[j]:
                    O.add_(x > b, alpha=of[j + 1] - of[j])
        if sl == [0.0, 1.0]:  # ReLU
            return x.gt_(bps[0]), O
        if sl == [0.0, 1.0, 0.0]:  # clipped ReLU
            top = x > bps[1]
            return x.gt_(bps[0]).masked_fill_(top, 0.0), O
        S = torch.full_like(x, sl[0])
        for j, b in enumerate(bps):
            if sl[j + 1] != sl[j]:
                S.add_(x > b, alpha=sl[j + 1] - sl[j])
        return S, O

    def F(self, z: torch.Tensor) -> torch.Tensor:
        x = z @ self.U.T + self.c
        return self.a * z + self.phi(x) @ self.V.T

    def jacobian(self, z: torch.Tensor) -> torch.Tensor:
        x = z @ self.U.T + self.c
        dphi = self.phi.derivative(x)  # (n, N)
        J = torch.einsum("rk,nk,kq->nrq", self.V, dphi, self.U)
        return J + torch.diag_embed(self.a.expand(z.shape[0], -1))

    def residual_ok(self, z: torch.Tensor, tol: float) -> torch.Tensor:
        r = (self.F(z) - z).abs().amax(-1)
        return torch.isfinite(r) & (r <= tol * (1.0 + z.abs().amax(-1)))


def _as_net(model: Any, inputs: Any, device: torch.device | None) -> _Net:
    from ..model.rnn import LowRankRNNModel
    from ..model.transition import LowRankTransition

    tr = model
    if hasattr(model, "model_"):  # a fitted LowRankRNN
        tr = model.model_
    elif hasattr(model, "_check_fitted") and not hasattr(model, "model_"):
        raise ValueError("find_fixed_points needs a fitted LowRankRNN (call fit() or "
                         "LowRankRNN.from_parameters first).")
    if isinstance(tr, LowRankRNNModel):
        tr = tr.transition
    if not isinstance(tr, LowRankTransition):
        raise TypeError("model must be a fitted LowRankRNN, a LowRankRNNModel or a "
                        f"LowRankTransition; got {type(model).__name__}.")
    dev = device or tr.U_t.device
    with torch.no_grad():
        U = tr.U.detach().to(dev, _DT).clone()
        V = tr.V.detach().to(dev, _DT).clone()
        a = tr.decay.detach().to(dev, _DT).expand(tr.rank).clone()
        c = -tr.h.detach().to(dev, _DT).clone()
        if inputs is not None:
            if tr.B is None:
                raise ValueError("inputs were given but the model has no input weights B "
                                 "(it was fitted without inputs).")
            u = torch.as_tensor(np.asarray(inputs, dtype=float), dtype=_DT, device=dev)
            if u.ndim != 1 or u.shape[0] != tr.n_inputs:
                raise ValueError(f"inputs must be a constant vector of length {tr.n_inputs} "
                                 f"(the model's n_inputs); got shape {tuple(u.shape)}.")
            c = c + tr.B.detach().to(dev, _DT) @ u
    phi = tr.phi
    if phi.piecewise_linear:
        bps = torch.tensor(phi.breakpoints, dtype=_DT, device=dev)
        sl = torch.tensor([p[0] for p in phi.pieces], dtype=_DT, device=dev)
        of = torch.tensor([p[1] for p in phi.pieces], dtype=_DT, device=dev)
    else:
        bps = sl = of = torch.zeros(0, dtype=_DT, device=dev)
    return _Net(U, V, a, c, phi, bps, sl, of)


def zaslavsky_bound(n_hyperplanes: int, rank: int) -> int:
    """Σ_{i≤R} C(M, i): the most regions M hyperplanes can cut R^R into."""
    return int(sum(math.comb(n_hyperplanes, i) for i in range(rank + 1)))


def _n_regions_exact(net: _Net) -> int:
    """Regions listed by the enumeration in general position (Zaslavsky's count)."""
    nb, N, R = len(net.bps), net.N, net.R
    return int(sum(math.comb(N, i) * nb ** i for i in range(R + 1)))


# --------------------------------------------------------------------------------------------
# region enumeration (lowest vertex in a generic direction, recursion for the rest)
# --------------------------------------------------------------------------------------------
def _unit_combos(N: int, k: int, first: int, device) -> torch.Tensor:
    """All k-subsets of range(N) whose smallest element is ``first``, shape (C, k)."""
    if k == 1:
        return torch.tensor([[first]], device=device)
    rest = torch.arange(first + 1, N, device=device)
    if rest.numel() < k - 1:
        return torch.zeros((0, k), dtype=torch.long, device=device)
    if k - 1 == 1:
        tail = rest[:, None]
    else:
        tail = torch.combinations(rest, r=k - 1)
    head = torch.full((tail.shape[0], 1), first, dtype=torch.long, device=device)
    return torch.cat([head, tail], 1)


def _iter_regions(net: _Net, c_enum: torch.Tensor, z0: torch.Tensor, Q: torch.Tensor,
                  gen: torch.Generator, chunk: int, stats: dict, pbar=None):
    """Yield activation patterns (B, N) of the regions of the arrangement met by z0 + span(Q).

    Every region is yielded once (general position, which the perturbed offsets ``c_enum``
    provide).
    """
    N, Rp, dev = net.N, Q.shape[1], net.U.device
    nb = len(net.bps)
    if Rp == 0:
        yield net.slope_offset((net.U @ z0 + c_enum)[None])
        return
    Un = net.U @ Q  # (N, R') unit normals in the subspace's coordinates w
    base = net.U @ z0 + c_enum  # x = Un w + base
    d = torch.randn(Rp, generator=gen, dtype=_DT).to(dev)
    d = d / d.norm()
    dmin = math.inf
    scale = Un.norm(dim=1)
    bp_choices = torch.tensor(list(itertools.product(range(nb), repeat=Rp)), device=dev)
    per = max(1, chunk // (len(bp_choices) * max(N, 1)))
    pending: list[torch.Tensor] = []
    n_pending = 0
    for first in range(N - Rp + 1):
        units_all = _unit_combos(N, Rp, first, dev)
        if units_all.numel():
            pending.append(units_all)
            n_pending += units_all.shape[0]
        if pbar is not None and Rp == Q.shape[0]:
            pbar.update(1)
        if n_pending < per and first < N - Rp:
            continue
        if not pending:
            continue
        units_all = torch.cat(pending)
        pending, n_pending = [], 0
        for s in range(0, units_all.shape[0], per):
            units = units_all[s:s + per]
            B0 = units.shape[0]
            units = units.repeat_interleave(len(bp_choices), 0)  # (B, R')
            bpi = bp_choices.repeat(B0, 1)  # (B, R')
            A = Un[units]  # (B, R', R')
            rhs = net.bps[bpi] - base[units]
            # parallel or nearly parallel normals (e.g. the two planes of one clipped unit)
            det = torch.linalg.det(A).abs()
            good = det > 1e-12 * scale[units].prod(-1)
            if not bool(good.all()):
                units, bpi, A, rhs = units[good], bpi[good], A[good], rhs[good]
            if units.shape[0] == 0:
                continue
            w = torch.linalg.solve(A, rhs)  # vertices (B, R')
            g = torch.linalg.solve(A.transpose(1, 2), d.expand(A.shape[0], Rp))
            stats["n_vertex_solves"] = stats.get("n_vertex_solves", 0) + 2 * A.shape[0]
            x = torch.addmm(base, w, Un.T)
            S, O = net.slope_offset(x)  # x is overwritten
            side = bpi + (g > 0).long()  # piece of each defining unit in the region above
            S.scatter_(1, units, net.slopes[side])
            if O is not None:
                O.scatter_(1, units, net.offsets[side])
            dmin = min(dmin, float((w @ d).min()))
            yield S, O
    # the regions unbounded below in d: cut by the hyperplane dᵀw = T beyond every vertex
    if math.isfinite(dmin):
        T = dmin - 1.0 - 0.1 * abs(dmin)
    else:  # no vertex at all: every region contains a line and meets any generic slice
        T = 0.0
    comp = torch.linalg.svd(torch.eye(Rp, dtype=_DT, device=dev) - torch.outer(d, d))[0][:, :Rp - 1]
    yield from _iter_regions(net, c_enum, z0 + Q @ (T * d), Q @ comp, gen, chunk, stats)


def _solve_patterns(net: _Net, S: torch.Tensor, O: torch.Tensor | None, tol: float,
                    n_probe: int = 24) -> tuple[torch.Tensor, int]:
    """Fixed points among the candidates of the regions with slopes ``S`` and offsets ``O``.

    S, O : (B, N) slope and offset of φ's piece for every unit in each region.
    Returns the accepted fixed points (n, R) and the number of singular systems.
    """
    R, N = net.R, net.N
    M = torch.diag(1.0 - net.a) - (S @ net.K).reshape(-1, R, R)
    rhs = S @ net.cV
    if O is not None:
        rhs = rhs + O @ net.V.T
    z, info = torch.linalg.solve_ex(M, rhs)
    # singular systems, and ill-conditioned ones whose solution blows up, are not candidates
    ok = (info == 0) & torch.isfinite(z).all(-1)
    n_singular = int((info != 0).sum())
    # cheap necessary test on a few units: is z on its region's piece for them?
    if N > 2 * n_probe:
        probe = net.probe[:n_probe]
        x = z @ net.U[probe].T + net.c[probe]
        Sp = S[:, probe]
        aff = Sp * x + (O[:, probe] if O is not None else 0.0)
        ok &= ((net.phi(x) - aff).abs() <= 1e3 * tol * (1.0 + x.abs())).all(-1)
    z = z[ok]
    return z[net.residual_ok(z, tol)], n_singular


def _regions_method(net: _Net, *, tol: float, chunk: int, gen: torch.Generator, verbose: bool,
                    stats: dict) -> tuple[torch.Tensor, int]:
    from tqdm.auto import tqdm

    R, N, dev = net.R, net.N, net.U.device
    span = float((net.c.abs().max() if N else torch.tensor(1.0)).item()) + 1.0
    c_enum = net.c + 1e-7 * span * torch.rand(N, generator=gen, dtype=_DT).to(dev)
    found, n_regions, n_singular = [], 0, 0
    with tqdm(total=max(N - R + 1, 0), desc="fixed points (regions)", unit="unit",
              disable=not verbose, leave=False) as pbar:
        for S, O in _iter_regions(net, c_enum, torch.zeros(R, dtype=_DT, device=dev),
                                torch.eye(R, dtype=_DT, device=dev), gen, chunk, stats, pbar):
            n_regions += S.shape[0]
            z, ns = _solve_patterns(net, S, O, tol)
            n_singular += ns
            if z.shape[0]:
                found.append(z)
    stats.update(n_regions=n_regions, n_solves=n_regions, n_singular=n_singular)
    return (torch.cat(found) if found else torch.zeros((0, R), dtype=_DT, device=dev)), n_regions


# --------------------------------------------------------------------------------------------
# branch and bound over boxes (bounded φ)
# --------------------------------------------------------------------------------------------
def _boxes_method(net: _Net, *, tol: float, chunk: int, verbose: bool, stats: dict,
                  bound: Any = None, leaf_solves: int = 512,
                  max_boxes: int = 50_000_000) -> torch.Tensor:
    from tqdm.auto import tqdm

    R, N, dev = net.R, net.N, net.U.device
    nb = len(net.bps)
    lo0, hi0 = _initial_box(net, bound)
    K = torch.einsum("rk,kq->krq", net.V, net.U).reshape(N, R * R)
    absU = net.U.abs()
    eye_a = torch.diag(1.0 - net.a)
    phi = net.phi
    radix = nb + 1
    max_cross = max(1, math.floor(math.log(leaf_solves) / math.log(radix)))
    stack = [(lo0[None], hi0[None])]
    found = []
    n_boxes = n_pruned = n_leaves = n_solves = 0
    per = max(1, chunk // (N * (R + 2)))
    with tqdm(desc="fixed points (boxes)", unit="box", disable=not verbose, leave=False) as bar:
        while stack:
            lo, hi = stack.pop()
            if lo.shape[0] > per:
                stack.append((lo[per:], hi[per:]))
                lo, hi = lo[:per], hi[:per]
            n_boxes += lo.shape[0]
            bar.update(lo.shape[0])
            if n_boxes > max_boxes:
                raise RuntimeError(f"fixed-point search examined more than {max_boxes} boxes; "
                                   "the network may have a continuum of fixed points (a line or "
                                   "ring attractor). Try method='newton'.")
            q, r = (lo + hi) / 2, (hi - lo) / 2
            xc = q @ net.U.T + net.c
            xr = r @ absU.T
            xl, xh = xc - xr - tol, xc + xr + tol
            pl, ph = net.pieces(xl), net.pieces(xh)
            cross = pl != ph
            S = torch.where(cross, 0.0, net.slopes[pl])
            O = torch.where(cross, 0.0, net.offsets[pl])
            M = eye_a - (S @ K).reshape(-1, R, R)
            m = (S * net.c + O) @ net.V.T
            # φ over each crossing unit's range, as midpoint ± radius (φ is nondecreasing)
            fl, fh = phi(xl), phi(xh)
            fmid = torch.where(cross, (fl + fh) / 2, 0.0)
            frad = torch.where(cross, (fh - fl) / 2, 0.0)
            rhs = torch.cat([(m + fmid @ net.V.T)[..., None],
                             net.V.expand(lo.shape[0], R, N)], -1)
            sol, info = torch.linalg.solve_ex(M, rhs)
            n_solves += lo.shape[0]
            okM = (info == 0) & torch.isfinite(sol).all(-1).all(-1)
            center = sol[..., 0]
            rad = (sol[..., 1:].abs() * frad[:, None, :]).sum(-1)
            rad = rad + tol * (1.0 + center.abs()) + 1e-9 * (hi - lo)
            nlo = torch.where(okM[:, None], torch.maximum(lo, center - rad), lo)
            nhi = torch.where(okM[:, None], torch.minimum(hi, center + rad), hi)
            empty = (nlo > nhi).any(-1)
            n_pruned += int(empty.sum())
            keep = ~empty
            lo, hi, cross, pl, ph = nlo[keep], nhi[keep], cross[keep], pl[keep], ph[keep]
            if lo.shape[0] == 0:
                continue
            ncross = cross.sum(-1)
            leaf = ncross <= max_cross
            tiny = ((hi - lo) <= 1e-12 * (1.0 + torch.maximum(lo.abs(), hi.abs()))).all(-1)
            leaf = leaf | tiny
            if bool(leaf.any()):
                z, ns = _leaf_solve(net, lo[leaf], hi[leaf], cross[leaf], pl[leaf], ph[leaf],
                                    tol, radix, K)
                n_leaves += int(leaf.sum())
                n_solves += ns
                if z.shape[0]:
                    found.append(z)
            rest = ~leaf
            if bool(rest.any()):
                lo, hi = lo[rest], hi[rest]
                w = hi - lo
                dim = w.argmax(-1)
                mid = (lo.gather(1, dim[:, None]) + hi.gather(1, dim[:, None])) / 2
                hi1 = hi.clone()
                hi1.scatter_(1, dim[:, None], mid)
                lo2 = lo.clone()
                lo2.scatter_(1, dim[:, None], mid)
                stack.append((torch.cat([lo, lo2]), torch.cat([hi1, hi])))
    stats.update(n_boxes=n_boxes, n_pruned=n_pruned, n_leaves=n_leaves, n_solves=n_solves,
                 box_lo=lo0.tolist(), box_hi=hi0.tolist())
    return torch.cat(found) if found else torch.zeros((0, R), dtype=_DT, device=dev)


def _initial_box(net: _Net, bound: Any) -> tuple[torch.Tensor, torch.Tensor]:
    R, dev = net.R, net.U.device
    if bound is not None:
        b = torch.as_tensor(np.asarray(bound, dtype=float), dtype=_DT, device=dev)
        if b.ndim == 0:
            return -b.abs().expand(R).clone(), b.abs().expand(R).clone()
        if b.shape != (R, 2):
            raise ValueError(f"bound must be a number or an array shaped ({R}, 2) (low, high "
                             f"per latent dimension); got shape {tuple(b.shape)}.")
        return b[:, 0].clone(), b[:, 1].clone()
    if not len(net.bps) or net.slopes[0] != 0 or net.slopes[-1] != 0:
        raise ValueError("method='boxes' needs a bounded nonlinearity (clipped ReLU) or an "
                         "explicit bound=; use method='regions' for ReLU.")
    # z* = (I − diag(a))⁻¹ V φ(x*), φ between its lowest and highest values
    lo_phi, hi_phi = float(net.offsets[0]), float(net.offsets[-1])
    W = net.V / (1.0 - net.a)[:, None]
    lo = (W.clamp(min=0) * lo_phi + W.clamp(max=0) * hi_phi).sum(1)
    hi = (W.clamp(min=0) * hi_phi + W.clamp(max=0) * lo_phi).sum(1)
    pad = 1e-6 * (1.0 + torch.maximum(lo.abs(), hi.abs()))
    return lo - pad, hi + pad


def _leaf_solve(net: _Net, lo, hi, cross, pl, ph, tol, radix, K) -> tuple[torch.Tensor, int]:
    """Solve every activation pattern of the crossing units inside each leaf box."""
    R, N = net.R, net.N
    out, n_solves = [], 0
    ncross = cross.sum(-1)
    for k in torch.unique(ncross).tolist():
        sel = ncross == k
        L = int(sel.sum())
        cr, p_lo, p_hi = cross[sel], pl[sel], ph[sel]
        if k > 12:
            warnings.warn(f"{L} tiny boxes are still crossed by {k} hyperplanes (a point where "
                          "many units switch at once); solving 3^k patterns there.",
                          RuntimeWarning, stacklevel=4)
        # indices of the crossing units, (L, k)
        idx = torch.sort(cr.long(), dim=1, descending=True, stable=True)[1][:, :k]
        digits = torch.tensor(list(itertools.product(range(radix), repeat=k)),
                              dtype=torch.long, device=lo.device).reshape(radix ** k, k)
        C = digits.shape[0]
        base_p = torch.where(cr, 0, p_lo)  # non-crossing units keep their piece
        plo_c, phi_c = p_lo.gather(1, idx), p_hi.gather(1, idx)  # (L, k)
        piece_c = plo_c[:, None, :] + digits[None]  # (L, C, k)
        valid = (piece_c <= phi_c[:, None, :]).all(-1)  # (L, C)
        Lb = min(L, max(1, 2_000_000 // max(C * N, 1)))
        for s in range(0, L, Lb):
            e = min(L, s + Lb)
            pc = base_p[s:e, None, :].expand(-1, C, -1).clone()
            pc.scatter_(2, idx[s:e, None, :].expand(-1, C, -1), piece_c[s:e])
            v = valid[s:e]
            pcv = pc[v]
            z, _ = _solve_patterns(net, net.slopes[pcv], net.offsets[pcv], tol)
            n_solves += pcv.shape[0]
            if z.shape[0]:
                out.append(z)
    del K
    return (torch.cat(out) if out else torch.zeros((0, R), dtype=_DT, device=lo.device)), n_solves


# --------------------------------------------------------------------------------------------
# brute force and Newton
# --------------------------------------------------------------------------------------------
def _brute_method(net: _Net, *, tol: float, stats: dict, max_patterns: int = 5_000_000):
    N, R = net.N, net.R
    radix = len(net.bps) + 1
    total = radix ** N
    if total > max_patterns:
        raise ValueError(f"method='brute' would try {radix}^{N} = {total} activation patterns "
                         f"(more than {max_patterns}); use method='regions'.")
    found, n = [], 0
    per = 200_000
    for s in range(0, total, per):
        codes = torch.arange(s, min(total, s + per), device=net.U.device)
        pc = torch.stack([(codes // radix ** i) % radix for i in range(N)], 1)
        z, _ = _solve_patterns(net, net.slopes[pc], net.offsets[pc], tol)
        n += pc.shape[0]
        found.append(z)
    stats.update(n_solves=n, n_regions=n)
    return torch.cat(found) if found else torch.zeros((0, R), dtype=_DT)


def _newton_method(net: _Net, *, tol: float, n_starts: int, starts: Any, gen: torch.Generator,
                   stats: dict, max_iter: int = 100):
    R, dev = net.R, net.U.device
    lo_phi, hi_phi = _phi_range(net)
    W = net.V / (1.0 - net.a)[:, None]
    if math.isfinite(lo_phi) and math.isfinite(hi_phi):
        lo = (W.clamp(min=0) * lo_phi + W.clamp(max=0) * hi_phi).sum(1)
        hi = (W.clamp(min=0) * hi_phi + W.clamp(max=0) * lo_phi).sum(1)
    else:
        s = 3.0 * (1.0 + float(net.c.abs().max())) * float(W.abs().sum(1).max())
        lo, hi = -torch.full((R,), s, dtype=_DT), torch.full((R,), s, dtype=_DT)
    z = lo + (hi - lo) * torch.rand(n_starts, R, generator=gen, dtype=_DT)
    z = z.to(dev)
    if starts is not None:
        extra = torch.as_tensor(np.asarray(starts, dtype=float).reshape(-1, R), dtype=_DT,
                                device=dev)
        z = torch.cat([z, extra])
    eye = torch.eye(R, dtype=_DT, device=dev)
    for _ in range(max_iter):
        H = net.F(z) - z
        J = net.jacobian(z) - eye
        step, info = torch.linalg.solve_ex(J, H)
        step = torch.where((info == 0)[:, None], step, torch.zeros_like(step))
        z = z - step.clamp(-1e6, 1e6)
        if float(step.abs().max()) < 1e-13:
            break
    stats.update(n_starts=int(z.shape[0]), n_solves=int(z.shape[0]) * max_iter)
    z = z[torch.isfinite(z).all(-1)]
    return z[net.residual_ok(z, tol)]


def _phi_range(net: _Net) -> tuple[float, float]:
    x = torch.tensor([-1e9, 1e9], dtype=_DT)
    y = net.phi(x)
    lo, hi = float(y[0]), float(y[1])
    return (lo if abs(lo) < 1e8 else -math.inf), (hi if abs(hi) < 1e8 else math.inf)


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------
def _dedupe(z: torch.Tensor, tol: float) -> torch.Tensor:
    if z.shape[0] <= 1:
        return z
    z = z[torch.argsort(z[:, 0])]
    keep: list[torch.Tensor] = []
    for row in z:
        if not any(float((row - k).abs().max()) <= 1e3 * tol * (1.0 + float(row.abs().max()))
                   for k in keep):
            keep.append(row)
    zz = torch.stack(keep)
    order = np.lexsort(zz.cpu().numpy().T[::-1])
    return zz[torch.as_tensor(order.copy(), device=zz.device)]


def _classify(net: _Net, z: torch.Tensor, marginal_tol: float):
    J = net.jacobian(z).cpu()
    ev = torch.linalg.eigvals(J).numpy() if len(z) else np.zeros((0, net.R), complex)
    order = np.argsort(-np.abs(ev), axis=1, kind="stable")
    ev = np.take_along_axis(ev, order, axis=1)
    stab, kind = [], []
    for e in ev:
        mod = np.abs(e)
        if np.any(np.abs(mod - 1.0) <= marginal_tol):
            stab.append("marginal")
        elif np.all(mod < 1.0):
            stab.append("stable")
        elif np.all(mod > 1.0):
            stab.append("unstable")
        else:
            stab.append("saddle")
        kind.append("focus" if np.any(np.abs(e.imag) > 1e-6 * (1.0 + np.abs(e))) else "node")
    return ev, stab, kind


def find_fixed_points(model: Any, *, inputs: Any = None, method: str = "auto",
                      tol: float = 1e-8, marginal_tol: float = 1e-6, max_regions: int = 5_000_000,
                      chunk_size: int = 2 ** 20, bound: Any = None, n_starts: int = 1000,
                      starts: Any = None, random_state: int = 0, device: str | None = None,
                      verbose: bool | None = None) -> FixedPoints:
    """Find every fixed point of the deterministic latent map and classify its stability.

    Parameters
    ----------
    model : LowRankRNN | LowRankRNNModel | LowRankTransition
        A fitted network (``LowRankRNN.from_parameters`` builds one from arrays).
    inputs : array_like, shape (n_inputs,), optional
        A constant input u; the fixed points are those of F(z) = a z + V φ(U z + B u − h).
    method : {'auto', 'regions', 'boxes', 'brute', 'newton'}
        See the module docstring. 'auto' takes 'regions' for ReLU, 'regions' for clipped ReLU
        when the arrangement has at most ``max_regions`` regions and (regions × N) is at most
        50 × ``max_regions``, 'boxes' beyond, and
        'newton' (approximate) for smooth φ such as tanh.
    tol : float
        Acceptance: ‖F(z*) − z*‖_∞ ≤ tol · (1 + ‖z*‖_∞). Points closer than about 1000·tol are
        merged.
    marginal_tol : float
        |λ| within this of 1 makes a fixed point 'marginal'.
    max_regions : int
        Above this many regions 'auto' switches from 'regions' to 'boxes' (bounded φ only).
    chunk_size : int
        Number of float64 values handled at once (bounds memory: about 40 bytes each).
    bound : float or array_like, shape (R, 2), optional
        Restrict 'boxes' to this box (needed for 'boxes' with ReLU).
    n_starts, starts : int, array_like (n, R)
        Newton: number of random starts in the box that holds every fixed point, and extra
        starts (for example posterior latents).
    random_state : int
        Seed for the generic direction and the tiny offset move of 'regions' and for Newton.
    device : str, optional
        Where to compute (default: the model's device).
    verbose : bool, optional
        Progress bar (default: when logging at INFO or on a terminal).

    Returns
    -------
    FixedPoints
        ``z`` (n, R), ``unit_activity`` (n, N), ``eigenvalues`` (n, R), ``stability``, ``kind``,
        ``pattern`` (n, N), ``approximate``, ``stats``.

    Raises
    ------
    ValueError
        Unknown method; 'brute' on a large net; 'boxes' without a bound for ReLU; inputs of
        the wrong shape.
    TypeError
        ``model`` is not a network.

    Examples
    --------
    >>> fp = find_fixed_points(est)                                   # doctest: +SKIP
    >>> fp.types                                                       # doctest: +SKIP
    ['stable node', 'saddle node', 'stable node']
    """
    method = check_option("method", method, METHODS)
    tol = check_float("tol", tol, min_value=0.0, strict_min=True)
    max_regions = check_int("max_regions", max_regions, min_value=1)
    chunk = check_int("chunk_size", chunk_size, min_value=1024)
    if verbose is None:
        import sys

        verbose = logger.isEnabledFor(logging.INFO) or sys.stderr.isatty()
    t0 = time.perf_counter()
    net = _as_net(model, inputs, torch.device(device) if device else None)
    gen = torch.Generator().manual_seed(int(random_state))
    pl = net.phi.piecewise_linear
    if method == "auto":
        if not pl:
            method = "newton"
        elif _phi_range(net)[1] == math.inf or (
                _n_regions_exact(net) <= max_regions
                and _n_regions_exact(net) * net.N <= 50 * max_regions):
            # ReLU always; clipped ReLU while listing every region is cheap (it costs about
            # N·R² per region, branch and bound grows with the number of fixed points)
            method = "regions"
        else:
            method = "boxes"
    if method in ("regions", "boxes", "brute") and not pl:
        raise ValueError(f"method={method!r} needs a piecewise-linear nonlinearity (ReLU or "
                         f"clipped ReLU); {net.phi.name} needs method='newton'.")
    nb = len(net.bps)
    stats: dict[str, Any] = {"zaslavsky_bound": zaslavsky_bound(net.N * nb, net.R) if pl
                             else None}
    # work per batched operation grows with the regions listed (threads: nwb_lrnn._threads)
    work = _n_regions_exact(net) * net.R if pl else 0
    with threads_for(work):
        z, ev, stab, kind, x, pattern = _search(net, method, tol, chunk, gen, verbose, stats,
                                                bound, n_starts, starts, marginal_tol, pl)
    stats["seconds"] = time.perf_counter() - t0
    return FixedPoints(z=z.cpu().numpy(), unit_activity=x.cpu().numpy(), eigenvalues=ev,
                       stability=stab, kind=kind, pattern=pattern.cpu().numpy(),
                       approximate=method == "newton", method=method,
                       inputs=None if inputs is None else np.asarray(inputs, dtype=float),
                       stats=stats)


def _search(net, method, tol, chunk, gen, verbose, stats, bound, n_starts, starts,
            marginal_tol, pl):
    if method == "regions":
        z, _ = _regions_method(net, tol=tol, chunk=chunk, gen=gen, verbose=verbose,
                               stats=stats)
    elif method == "boxes":
        z = _boxes_method(net, tol=tol, chunk=chunk, verbose=verbose, stats=stats, bound=bound)
    elif method == "brute":
        z = _brute_method(net, tol=tol, stats=stats)
    else:
        z = _newton_method(net, tol=tol, n_starts=check_int("n_starts", n_starts, min_value=1),
                           starts=starts, gen=gen, stats=stats)
    if stats.get("n_singular"):
        logger.warning("%d regions have a singular fixed-point system (a line or plane of "
                       "fixed points can exist there); they are not listed.", stats["n_singular"])
    z = _dedupe(z, tol)
    ev, stab, kind = _classify(net, z, marginal_tol)
    x = z @ net.U.T + net.c
    pattern = (net.pieces(x).to(torch.int8) if pl
               else torch.full(x.shape, -1, dtype=torch.int8))
    return z, ev, stab, kind, x, pattern


def find_cycles(model: Any, *, period: int = 2, inputs: Any = None, tol: float = 1e-8,
                max_candidates: int = 50_000_000, random_state: int = 0,
                verbose: bool | None = None) -> Cycles:
    """Periodic orbits of period 2 or 3 of a piecewise-linear network, exactly.

    Lists every region of the arrangement (as :func:`find_fixed_points` does), composes the
    regions' affine maps along every sequence of ``period`` regions, solves the composed map's
    fixed point and keeps it when the true map really returns there after ``period`` steps (and
    not after fewer). The work grows as (number of regions)^period, so this is for small ranks
    and moderate N: about N ≤ 60 at R = 2 for period 2, N ≤ 15 at R = 2 or N ≤ 8 at R = 3 for
    period 3 (``max_candidates`` stops larger problems with an error before any work).

    Parameters
    ----------
    model : LowRankRNN | LowRankRNNModel | LowRankTransition
    period : {2, 3}
    inputs : array_like, shape (n_inputs,), optional
    tol : float
        Acceptance ‖F^p(z) − z‖_∞ ≤ tol (1 + ‖z‖_∞).
    max_candidates : int

    Returns
    -------
    Cycles
        ``points`` (n, period, R), ``multipliers`` (n, R), ``stability``.
    """
    period = check_int("period", period, min_value=2, max_value=3)
    net = _as_net(model, inputs, None)
    if not net.phi.piecewise_linear:
        raise ValueError("find_cycles needs a piecewise-linear nonlinearity (ReLU or clipped "
                         "ReLU).")
    n_reg = _n_regions_exact(net)
    if n_reg ** period > max_candidates:
        raise ValueError(f"period-{period} search over {n_reg} regions needs {n_reg}^{period} "
                         f"= {n_reg ** period} candidate sequences (> max_candidates="
                         f"{max_candidates}); use a smaller network or period.")
    gen = torch.Generator().manual_seed(int(random_state))
    R, N = net.R, net.N
    span = float(net.c.abs().max()) + 1.0
    c_enum = net.c + 1e-7 * span * torch.rand(N, generator=gen, dtype=_DT)
    stats: dict[str, Any] = {}
    SO = list(_iter_regions(net, c_enum, torch.zeros(R, dtype=_DT), torch.eye(R, dtype=_DT),
                            gen, 2 ** 22, stats))
    S = torch.cat([so[0] for so in SO])
    O = torch.cat([so[1] if so[1] is not None else torch.zeros_like(so[0]) for so in SO])
    Amap = torch.diag(net.a) + torch.einsum("rk,pk,kq->prq", net.V, S, net.U)  # (P, R, R)
    bmap = (S * net.c + O) @ net.V.T  # (P, R)
    P = Amap.shape[0]
    eye = torch.eye(R, dtype=_DT)
    found = []
    n_solves = 0
    seqs = itertools.product(range(P), repeat=period - 1)
    per = max(1, 2_000_000 // P)
    batch = []

    def flush(batch):
        nonlocal n_solves
        rest = torch.tensor(batch, dtype=torch.long)  # (b, period − 1)
        b = rest.shape[0]
        first = torch.arange(P).repeat(b)
        rest = rest.repeat_interleave(P, 0)
        Ac, bc = Amap[first], bmap[first]
        for j in range(period - 1):
            Ac = Amap[rest[:, j]] @ Ac
            bc = torch.einsum("nrq,nq->nr", Amap[rest[:, j]], bc) + bmap[rest[:, j]]
        z, info = torch.linalg.solve_ex(eye - Ac, bc)
        n_solves += z.shape[0]
        z = z[(info == 0) & torch.isfinite(z).all(-1)]
        w = z
        for _ in range(period):
            w = net.F(w)
        ok = (w - z).abs().amax(-1) <= tol * (1.0 + z.abs().amax(-1))
        ok &= ~net.residual_ok(z, 1e3 * tol)  # not a fixed point
        if period == 3:
            pass  # period 3 has no proper divisor other than 1
        if bool(ok.any()):
            found.append(z[ok])

    with threads_for(min(per, P ** (period - 1)) * P * R):
        for s in seqs:
            batch.append(s)
            if len(batch) >= per:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
    z = _dedupe(torch.cat(found), tol) if found else torch.zeros((0, R), dtype=_DT)
    # group points into orbits
    orbits, seen = [], torch.zeros(len(z), dtype=torch.bool)
    for i in range(len(z)):
        if seen[i]:
            continue
        orbit = [z[i]]
        w = z[i]
        for _ in range(period - 1):
            w = net.F(w[None])[0]
            orbit.append(w)
        for p in orbit:
            d = (z - p).abs().amax(-1)
            seen |= d <= 1e3 * tol * (1.0 + float(p.abs().max()))
        start = min(range(period), key=lambda k: tuple(orbit[k].tolist()))
        orbits.append(torch.stack(orbit[start:] + orbit[:start]))
    pts = torch.stack(orbits) if orbits else torch.zeros((0, period, R), dtype=_DT)
    mult, stab = [], []
    for orb in pts:
        J = eye
        for p in orb:
            J = net.jacobian(p[None])[0] @ J
        ev = torch.linalg.eigvals(J).numpy()
        ev = ev[np.argsort(-np.abs(ev), kind="stable")]
        mod = np.abs(ev)
        mult.append(ev)
        stab.append("marginal" if np.any(np.abs(mod - 1) <= 1e-6) else "stable"
                    if np.all(mod < 1) else "unstable" if np.all(mod > 1) else "saddle")
    stats.update(n_regions=P, n_solves=n_solves)
    del verbose
    return Cycles(points=pts.numpy(), multipliers=np.array(mult).reshape(-1, R),
                  stability=stab, period=period, stats=stats)
