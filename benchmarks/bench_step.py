"""One optimiser step of the VSMC fit on the three benchmark configurations (EEG; Gaussian
teacher-student; Poisson counts with the CNN encoder).

Prints, per configuration and thread count: the median (and min) time per optimiser step
(forward particle filter + backward + Adam), the peak resident memory of a process that ran only
that configuration and the distance from the FLOP bound (the step's floating-point work,
encoder included, divided by the machine's measured single-precision matmul rate).

The configurations do the reference implementation's (mackelab/smc_rnns) work: EEG and the
Gaussian student-teacher with a full latent noise covariance (its optimal proposal needs one),
the Poisson student-teacher with the encoder of its example notebook (kernels 21/11/1, 64
channels, GELU, causal circular padding; ``--encoder package`` for the package's default, two
centred convolutions of size 11).

With ``--reference PATH`` (a user's own checkout of mackelab/smc_rnns; nothing of it is in this
repository) the reference's own model and training step are built from PATH for the same
configuration and timed in the same process, interleaved with ours (alternating repetitions,
same thread count): both medians and their ratio are measured in this run. Where the reference
cannot do exactly the same work, a printed line says so. Without it, no ratio is printed.

Run by hand (not a test):
    .venv/bin/python benchmarks/bench_step.py [--reps 40] [--threads 1 2] [--reference PATH]
        [--encoder reference|package]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time

CONFIGS = {
    # name: (model kwargs, proposal, K, batch, T)
    "eeg": (dict(rank=3, n_units=512, n_channels=64, nonlinearity="clipped_relu",
                 noise_cov="full"), "optimal", 10, 10, 50),
    "gauss_ts": (dict(rank=2, n_units=20, n_channels=20, nonlinearity="relu",
                      noise_cov="full"), "optimal", 64, 10, 75),
    "poisson_ts": (dict(rank=2, n_units=40, n_channels=40, observation="poisson",
                        bin_size=0.05, nonlinearity="relu"), "encoder", 64, 10, 200),
    # the package's own EEG fits with noise correlated in time (no counterpart in the
    # reference): its defaults for one long recording (K 32, batch 16, windows of 100)
    "eeg_ar1": (dict(rank=3, n_units=64, n_channels=64, nonlinearity="clipped_relu",
                     observation="gaussian_ar1"), "optimal", 32, 16, 100),
    "eeg_var1": (dict(rank=3, n_units=64, n_channels=64, nonlinearity="clipped_relu",
                      observation="gaussian_var1"), "optimal", 32, 16, 100),
}
# configurations the reference cannot run (timed without it even with --reference)
PACKAGE_ONLY = {"eeg_ar1", "eeg_var1"}

LR, CLIP, WARMUP = 1e-3, 10.0, 5

# the Poisson configuration's encoder: the reference notebook's, or the package's default
ENCODERS = {
    "reference": dict(kernel_size=(21, 11, 1), hidden=64, causal=True, padding="circular"),
    "package": dict(kernel_size=11, hidden=64, causal=False, padding="zeros"),
}

# Where the reference's step, built by _build_reference, cannot do exactly the work of ours.
REFERENCE_DIFFERENCES = {
    "common": [
        "optimiser: both use torch Adam (fused where available), lr 1e-3, grad-norm clip 10; "
        "the reference's train_VAE uses RAdam and its scripts set grad_norm=0 (no clipping) - "
        "its step is rebuilt here as train_VAE's inner-loop body with Adam and clip 10",
        "weights: each model has its own initial values (same shapes); both filter the same "
        "data (our model's sample, transposed to the reference's (batch, channels, T) layout)",
        "the reference runs as shipped: global torch RNG, torch.distributions with argument "
        "validation on, a per-sequence Python loop in its systematic resampling",
    ],
    "eeg": [
        "nonlinearity: ours min(max(u·z - h, 0), 1) (clip fixed at 1); the reference's "
        "clipped_relu is relu(m·z + h) - relu(m·z) (clip width = trainable per-unit h)",
        "latent noise: full (lower-triangular) Σ_z and Σ_0 in both (its optimal proposal "
        "needs them full)",
    ],
    "gauss_ts": [
        "latent noise: full (lower-triangular) Σ_z and Σ_0 in both (its optimal proposal "
        "needs them full)",
        "readout: affine y = C z + d in both (reference observation='affine', "
        "readout_from='z'); the reference's own student-teacher notebook reads out "
        "one-to-one from the unit currents instead",
    ],
    "poisson_ts": [
        "encoder (--encoder reference): in both three convolutions, kernels 21/11/1, 64 "
        "channels, GELU, causal circular padding (the reference notebook's); its last layer is "
        "two 1-wide convolutions (mean, log-variance), ours one with 2R outputs (same FLOPs); "
        "the reference repeats the encoder output over the K particles",
        "encoder (--encoder package): ours two centred convolutions of size 11; the "
        "reference's padding is 'causal', 'acausal' or 'windowed' (which loses a time step per "
        "odd-sized kernel): built with kernels (11, 11) and causal zero padding, same FLOPs",
        "encoder variance: ours softplus(·) + 1e-3, the reference exp(log-var) clamped",
        "Poisson rate: ours Δ·softplus(C z + d) with Δ = 0.05 s; the reference has no bin "
        "size: softplus(C z + d) + 1e-6 counts per bin",
    ],
}


def step_flops(name: str, encoder: str = "reference") -> float:
    """Floating-point operations of one optimiser step (dominant terms; backward = 2× forward).

    Per time step and particle: the transition's two products (2·2·R·N), the proposal's R×R
    products and the observation (Gaussian: folded into R-dim quadratic forms, 2·R²; AR or
    VAR(1) noise: one (2R, 4R) product, 16·R²; Poisson: η = C z, 2·R·C, plus about 10 flops
    per channel for the link and likelihood). Per time step and sequence (not per particle):
    the encoder's convolutions, or the AR noise's whitening of the data (2·C² + 4·C·R).
    """
    kw, prop, K, B, T = CONFIGS[name]
    R, N, C = kw["rank"], kw["n_units"], kw["n_channels"]
    per = 4 * R * N + 6 * R * R + 4 * N
    enc = 0
    if kw.get("observation") in ("gaussian_ar1", "gaussian_var1"):
        per += 16 * R * R
        enc = (2 * C * C + 4 * C * R) * B * T
    if prop == "encoder":
        per += 2 * R * C + 10 * C
        e = ENCODERS[encoder]
        ks = e["kernel_size"] if isinstance(e["kernel_size"], tuple) else (e["kernel_size"],) * 2
        widths = [C] + [e["hidden"]] * (len(ks) - 1) + [2 * R]
        enc = sum(2 * widths[i] * widths[i + 1] * k for i, k in enumerate(ks)) * B * T
    return 3.0 * (per * K * B * T + enc)

def _measure_peak_gflops() -> float:
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    n = 20
    for _ in range(n):
        a @ b
    return 2 * 1024**3 * n / (time.perf_counter() - t) / 1e9


def _check_reference(path: str) -> str:
    """The absolute path of a checkout holding the reference's vi_rnn package, or exit."""
    path = os.path.abspath(os.path.expanduser(path))
    missing = [f for f in ("vae.py", "inference.py", "rnn.py", "encoders.py")
               if not os.path.isfile(os.path.join(path, "vi_rnn", f))]
    if missing:
        raise SystemExit(f"--reference {path}: not a checkout of mackelab/smc_rnns "
                         f"(vi_rnn/{', vi_rnn/'.join(missing)} missing).")
    return path


def _reference_params(name: str, encoder: str = "reference") -> dict:
    """The reference's VAE parameters closest to our configuration ``name``."""
    kw, prop, _, _, _ = CONFIGS[name]
    gaussian = kw.get("observation", "gaussian") == "gaussian"
    # the optimal proposal reads both latent covariances through a Cholesky embedding, which
    # only its 'full' parametrisation provides; the encoder proposal needs 'diag'
    noise = "full" if prop == "optimal" else "diag"
    rnn = dict(transition="low_rank", activation=kw["nonlinearity"], decay=0.9,
               weight_dist="uniform", train_neuron_bias=True, initial_state="trainable",
               simulate_input=False, noise_z=noise, noise_z_t0=noise, init_noise_z=0.1,
               init_noise_z_t0=1.0, train_noise_z=True, train_noise_z_t0=True,
               observation="affine", readout_from="z", train_obs_bias=True,
               train_obs_weights=True)
    if gaussian:
        rnn.update(obs_likelihood="Gauss", obs_nonlinearity="identity", noise_x="diag",
                   init_noise_x=1.0, train_noise_x=True)
    else:
        rnn.update(obs_likelihood="Poisson", obs_nonlinearity="softplus")
    params = dict(dim_x=kw["n_channels"], dim_z=kw["rank"], dim_N=kw["n_units"],
                  rnn_params=rnn)
    if prop == "encoder":
        e = ENCODERS[encoder]
        ks = e["kernel_size"] if isinstance(e["kernel_size"], tuple) else (e["kernel_size"],) * 2
        params.update(enc_architecture="CNN", enc_params=dict(
            init_kernel_sizes=list(ks), n_channels=[e["hidden"]] * (len(ks) - 1),
            nonlinearity="gelu", init_scale=0.1, constant_var=False,
            padding_mode="circular" if e["padding"] == "circular" else "constant",
            padding_location="causal"))
    return params


def _build_reference(name: str, path: str, y, make_optimizer, encoder: str = "reference"):
    """The reference's model and one training step on data ``y`` (B, T, C), as a closure.

    Nothing of the reference is copied: its vi_rnn package is imported from ``path``.
    """
    import torch

    _, prop, K, B, T = CONFIGS[name]
    sys.path.insert(0, path)
    # the reference's modules import each other by bare module name
    sys.path.append(os.path.join(path, "vi_rnn"))
    with contextlib.redirect_stdout(sys.stderr):  # it prints while building
        from vi_rnn import inference
        from vi_rnn.vae import VAE

        torch.manual_seed(0)
        vae = VAE(_reference_params(name, encoder))
    loss_f = (inference.filtering_posterior_optimal_proposal if prop == "optimal"
              else inference.filtering_posterior)
    x = y.transpose(1, 2).contiguous()  # (B, C, T)
    u = torch.zeros(B, 0, T, dtype=x.dtype)  # no inputs
    params = [p for p in vae.parameters() if p.requires_grad]
    opt = make_optimizer(params, LR)
    vae.train()

    def step():
        opt.zero_grad(set_to_none=True)
        log_lik, _, _ = loss_f(vae, x, u, K, "systematic", 0)
        loss = -log_lik.mean()  # the reference's bound is already a mean over time
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()

    return step


def build_step(name: str, encoder: str = "reference", device: str = "cpu", *,
               configs: dict | None = None):
    """One optimiser step of configuration ``name`` (particle filter, backward, Adam, clip):
    ``(step, y)`` with ``step()`` returning the detached loss and ``y`` the data it filters
    (the model's own sample, drawn on the CPU, then moved to ``device``). ``configs``: a table
    like :data:`CONFIGS` (default it)."""
    import torch

    from nwb_lrnn.inference import make_proposal, particle_filter
    from nwb_lrnn.inference.training import _adam
    from nwb_lrnn.model import LowRankRNNModel, ModelConfig

    kw, prop, K, B, T = (configs or CONFIGS)[name]
    g = torch.Generator().manual_seed(0)
    model = LowRankRNNModel(ModelConfig(**kw), generator=g)
    options = ENCODERS[encoder] if prop == "encoder" else {}
    proposal = make_proposal(prop, model, generator=g, **options)
    with torch.no_grad():
        y = model.sample(B, T, generator=g)[1]
    device = torch.device(device)
    if device.type != "cpu":
        model, proposal, y = model.to(device), proposal.to(device), y.to(device)
        g = torch.Generator(device=device).manual_seed(0)
    params = list(model.parameters()) + list(proposal.parameters())
    opt = _adam(params, LR)

    def step():
        res = particle_filter(model, proposal, y, n_particles=K, generator=g)
        loss = -res.log_marginal.mean() / T
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        return loss.detach()

    return step, y


def _run_one(name: str, threads: int, reps: int, reference: str | None = None,
             encoder: str = "reference") -> dict:
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from nwb_lrnn.inference.training import _adam

    ours, y = build_step(name, encoder)

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    for _ in range(WARMUP):
        ours()
    # the high-water mark of a process that has run only our steps (they are the same shape
    # every repetition, so the warm-up reaches their peak); updated at the end when the
    # reference is not run in this process
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    out = {"peak_rss_mib": peak}
    times = []
    if reference is None:
        times = [timed(ours) for _ in range(reps)]
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    else:
        ref = _build_reference(name, reference, y, _adam, encoder)
        for _ in range(WARMUP):
            ref()
        ref_times = []
        for i in range(reps):  # interleaved, alternating which goes first
            pair = (ours, ref) if i % 2 == 0 else (ref, ours)
            t = [timed(fn) for fn in pair]
            times.append(t[0] if i % 2 == 0 else t[1])
            ref_times.append(t[1] if i % 2 == 0 else t[0])
        out.update(ref_median_s=float(np.median(ref_times)), ref_min_s=float(np.min(ref_times)),
                   peak_rss_both_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out.update(median_s=float(np.median(times)), min_s=float(np.min(times)),
               threads=torch.get_num_threads(), gflops=_measure_peak_gflops())
    return out


def _reference_label(path: str) -> str:
    try:
        rev = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return path
    return f"{path} (git {rev.stdout.strip()})" if rev.returncode == 0 else path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--reference", metavar="PATH",
                        help="checkout of mackelab/smc_rnns: build its model and step for each "
                             "configuration and time them interleaved with ours in this run")
    parser.add_argument("--encoder", choices=list(ENCODERS), default="reference",
                        help="the Poisson configuration's encoder: the reference notebook's "
                             "(kernels 21/11/1, causal, circular; default) or the package's "
                             "default (11/11, centred)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    ref_path = _check_reference(args.reference) if args.reference else None
    if args.child:
        ref = None if args.child[0] in PACKAGE_ONLY else ref_path
        print(json.dumps(_run_one(args.child[0], int(args.child[1]), args.reps, ref,
                                  args.encoder)))
        return
    import torch

    load = os.getloadavg()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"capability {torch.backends.cpu.get_cpu_capability()}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start; Poisson encoder: {args.encoder}")
    if ref_path:
        print(f"reference: {_reference_label(ref_path)}, measured in this run "
              f"({WARMUP} warm-up steps each, then {args.reps} interleaved repetitions)")
        header = (f"{'config':<11} {'thr':>3} {'median ms':>10} {'min ms':>8} "
                  f"{'ref med ms':>10} {'ref min ms':>10} {'speed-up':>8} {'peak MiB':>9} "
                  f"{'MFLOP':>7} {'bound ms':>9} {'×bound':>7}")
    else:
        header = (f"{'config':<11} {'thr':>3} {'median ms':>10} {'min ms':>8} {'peak MiB':>9} "
                  f"{'MFLOP':>7} {'bound ms':>9} {'×bound':>7}")
    print(header)
    print("-" * len(header))
    extra = ["--reference", ref_path] if ref_path else []
    for name in args.configs:
        for threads in args.threads:
            out = subprocess.run([sys.executable, __file__, "--reps", str(args.reps),
                                  "--encoder", args.encoder, "--child", name, str(threads),
                                  *extra], capture_output=True, text=True)
            if out.returncode != 0:
                sys.stderr.write(out.stderr)
                raise SystemExit(f"{name}, {threads} thread(s): the benchmark process failed.")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            flops = step_flops(name, args.encoder)
            bound = flops / (r["gflops"] * 1e9)
            ref = ""
            if ref_path and name in PACKAGE_ONLY:
                ref = f"{'-':>10} {'-':>10} {'-':>8} "
            elif ref_path:
                ratio = r["ref_median_s"] / r["median_s"]
                ref = (f"{1e3 * r['ref_median_s']:>10.2f} {1e3 * r['ref_min_s']:>10.2f} "
                       f"{ratio:>7.1f}× ")
            print(f"{name:<11} {threads:>3} {1e3 * r['median_s']:>10.2f} "
                  f"{1e3 * r['min_s']:>8.2f} {ref}"
                  f"{r['peak_rss_mib']:>9.0f} {flops / 1e6:>7.1f} {1e3 * bound:>9.3f} "
                  f"{r['median_s'] / bound:>6.0f}×")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    if ref_path:
        print("\nspeed-up = reference median / our median, both measured in this run, in the "
              "same process,\ninterleaved, with the same thread count. peak MiB = ours only "
              "(after its warm-up, before the reference was imported).")
        print("Where the reference's step differs from ours:")
        for key in ("common", *args.configs):
            for line in REFERENCE_DIFFERENCES.get(key, [
                    "no counterpart in the reference (its observation noise is white): timed "
                    "without it"]):
                print(textwrap.fill(line, 100, initial_indent=f"  [{key}] ",
                                    subsequent_indent=" " * (len(key) + 5)))
    else:
        print("\nNo comparison with the reference: pass --reference PATH (a checkout of "
              "mackelab/smc_rnns)\nto time its step interleaved with ours in this run.")
    print("×bound = our median / FLOP bound (the step's flops at the measured 1024² sgemm rate "
          "of the same thread count).")


if __name__ == "__main__":
    main()
