"""Tutorial: every fixed point of a low-rank RNN, exactly — built networks and a fitted one.

For a piecewise-linear φ (ReLU, clipped ReLU) the latent map F(z) = a z + V φ(U z + B u − h)
is affine inside each region cut out by the units' hyperplanes, so its fixed points (and
period-2/3 cycles) can be listed *exactly*: ``find_fixed_points`` solves one R × R system per
region (``method="regions"``) or prunes boxes of latent space that cannot hold one
(``method="boxes"``). This tutorial

1. builds a network whose fixed points are known (two bistable switches, rotated), finds them
   and draws the flow field;
2. moves them with a constant input (a saddle-node bifurcation);
3. finds the period-2 cycles of a small network with strong negative feedback;
4. fits a small model to data of the switch network and compares the two exact methods.

Run it as a script:

    python tutorials/fixed_points.py                    # about a minute on 2 cores
    NWB_LRNN_FAST=1 python tutorials/fixed_points.py    # seconds (what the tests run)

Figures go to ``$NWB_LRNN_TUTORIAL_OUT`` (or ``$NWB_LRNN_OUT``, else a new temporary folder).
"""

# %%
import os
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt
import numpy as np
import torch

from nwb_lrnn import LowRankRNN, find_cycles, find_fixed_points
from nwb_lrnn.viz import plot_flow_field

FAST = bool(os.environ.get("NWB_LRNN_FAST"))
OUT = Path(os.environ.get("NWB_LRNN_TUTORIAL_OUT") or os.environ.get("NWB_LRNN_OUT")
           or tempfile.mkdtemp(prefix="nwb_lrnn_fp_"))
OUT.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(1)
CLIP = {"name": "clipped_relu", "clip": 1.0}

# %% [markdown]
# ## 1. A network with known fixed points: two rotated bistable switches
#
# Along one direction q, a single clipped-ReLU unit with input weight q, output weight q and
# threshold 0.5, together with the decay a = 0.5, gives the one-dimensional map
#
#     w' = 0.5 w + φ(w − 0.5),   φ(x) = min(max(x, 0), 1),
#
# whose fixed points are w = 0 (slope 0.5: stable), w = 1 (slope 1.5: unstable) and w = 2
# (slope 0.5: stable). Two such switches along the orthonormal directions q1, q2 (a rotation of
# the axes by 30°) give 3 × 3 = 9 fixed points z = Q w: 4 stable, 4 saddles, 1 unstable. We add
# random units with zero output weights: they change nothing in the dynamics, but each cuts
# latent space along two more hyperplanes, so the search has many more regions to go through.

# %%
theta = np.deg2rad(30.0)
Q = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])  # columns q1, q2


def switches(n_extra, *, seed=0, B=None, noise_z=0.05):
    """Two rotated bistable switches plus ``n_extra`` random units with zero output weights."""
    rng = np.random.default_rng(seed)
    U = np.vstack([Q.T, rng.normal(size=(n_extra, 2))])          # (N, 2): rows q1, q2, random
    V = np.hstack([Q, np.zeros((2, n_extra))])                   # (2, N): only the switches act
    h = np.concatenate([[0.5, 0.5], rng.normal(size=n_extra)])
    return LowRankRNN.from_parameters(U=U, V=V, h=h, decay=0.5, nonlinearity=CLIP, B=B,
                                      noise_z=noise_z, noise_x=0.1, random_state=0)


n_extra = 38 if FAST else 398
net = switches(n_extra)
t0 = time.perf_counter()
fp = find_fixed_points(net, verbose=False)
print(f"{fp}  ({time.perf_counter() - t0:.2f} s, {fp.stats['n_regions']} regions, "
      f"N = {n_extra + 2} units)")
print(fp.to_dataframe().round(3).to_string())

expected = np.array([Q @ np.array([w1, w2]) for w1 in (0, 1, 2) for w2 in (0, 1, 2)])
assert len(fp) == 9
assert all(np.abs(fp.z - e).max(axis=1).min() < 1e-6 for e in expected)
assert sorted(fp.stability) == ["saddle"] * 4 + ["stable"] * 4 + ["unstable"]

fig = plot_flow_field(net, fixed_points=fp, limits=(-1.5, 2.5, -0.8, 3.0))
fig.axes[0].set_title("Two rotated bistable switches: 9 fixed points")
fig.savefig(OUT / "fixed_points_switches.png", dpi=90)
plt.close(fig)

# %% [markdown]
# ## 2. A constant input moves the fixed points
#
# With an input weight B on the first switch's unit only, a constant input u lowers its
# threshold: w' = 0.5 w + φ(w − 0.5 + u). For 0 < u < 0.5 the unstable point moves down to
# w = 1 − 2u, towards the lower stable state w = 0; at u = 0.5 they collide and vanish (a
# saddle-node bifurcation), leaving only the upper state of that switch: 3 fixed points. A
# negative input does the opposite: below u = −0.5 only the lower state is left.

# %%
B = np.zeros((n_extra + 2, 1))
B[0, 0] = 1.0
net_in = switches(n_extra, B=B)
for u in (-0.7, -0.3, 0.0, 0.3, 0.7):
    fpu = find_fixed_points(net_in, inputs=[u], verbose=False)
    w1 = np.unique((fpu.z @ Q)[:, 0].round(3)) + 0.0  # the first switch's coordinate
    print(f"u = {u:+.1f}: {fpu}   first switch at w1 = {w1}")
assert len(find_fixed_points(net_in, inputs=[0.7], verbose=False)) == 3

# %% [markdown]
# ## 3. Period-2 cycles: strong negative feedback
#
# One latent dimension with decay 0.1, a unit that is always saturated (threshold −10, output
# weight +1: a constant drive) and a unit with strong negative feedback (output weight −2):
#
#     z' = 0.1 z + 1 − 2 φ(z).
#
# Its one fixed point z = 1/2.9 is unstable (slope −1.9), and it has a stable period-2 cycle
# −0.756 ↔ 0.924 (multiplier 0.1 × (−1.9) = −0.19). Two such dimensions side by side have
# four period-2 orbits: one dimension cycling while the other sits on its fixed point (two
# saddles), and both cycling in phase or in anti-phase (two stable orbits).

# %%
U = np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
V = np.array([[1.0, -2.0, 0, 0], [0, 0, 1.0, -2.0]])
flip = LowRankRNN.from_parameters(U=U, V=V, h=np.array([-10.0, 0.0, -10.0, 0.0]), decay=0.1,
                                  nonlinearity=CLIP, noise_z=0.01)
print(find_fixed_points(flip, verbose=False))
cycles = find_cycles(flip, period=2, verbose=False)
print(cycles)
for orbit, stab, mult in zip(cycles.points, cycles.stability, cycles.multipliers, strict=True):
    print(f"  {stab:8s} {np.round(orbit[0], 3)} ↔ {np.round(orbit[1], 3)}   "
          f"multipliers {np.round(np.abs(mult), 3)}")
assert len(cycles) == 4 and sorted(cycles.stability) == ["saddle"] * 2 + ["stable"] * 2

# %% [markdown]
# ## 4. The fixed points of a fitted model; 'regions' vs 'boxes'
#
# We sample noisy trajectories of the switch network (the latent noise makes it hop between
# its four stable states), fit a small rank-2 clipped-ReLU model to them and list its fixed
# points with both exact methods. They must agree; their costs differ: 'regions' goes through
# every region of the arrangement (about 2N² for rank 2), 'boxes' only through the parts of
# latent space that can hold a fixed point. (The full-length fit recovers the teacher's nine
# fixed points, with their stability; the seconds-long fit of the fast mode does not.)

# %%
teacher = switches(8, noise_z=0.3)
data = teacher.sample(8 if FAST else 32, 200, burn_in=50, random_state=1)
student = LowRankRNN(rank=2, n_units=16 if FAST else 64, nonlinearity=CLIP, n_particles=8,
                     max_epochs=3 if FAST else 150, batch_size=8, learning_rate=0.03,
                     lr_final=0.003, random_state=0, verbose=not FAST)
t0 = time.perf_counter()
student.fit(data)
print(f"student fitted in {time.perf_counter() - t0:.1f} s; bound {student.score(data):.3f}")

found = {}
for method in ("regions", "boxes"):
    t0 = time.perf_counter()
    found[method] = find_fixed_points(student, method=method, verbose=False)
    print(f"{method:8s} {found[method]}  {time.perf_counter() - t0:.3f} s, "
          f"{found[method].stats.get('n_solves', 0)} systems solved")


def _sorted(z):
    return z[np.lexsort(z.T[::-1])] if len(z) else z


assert len(found["regions"]) == len(found["boxes"])
assert np.allclose(_sorted(found["regions"].z), _sorted(found["boxes"].z), atol=1e-6)
print("teacher: 9 fixed points (4 saddle, 4 stable, 1 unstable); student:", found["regions"])
print(found["regions"].to_dataframe().round(3).to_string())

z_post = student.transform(data)
fig = plot_flow_field(student, latents=z_post, fixed_points=found["regions"])
fig.axes[0].set_title("Fitted model: flow field and fixed points")
fig.savefig(OUT / "fixed_points_fitted.png", dpi=90)
plt.close(fig)

# %% [markdown]
# Timing on the built network as it grows (random units added): 'regions' grows as N², 'boxes'
# follows the number of fixed points.

# %%
for n in ((30, 100) if FAST else (100, 250, 500)):
    big = switches(n)
    times = {}
    for method in ("regions", "boxes"):
        t0 = time.perf_counter()
        res = find_fixed_points(big, method=method, verbose=False)
        times[method] = time.perf_counter() - t0
        assert len(res) == 9
    print(f"N = {n + 2:5d}: regions {times['regions']:.3f} s, boxes {times['boxes']:.3f} s")
print("figures:", *sorted(p.name for p in OUT.glob("fixed_points_*.png")))
