"""Time, peak memory and linear solves of the exact fixed-point search, optionally against the
reference implementation measured in the same run.

Runs :func:`nwb_lrnn.analysis.fixed_points.find_fixed_points` on random networks, one fresh
process per case, one thread, and prints the time, the peak resident memory, the number of
R × R systems solved and Zaslavsky's bound on the number of regions.

With ``--reference PATH`` (a checkout of mackelab/smc_rnns, which this script does not ship:
its ``fixed_points`` package is imported from PATH) the same process then builds the same
network (the U, V, h and decay our model holds) for the reference's
``find_fixed_points_analytic`` and runs it in a forked child, killed after
``--reference-timeout`` seconds (or when its resident memory passes ``--reference-max-mib``),
and prints its time, peak memory, solves, the ratio of the two times and whether the two sets
of fixed points agree (counts, and the largest distance between matched points).

    python benchmarks/bench_fixed_points.py                               # ours, every case
    python benchmarks/bench_fixed_points.py --quick                       # the two smallest
    python benchmarks/bench_fixed_points.py --reference ~/src/smc_rnns    # and the reference

Networks: U ~ N(0, 1) (N × R), V ~ N(0, 1) · g / √N with g = 2 (R × N), h ~ N(0, 0.5²),
a = 0.9. Both implementations iterate z ← a z + V φ(U z − h) (the reference's latent bias hz is
set to 0). The reference's analytic finder handles ReLU only, so clipped-ReLU cases have no
reference figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

CASES = [("relu", 60, 2), ("relu", 512, 2), ("relu", 128, 3), ("relu", 256, 3),
         ("relu", 40, 4), ("clipped_relu", 512, 3)]
REF_FILE = os.path.join("fixed_points", "find_fixed_points_analytic.py")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _proc_kib(field: str, pid: int | str = "self") -> int | None:
    """A line of /proc/PID/status (or of /proc/meminfo for pid 'meminfo') in KiB, or None."""
    try:
        with open("/proc/meminfo" if pid == "meminfo" else f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _network(nl: str, N: int, R: int, seed: int):
    import numpy as np

    from nwb_lrnn import LowRankRNN

    rng = np.random.default_rng(seed)
    return LowRankRNN.from_parameters(U=rng.normal(size=(N, R)),
                                      V=rng.normal(size=(R, N)) * 2.0 / np.sqrt(N),
                                      h=0.5 * rng.normal(size=N), decay=0.9, nonlinearity=nl)


def _reset_peak() -> float:
    """Reset this process's peak-RSS mark (VmHWM) to its current RSS; return that RSS in MiB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return (_proc_kib("VmRSS") or 0) / 1024


def one(nl: str, N: int, R: int, seed: int, method: str) -> tuple[dict, object, object]:
    """Our search on one network: the figures, the fixed points (n, R) and the estimator."""
    import torch

    from nwb_lrnn.analysis.fixed_points import find_fixed_points

    torch.set_num_threads(1)
    est = _network(nl, N, R, seed)
    base = _reset_peak()
    t0 = time.perf_counter()
    fp = find_fixed_points(est, method=method, verbose=False)
    sec = time.perf_counter() - t0
    peak = (_proc_kib("VmHWM") or 0) / 1024
    counts: dict[str, int] = {}
    for s in fp.stability:
        counts[s] = counts.get(s, 0) + 1
    return ({"nl": nl, "N": N, "R": R, "method": fp.method, "seconds": sec, "base_mib": base,
             "peak_mib": peak, "n_fp": len(fp), "types": counts,
             "n_solves": fp.stats.get("n_solves"), "zaslavsky": fp.stats.get("zaslavsky_bound")},
            fp.z, est)


def _reference_worker(conn, path: str, a, V, U, h) -> None:
    """In the forked child: the reference's analytic search on (a, V, U, h), its own progress
    prints sent to /dev/null; sends its RSS at the start, then the result."""
    import numpy as np

    try:
        sys.stdout = open(os.devnull, "w")
        sys.path.insert(0, path)
        from fixed_points.find_fixed_points_analytic import find_fixed_points_analytic

        R = U.shape[1]
        conn.send({"base_mib": _reset_peak()})
        t0 = time.perf_counter()
        D_list, _, z_list, n_inverses = find_fixed_points_analytic(a, V, U, np.zeros(R), h)
        sec = time.perf_counter() - t0
        peak = (_proc_kib("VmHWM") or 0) / 1024
        z = np.asarray(z_list, dtype=float).reshape(-1, R)
        # n_inverses counts its C(N, R) vertex solves and its len(D_list) region solves
        conn.send({"seconds": sec, "z": z.tolist(), "n_inverses": int(n_inverses),
                   "n_solves": len(D_list), "peak_mib": peak})
    except BaseException as e:  # everything goes back to the parent
        conn.send({"error": f"{type(e).__name__}: {e}"})
    finally:
        conn.close()


def reference(est, path: str, timeout: float, max_mib: float) -> dict:
    """Run the reference on the network ``est`` holds, in a forked child with a time and a
    memory limit."""
    import multiprocessing as mp

    import numpy as np

    p = est.model_.transition.to_arrays()
    U, V, h = (np.ascontiguousarray(p[k], dtype=float) for k in ("U", "V", "h"))
    a = np.broadcast_to(np.asarray(p["decay"], dtype=float), (U.shape[1],)).copy()
    sys.stdout.flush()
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_reference_worker, args=(send, path, a, V, U, h), daemon=True)
    proc.start()
    send.close()
    out: dict = {}
    t0 = time.perf_counter()  # restarted when the child is about to call the reference
    while True:
        if recv.poll(0.05):
            try:
                msg = recv.recv()
            except EOFError:
                out["error"] = f"its process died (exit code {proc.exitcode})"
                break
            out.update(msg)
            if "base_mib" in msg:  # the reference's call starts now
                t0 = time.perf_counter()
                continue
            break
        hwm, rss = _proc_kib("VmHWM", proc.pid), _proc_kib("VmRSS", proc.pid)
        out["peak_mib"] = max(out.get("peak_mib", 0.0), (hwm or 0) / 1024)
        if time.perf_counter() - t0 > timeout:
            out["limit"] = "time"
        elif rss is not None and rss / 1024 > max_mib:
            out["limit"] = "memory"
        if "limit" in out:
            proc.kill()
            out["seconds"] = time.perf_counter() - t0
            break
    proc.join()
    return out


def agreement(z_ours, z_ref) -> dict:
    """Counts, and the largest Euclidean distance over a best one-to-one matching."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    A, B = np.asarray(z_ours, dtype=float), np.asarray(z_ref, dtype=float)
    out = {"n_ours": len(A), "n_ref": len(B), "max_dist": 0.0}
    if len(A) and len(B):
        d = np.linalg.norm(A[:, None, :] - B[None, :, :], axis=-1)
        i, j = linear_sum_assignment(d)
        out["max_dist"] = float(d[i, j].max())
    scale = 1.0 + max([float(np.abs(A).max())] if len(A) else [0.0])
    out["agree"] = len(A) == len(B) and out["max_dist"] <= 1e-6 * scale
    return out


def run_case(a) -> dict:
    nl, N, R = a.case.split(",")
    r, z, est = one(nl, int(N), int(R), a.seed, a.method)
    if a.reference:
        if nl != "relu":
            r["ref"] = {"none": "no reference equivalent: the reference's analytic finder "
                                "takes ReLU only (its d=2 mode, for φ written as a pair of "
                                "ReLUs per unit, hits singular systems for R ≥ 3)"}
        else:
            ref = reference(est, a.reference, a.reference_timeout, a.reference_max_mib)
            if "z" in ref:
                ref.update(agreement(z, ref.pop("z")))
            r["ref"] = ref
    return r


def _fmt_ratio(x: float, over: bool = False) -> str:
    s = f"{x:.0f}×" if x >= 10 else f"{x:.1f}×"
    return "> " + s if over else s


def _row(r: dict, with_ref: bool, timeout: float) -> tuple[str, str | None]:
    nl, N, R = r["nl"], r["N"], r["R"]
    types = ", ".join(f"{v} {k}" for k, v in sorted(r["types"].items()))
    found = f"{r['n_fp']} ({types})" if types else "0"
    net = f"{nl} ({N}, {R})"
    mib = r["peak_mib"] - r["base_mib"]
    if not with_ref:
        return (f"{net:<22}{r['method']:>8}{r['seconds']:>9.3f}{mib:>10.0f}"
                f"{r['n_solves']:>11}{r['zaslavsky']:>11}  {found}"), None
    ref, note = r["ref"], None
    ref_s = ratio = ref_mib = ref_solves = agree = "—"
    if "none" in ref:
        note = ref["none"]
    elif "error" in ref:
        note = f"the reference failed: {ref['error']}"
    elif ref.get("limit") == "time":
        ref_s, ratio = f"> {timeout:.0f}", _fmt_ratio(timeout / r["seconds"], over=True)
        ref_mib = f"{ref['peak_mib'] - ref['base_mib']:.0f}"
        note = (f"the reference passed the {timeout:.0f} s limit and was killed (peak memory "
                f"until then {ref['peak_mib'] - ref['base_mib']:.0f} MiB)")
    elif ref.get("limit") == "memory":
        ref_s, ref_mib = f"({ref['seconds']:.0f})", f"> {ref['peak_mib'] - ref['base_mib']:.0f}"
        note = (f"the reference passed the memory limit after {ref['seconds']:.0f} s and was "
                f"killed ({ref['peak_mib'] - ref['base_mib']:.0f} MiB)")
    else:
        ref_s, ratio = f"{ref['seconds']:.3f}", _fmt_ratio(ref["seconds"] / r["seconds"])
        ref_mib, ref_solves = f"{ref['peak_mib'] - ref['base_mib']:.0f}", str(ref["n_solves"])
        agree = (f"{'yes' if ref['agree'] else 'NO'} {ref['n_ours']}/{ref['n_ref']} "
                 f"{ref['max_dist']:.0e}")
    return (f"{net:<22}{r['method']:>8}{r['seconds']:>9.3f}{ref_s:>10}{ratio:>9}"
            f"{mib:>9.0f}{ref_mib:>9}{r['n_solves']:>11}{ref_solves:>11}"
            f"{r['zaslavsky']:>11}{agree:>20}  {found}"), note


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--quick", action="store_true", help="only the two smallest cases")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="auto")
    p.add_argument("--reference", metavar="PATH",
                   help="a checkout of mackelab/smc_rnns to time against, in the same process")
    p.add_argument("--reference-timeout", type=float, default=120.0, metavar="S",
                   help="time limit of every reference run in seconds (default 120)")
    p.add_argument("--reference-max-mib", type=float, default=None, metavar="MIB",
                   help="memory limit of every reference run (default 75%% of the memory "
                        "available at the start)")
    p.add_argument("--case", help="internal: run one case 'nl,N,R' and print JSON")
    a = p.parse_args()
    if a.case:
        for k in THREAD_VARS:  # before numpy is imported
            os.environ[k] = "1"
        print(json.dumps(run_case(a)))
        return
    args = ["--seed", str(a.seed), "--method", a.method]
    if a.reference:
        a.reference = os.path.abspath(os.path.expanduser(a.reference))
        if not os.path.isfile(os.path.join(a.reference, REF_FILE)):
            p.error(f"--reference: no {REF_FILE} under {a.reference}")
        if a.reference_max_mib is None:
            a.reference_max_mib = 0.75 * (_proc_kib("MemAvailable", "meminfo") or 2 ** 24) / 1024
        with open(os.path.join(a.reference, REF_FILE), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        args += ["--reference", a.reference, "--reference-timeout", str(a.reference_timeout),
                 "--reference-max-mib", str(a.reference_max_mib)]
    from importlib.metadata import version

    print(f"load average (1, 5, 15 min) at the start: {_load()}  ({os.cpu_count()} CPUs)")
    print(f"python {sys.version.split()[0]}, numpy {version('numpy')}, torch {version('torch')};"
          " one process per case, 1 thread (torch and BLAS)")
    if a.reference:
        print(f"reference: {a.reference} ({REF_FILE} sha256 {digest}…), run after ours in a "
              f"forked child of the same process, limits {a.reference_timeout:.0f} s and "
              f"{a.reference_max_mib:.0f} MiB")
        print(f"{'network':<22}{'method':>8}{'ours s':>9}{'ref s':>10}{'ratio':>9}"
              f"{'our MiB':>9}{'ref MiB':>9}{'solves':>11}{'ref solves':>11}{'Zaslavsky':>11}"
              f"{'agree n/n max dist':>20}  fixed points (ours)")
    else:
        print(f"{'network':<22}{'method':>8}{'time s':>9}{'MiB':>10}{'solves':>11}"
              f"{'Zaslavsky':>11}  fixed points")
    cases = CASES[:1] + CASES[4:5] if a.quick else CASES
    notes: list[str] = []
    bases: dict[str, list[float]] = {"ours": [], "ref": []}
    env = dict(os.environ, **{k: "1" for k in THREAD_VARS})
    for nl, N, R in cases:
        out = subprocess.run([sys.executable, __file__, "--case", f"{nl},{N},{R}", *args],
                             capture_output=True, text=True, env=env)
        if out.returncode:
            print(f"{nl} ({N}, {R}) failed:\n{out.stderr}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        line, note = _row(r, bool(a.reference), a.reference_timeout)
        bases["ours"].append(r["base_mib"])
        if "base_mib" in r.get("ref", {}):
            bases["ref"].append(r["ref"]["base_mib"])
        print(line, flush=True)
        if note:
            notes.append(f"{nl} ({N}, {R}): {note}")
    for n in notes:
        print(n)
    held = {k: f"{min(v):.0f}" + (f"–{max(v):.0f}" if round(max(v)) > round(min(v)) else "")
            + " MiB" for k, v in bases.items() if v}
    if held:
        print("MiB: the search's peak resident memory (VmHWM, its mark reset just before the "
              "call) less what the process held then: "
              + "; ".join(f"{'our process' if k == 'ours' else 'the reference child'} {v}"
                          for k, v in held.items()))
    print("solves: R × R fixed-point systems, one per region (vertex solves not counted)")
    print(f"load average (1, 5, 15 min) at the end: {_load()}")


if __name__ == "__main__":
    main()
