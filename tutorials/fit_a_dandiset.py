"""Tutorial: fit a low-rank RNN to a session of a DANDI dandiset, streamed, and record where
the data came from.

``read_dandi`` resolves assets with the official DANDI client and streams only the Units
table (HTTP range requests), so a multi-GB session costs a few MB. The fit file written by
``write_nwb`` records the dandiset, version, asset path and digest of the data.

Which archive?

* ``NWB_LRNN_FAST=1`` (what the tests run), or ``NWB_LRNN_DANDI_API`` set to anything but a
  URL, or no network: a local DANDI-API-compatible server (``tests/dandi_server.py``) serves
  the small real NWB file of the tests (mouse postsubiculum, pynapple's test file, MIT) as
  dandiset 000128, version 0.220113.0408. Same client, same HTTP requests, no network.
* ``NWB_LRNN_DANDI_API=https://...``: that DANDI API.
* otherwise, with network: the DANDI archive, dandiset 000128 (MC_Maze, Neural Latents
  Benchmark; CC-BY 4.0), the training session of monkey Jenkins.

Run it as a script:

    python tutorials/fit_a_dandiset.py                   # a few minutes on 2 cores
    NWB_LRNN_FAST=1 python tutorials/fit_a_dandiset.py   # seconds

Files go to ``$NWB_LRNN_TUTORIAL_OUT`` (or ``$NWB_LRNN_OUT``, else a new temporary folder).
"""

# %%
import contextlib
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DANDI_NO_ET", "1")  # no usage telemetry from the dandi client

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt
import torch

from nwb_lrnn import LowRankRNN, read_dandi, read_fit, write_nwb
from nwb_lrnn.io.fit_nwb import read_fit_source
from nwb_lrnn.viz import plot_latents

FAST = bool(os.environ.get("NWB_LRNN_FAST"))
HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("NWB_LRNN_TUTORIAL_OUT") or os.environ.get("NWB_LRNN_OUT")
           or tempfile.mkdtemp(prefix="nwb_lrnn_dandi_"))
OUT.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(1)
API_ENV = os.environ.get("NWB_LRNN_DANDI_API", "")

# %% [markdown]
# ## 1. Choose the archive
#
# The local server is a stand-in for https://api.dandiarchive.org/api: it answers the same
# endpoints (dandisets, versions, asset listings, download redirects with range support).


# %%
def archive_reachable(host="api.dandiarchive.org", timeout=3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


use_local = FAST or (API_ENV != "" and not API_ENV.startswith("http"))
if not use_local and not API_ENV and not archive_reachable():
    print("The DANDI archive cannot be reached from here (no network): using the local "
          "DANDI-API-compatible test server instead, with the same client and requests.")
    use_local = True

with contextlib.ExitStack() as stack:
    if use_local:
        sys.path.insert(0, str(HERE.parent))  # the repository root, for tests/dandi_server.py
        from tests.dandi_server import DandiServer

        srv = stack.enter_context(DandiServer())
        srv.add_dandiset("000128", {"sub-A8604/sub-A8604_ses-211122.nwb":
                                    HERE.parent / "tests" / "data" / "A8604-211122.nwb"},
                         version="0.220113.0408")
        api_url = srv.api_url
        ref, asset = "DANDI:000128/0.220113.0408", "sub-A8604/*.nwb"
        settings = dict(bin_size=0.05, time_range=(0.0, 120.0 if FAST else 600.0))
        window = 200  # 10 s
    else:
        api_url = API_ENV or None  # None: the DANDI archive
        ref, asset = "DANDI:000128", "sub-Jenkins/*train*.nwb"
        settings = dict(bin_size=0.02, time_range=(0.0, 300.0))
        window = 250  # 5 s
    print(f"archive: {api_url or 'https://api.dandiarchive.org/api'}")

    # %% [markdown]
    # ## 2. Stream and bin the Units table
    #
    # ``asset`` is an asset path or a glob over asset paths. Only the Units table is read;
    # ``cache_dir`` keeps the fetched blocks, so a second run reads nothing from the network.

    # %%
    t0 = time.perf_counter()
    data = read_dandi(ref, asset=asset, api_url=api_url, cache_dir=OUT / "dandi_cache",
                      **settings)
    print(f"read in {time.perf_counter() - t0:.1f} s:", data)
    prov = data.provenance
    print("provenance:")
    for key in ("dandiset", "version", "asset_path", "asset_id", "digest", "api_url"):
        print(f"  {key:10s} {prov.get(key)}")

# %% [markdown]
# ## 3. Fit a Poisson model
#
# Spike counts: Poisson observations and the CNN encoder proposal (``"auto"`` would pick
# square-root counts with Gaussian noise, ``observation="gaussian_sqrt"``, and the optimal
# proposal). The recording is cut into windows, one fifth held out.

# %%
train, test = data.windows(window).split_trials(0.2, random_state=0)
est = LowRankRNN(rank=2, n_units=16 if FAST else 64, observation="poisson",
                 proposal="encoder", n_particles=8 if FAST else 32,
                 max_epochs=2 if FAST else 100, learning_rate=0.02, lr_final=0.002,
                 random_state=0, verbose=not FAST)
t0 = time.perf_counter()
est.fit(train, validation_data=test)
print(f"fitted in {time.perf_counter() - t0:.1f} s; bound per step: train "
      f"{est.score(train):.3f}, held-out {est.score(test):.3f}")
z, z_sd = est.transform(test, return_std=True)
fig = plot_latents(z, z_sd, bin_size=test.bin_size)
fig.savefig(OUT / "dandi_latents.png", dpi=80)
plt.close("all")

# %% [markdown]
# ## 4. Write the results, with the DANDI source, and read them back

# %%
path = write_nwb(est, OUT / "dandi_000128_lrnn.nwb", data=test, overwrite=True)
source = read_fit_source(path)
print("the results file records its source:")
for key in ("dandiset", "version", "asset_path", "digest"):
    print(f"  {key:10s} {source.get(key)}")
assert source["dandiset"] == prov["dandiset"] and source["asset_path"] == prov["asset_path"]
again = read_fit(path)
assert (again.sample(2, 100, random_state=3).values
        == est.sample(2, 100, random_state=3).values).all()
print("reloaded:", again)
print("written:", path)
