"""Tutorial: fit a low-rank RNN to spike trains in an NWB file, and look at it.

Data: a real NWB file (mouse postsubiculum, 3 units; pynapple's test file, MIT licence) that
ships with the tests. Run it as a script:

    python tutorials/spikes_from_nwb.py            # a few minutes on 2 cores
    NWB_LRNN_FAST=1 python tutorials/spikes_from_nwb.py   # seconds (what the tests run)
"""

import os
import tempfile
from pathlib import Path

from nwb_lrnn import LowRankRNN, read_fit, read_nwb, write_nwb

FAST = bool(os.environ.get("NWB_LRNN_FAST"))
HERE = Path(__file__).resolve().parent
NWB = HERE.parent / "tests" / "data" / "A8604-211122.nwb"
OUT = Path(os.environ.get("NWB_LRNN_OUT", tempfile.mkdtemp(prefix="nwb_lrnn_")))

# 1. Bin the Units table: 50 ms bins over the first 10 minutes, cut into 10 s windows.
data = read_nwb(NWB, bin_size=0.05, time_range=(0.0, 120.0 if FAST else 600.0))
train, test = data.windows(200).split_trials(0.2, random_state=0)
print("data:", data, "→ train", train.shape, "test", test.shape)

# 2. Fit: for counts, observation="auto" models the square-root counts 2 sqrt(y + 3/8) as
#    Gaussian with a noise variance per neuron (observation="gaussian_sqrt", filtered exactly
#    by the optimal proposal); observation="poisson" fits Poisson counts with a CNN encoder.
est = LowRankRNN(rank=2, n_units=16, n_particles=8 if FAST else 32,
                 max_epochs=2 if FAST else 150, learning_rate=0.02, lr_final=0.002,
                 random_state=0, verbose=not FAST)
est.fit(train, validation_data=test)
print(f"bound per step: train {est.score(train):.3f}, held-out {est.score(test):.3f}")

# 3. Posterior latents, surrogate spikes.
z, z_sd = est.transform(test, return_std=True)
surrogate = est.sample(test.n_trials, test.n_time, burn_in=100, random_state=1)
print("latents", z.shape, "surrogate", surrogate)
print("mean rate (Hz) data:", (test.values.mean((0, 1)) / test.bin_size).round(2),
      "generated:", (surrogate.values.mean((0, 1)) / surrogate.bin_size).round(2))

# 4. Share the fit as one NWB file, reload it, and make a report.
path = write_nwb(est, OUT / "postsubiculum_lrnn.nwb", data=test, overwrite=True)
again = read_fit(path)
assert (again.sample(1, 50, random_state=3).values
        == est.sample(1, 50, random_state=3).values).all()
from nwb_lrnn.report import make_report  # noqa: E402

print("report:", make_report(path, OUT / "report", data=test))
