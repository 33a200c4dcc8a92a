"""Tutorial: fit a low-rank RNN to EEG read with MNE, and go back to MNE with generated EEG.

Data: the bundled PhysioNet EEG recording S001R01 (64 channels at 160 Hz, eyes open; ODC-By
1.0, attribution printed below). Steps: read the EDF with MNE, set a standard montage,
preprocess it as in the paper, fit a rank-3 clipped-ReLU network with Gaussian observations and
the optimal proposal, compare generated and recorded EEG with D_stsp and D_H, turn the generated
EEG into an ``mne.io.RawArray`` with the recording's info and compare power spectra, and write
the fit to NWB. Run it as a script:

    python tutorials/eeg_with_mne.py                      # a few minutes on 2 cores
    NWB_LRNN_FAST=1 python tutorials/eeg_with_mne.py      # seconds (what the tests run)

Figures and the NWB file go to ``$NWB_LRNN_TUTORIAL_OUT`` (or ``$NWB_LRNN_OUT``, else a new
temporary folder).
"""

# %%
import os
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt
import mne
import torch

from nwb_lrnn import LowRankRNN, read_fit, to_mne, write_nwb
from nwb_lrnn.cli import SAMPLE_EEG_ATTRIBUTION, sample_eeg_path
from nwb_lrnn.data import BinnedData
from nwb_lrnn.io import preprocess_eeg_paper, read_eeg
from nwb_lrnn.metrics import dstsp, hellinger_spectrum
from nwb_lrnn.viz import plot_psd

FAST = bool(os.environ.get("NWB_LRNN_FAST"))
OUT = Path(os.environ.get("NWB_LRNN_TUTORIAL_OUT") or os.environ.get("NWB_LRNN_OUT")
           or tempfile.mkdtemp(prefix="nwb_lrnn_eeg_"))
OUT.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(1)
mne.set_log_level("error")
print(SAMPLE_EEG_ATTRIBUTION)

# %% [markdown]
# ## 1. Read the EDF with MNE and set a montage
#
# ``read_eeg`` is ``mne.io.read_raw`` with errors that name the file. The PhysioNet channel
# names are padded with dots ('Fc5.', 'Cz..'); without them they match the standard 10-05
# montage, which MNE's topographic plots need. The montage is optional: if it cannot be set,
# the tutorial goes on without it.

# %%
raw = read_eeg(sample_eeg_path())
raw.rename_channels(lambda name: name.strip("."))
try:
    raw.set_montage("standard_1005", match_case=False)
    has_montage = True
except (ValueError, RuntimeError):
    has_montage = False
print(f"raw: {len(raw.ch_names)} channels at {raw.info['sfreq']:g} Hz, "
      f"{raw.n_times / raw.info['sfreq']:.1f} s, montage set: {has_montage}")

# %% [markdown]
# ## 2. Preprocess as in the paper
#
# ``preprocess_eeg_paper`` reproduces the paper's ``EEG_data_smoothed.npy`` exactly: a causal
# Hann smoothing (15 samples), the last 120 samples dropped, each channel z-scored. The means
# and SDs are kept in ``data.provenance["zscore"]`` so generated data can go back to volts.
# (``nwb_lrnn.from_mne(raw, picks="eeg")`` is the plain alternative: z-scoring only.)

# %%
data = preprocess_eeg_paper(raw)
if FAST:  # the first 1000 samples (6 s) only
    data = BinnedData(data.values[:, :1000], data.bin_size, data.kind,
                      channel_names=data.channel_names, provenance=data.provenance)
print("data:", data)

# %% [markdown]
# ## 3. Fit
#
# A rank-3 network of clipped-ReLU units (bounded, so generated trajectories never blow up;
# piecewise linear, so its fixed points are exact), Gaussian observations and the optimal
# (Kalman) proposal, trained on random windows of 100 samples.

# %%
est = LowRankRNN(rank=3, n_units=16 if FAST else 96, observation="gaussian",
                 nonlinearity={"name": "clipped_relu", "clip": 1.0}, proposal="optimal",
                 n_particles=4 if FAST else 10, max_epochs=2 if FAST else 150,
                 window=50 if FAST else 100, steps_per_epoch=3 if FAST else 20,
                 batch_size=4 if FAST else 16, learning_rate=3e-2, lr_final=3e-3,
                 random_state=0, verbose=not FAST)
t0 = time.perf_counter()
est.fit(data)
print(f"fitted in {time.perf_counter() - t0:.1f} s; bound per step {est.score(data):.3f}")

# %% [markdown]
# ## 4. Generated vs recorded EEG: D_stsp and D_H
#
# D_stsp is the KL divergence between the state-space distributions (Gaussian mixtures on the
# points), D_H the Hellinger distance between smoothed power spectra, averaged over channels.

# %%
gen = est.sample(1, data.n_time, burn_in=100, random_state=1)
x, y = data.values[0], gen.values[0]
d_stsp = float(dstsp(x, y, random_state=0))
d_h = float(hellinger_spectrum(x, y))
print(f"D_stsp = {d_stsp:.3f}   D_H = {d_h:.3f}")

# %% [markdown]
# ## 5. Back to MNE
#
# ``est.sample_raw`` generates one continuous recording as an ``mne.io.RawArray``; with
# ``info=`` the recording's info (channel names, types, montage) is kept, and the z-scoring is
# undone so the values are in volts. ``to_mne`` does the same for any BinnedData.

# %%
info = raw.copy().pick("eeg").info
if hasattr(est, "sample_raw"):
    gen_raw = est.sample_raw(data.n_time, burn_in=100, random_state=1, info=info)
else:
    gen_raw = to_mne(gen, info)
data_raw = to_mne(data, info)
print("generated:", gen_raw)
print("channel names kept:", gen_raw.ch_names == data_raw.ch_names,
      "| montage kept:", gen_raw.get_montage() is not None)

# %% [markdown]
# Power spectra: MNE's own ``compute_psd().plot()`` for each, and the mean ± SD over channels
# of both in one panel (``nwb_lrnn.viz.plot_psd``).

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
for ax, inst, title in zip(axes, (data_raw, gen_raw), ("recorded", "generated"), strict=True):
    inst.compute_psd(fmax=60.0, n_fft=256).plot(axes=ax, show=False,
                                                 spatial_colors=has_montage)
    ax.set_title(f"{title} EEG")
fig.savefig(OUT / "eeg_psd_mne.png", dpi=80)
fig = plot_psd(data_raw, gen_raw)
fig.savefig(OUT / "eeg_psd_data_vs_generated.png", dpi=80)
plt.close("all")

# %% [markdown]
# ## 6. Share the fit as NWB
#
# The file holds the model, posterior latents, generated data and the metrics; ``read_fit``
# gives back a fitted estimator.

# %%
path = write_nwb(est, OUT / "S001R01_lrnn.nwb", data=data, overwrite=True,
                 metrics={"D_stsp": d_stsp, "D_H": d_h},
                 session_description="nwb_lrnn tutorial: PhysioNet eegmmidb S001R01 (ODC-By)")
again = read_fit(path)
assert (again.sample(1, 50, random_state=3).values
        == est.sample(1, 50, random_state=3).values).all()
print("written:", path)
print("figures:", *sorted(p.name for p in OUT.glob("eeg_*.png")))
