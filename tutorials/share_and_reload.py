"""Tutorial: share a fit as one NWB file — what is inside, reloading it, and checking it.

A fit written by ``write_nwb`` is a standard NWB file: the ``ndx-lrnn`` extension's schema is
cached in it, so plain pynwb opens it without nwb_lrnn, and nothing in it is pickled. This
tutorial fits a small model to spike trains, writes the fit, opens it with plain pynwb, reloads
it as an estimator (same samples for the same seed), adds the exact fixed points, makes an HTML
report and runs the NWB Inspector on the file.

Data: a real NWB file (mouse postsubiculum, 3 units; pynapple's test file, MIT licence) that
ships with the tests. Run it as a script:

    python tutorials/share_and_reload.py                   # a minute or two on 2 cores
    NWB_LRNN_FAST=1 python tutorials/share_and_reload.py   # seconds (what the tests run)

Files go to ``$NWB_LRNN_TUTORIAL_OUT`` (or ``$NWB_LRNN_OUT``, else a new temporary folder).
"""

# %%
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from nwb_lrnn import LowRankRNN, find_fixed_points, read_fit, read_nwb, write_nwb
from nwb_lrnn.io.fit_nwb import store_fixed_points

FAST = bool(os.environ.get("NWB_LRNN_FAST"))
HERE = Path(__file__).resolve().parent
NWB = HERE.parent / "tests" / "data" / "A8604-211122.nwb"
OUT = Path(os.environ.get("NWB_LRNN_TUTORIAL_OUT") or os.environ.get("NWB_LRNN_OUT")
           or tempfile.mkdtemp(prefix="nwb_lrnn_share_"))
OUT.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(1)

# %% [markdown]
# ## 1. Fit
#
# Spike counts in 50 ms bins, cut into 10 s windows. A clipped-ReLU network, so that its fixed
# points can be listed exactly later on.

# %%
data = read_nwb(NWB, bin_size=0.05, time_range=(0.0, 120.0 if FAST else 600.0))
train, test = data.windows(200).split_trials(0.2, random_state=0)
est = LowRankRNN(rank=2, n_units=16 if FAST else 32, nonlinearity="clipped_relu",
                 n_particles=8 if FAST else 32, max_epochs=2 if FAST else 80,
                 learning_rate=0.02, lr_final=0.002, random_state=0, verbose=not FAST)
t0 = time.perf_counter()
est.fit(train, validation_data=test)
print(f"fitted in {time.perf_counter() - t0:.1f} s: {est}")

# %% [markdown]
# ## 2. Write one NWB file
#
# With ``data`` the file also gets the posterior latents of those data, surrogate data of the
# same shape and the measures of the fit; the session start time (and the subject, unless one
# is given) are copied from the source NWB file, whose SHA-256 is recorded. This source file
# leaves the subject's fields empty, which DANDI would refuse, so we describe the subject with
# what is known of it: sex "U" is unknown, and the open ISO 8601 range "P0D/" ("0 days or
# older") says that the age is unknown.

# %%
subject = dict(subject_id="A8604", species="Mus musculus", sex="U", age="P0D/",
               description="mouse; postsubiculum recording (pynapple test data)")
path = write_nwb(est, OUT / "fit.nwb", data=test, overwrite=True, subject=subject)
print(f"written: {path} ({path.stat().st_size / 1e3:.0f} kB)")

# %% [markdown]
# ## 3. Open it with plain pynwb
#
# ``load_namespaces=True`` reads the extension's schema cached in the file, so this works on
# any machine with pynwb, without nwb_lrnn.

# %%
from pynwb import NWBHDF5IO  # noqa: E402


def show(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
            nwb = io.read()
            print(f"session: {nwb.session_description!r}, subject: "
                  f"{nwb.subject.subject_id if nwb.subject else None}")
            for name, module in nwb.processing.items():
                print(f"processing module {name!r}: {module.description}")
                for key, obj in module.data_interfaces.items():
                    print(f"  {key:18s} {obj.neurodata_type}")
            module = nwb.processing["lrnn"]
            model = module["model"]
            print("model parameters:", ", ".join(
                f"{k} {model.fields[k].shape}" for k in ("U", "V", "h", "C", "d")
                if k in model.fields))
            print("  nonlinearity", model.nonlinearity, "| observation", model.observation,
                  "| bin size", model.bin_size)
            latents = module["posterior_latents"]
            print("posterior latents:", latents.data.shape)
            print("metrics:")
            print(module["metrics"].to_dataframe().to_string(index=False))
            if "fixed_points" in module.data_interfaces:
                print("fixed points:")
                table = module["fixed_points"].to_dataframe()
                print(table[["location", "eigenvalues_real", "stability"]].to_string())


show(path)

# %% [markdown]
# ## 4. Reload as an estimator
#
# ``read_fit`` rebuilds a fitted ``LowRankRNN`` from the arrays: the same seed gives the same
# samples, bit for bit.

# %%
again = read_fit(path)
a = again.sample(4, 200, random_state=7).values
b = est.sample(4, 200, random_state=7).values
assert np.array_equal(a, b)
print("reloaded:", again, "| identical samples:", np.array_equal(a, b))

# %% [markdown]
# ## 5. Add the fixed points, make a report
#
# ``store_fixed_points`` writes the table into the file atomically (through a copy). The report
# (PNG figures and ``index.html``) is what ``nwb-lrnn report fit.nwb --data session.nwb`` makes.

# %%
fp = find_fixed_points(again, verbose=False)
print(fp)
store_fixed_points(path, fp)
show(path)

cli = Path(sys.executable).with_name("nwb-lrnn")
if cli.exists():  # the command line, as a user would run it
    out = subprocess.run([str(cli), "report", str(path), "--data", str(NWB), "--out",
                          str(OUT / "report")], capture_output=True, text=True, check=True)
    print(out.stdout.strip())
else:
    from nwb_lrnn.report import make_report

    print("report:", make_report(path, OUT / "report", data=test, fixed_points=fp))

# %% [markdown]
# ## 6. Check the file with the NWB Inspector
#
# The inspector (what DANDI runs on upload) reports best-practice issues by importance; a fit
# file should have no critical ones and no errors.

# %%
from nwbinspector import Importance, inspect_nwbfile  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    messages = list(inspect_nwbfile(nwbfile_path=str(path)))
counts = {}
for m in messages:
    counts[m.importance.name] = counts.get(m.importance.name, 0) + 1
print("NWB Inspector:", counts or "no issues")
for m in messages:
    print(f"  {m.importance.name}: {m.check_function_name}: {m.message}")
critical = [m for m in messages if m.importance in (Importance.CRITICAL, Importance.ERROR,
                                                    Importance.PYNWB_VALIDATION)]
assert not critical, critical
print("no critical issue")
