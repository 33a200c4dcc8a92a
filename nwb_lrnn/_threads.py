"""How many CPU threads the package's torch work uses: never more than it may use or finds idle.

torch's default is one OpenMP thread per CPU in the affinity mask, and its threads spin while
they wait for each other. Beside another busy process, every parallel region then waits for the
thread that lost its core: on 2 cores beside one CPU-bound process, ``benchmarks/
bench_contention.py`` measured the main job's fit 2.7x slower with torch's default (2 threads)
and 1.1x with one thread; beside three such processes 8.8x against 2.0x (the fair share). Alone,
one thread was also the faster (3.9 s against 4.8 s): the fit's operations are too small to pay
for a second thread. Larger work does pay: a step of an N = 1024, K = 32, batch 16 network took
170 ms on one thread and 123 ms on two, the exact fixed points of a (256, 3) network 10.4 s and
5.9 s (quiet machine, load < 1).

So each call into the package's heavy work (fit, transform, score, sample, the fixed-point
search) runs under :func:`threads_for`, which picks

- the user's choice when there is one (:func:`set_num_threads`, the ``NWB_LRNN_NUM_THREADS``
  or ``OMP_NUM_THREADS`` variable, or a ``torch.set_num_threads`` call that changed torch's
  default), else
- one thread for work of fewer than :data:`WORK_PER_THREAD` elements per operation, else
- as many threads as the work can use, at most the CPUs the process may use (its affinity mask
  and its cgroup's CPU quota) and at most the CPUs that are idle right now (the other processes'
  CPU time in the last :data:`IDLE_SAMPLE_S` seconds, read from ``/proc/stat``).

and restores torch's setting afterwards. Long fits look again every :data:`RECHECK_S` seconds
and give threads back when other work has started. This module does not import torch until a
thread count is set.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["get_num_threads", "idle_cpus", "set_num_threads", "threads_for", "usable_cpus"]

WORK_PER_THREAD = 1 << 17
"""Elements per operation below which a second thread costs more than it gives (measured:
51 200 elements a step, the main job's fit, was slower on two threads; 524 288 was 1.4x faster)."""
IDLE_SAMPLE_S = 0.05
RECHECK_S = 10.0
_ENV = "NWB_LRNN_NUM_THREADS"
_user_threads: int | None = None


def set_num_threads(n: int | None) -> None:
    """Fix the number of threads the package's torch work uses (None: choose automatically).

    Parameters
    ----------
    n : int or None
        Threads (>= 1), or None to let the package choose from the CPUs it may use and finds
        idle (the default).

    Examples
    --------
    >>> import nwb_lrnn
    >>> nwb_lrnn.set_num_threads(1)      # e.g. many fits side by side
    >>> nwb_lrnn.set_num_threads(None)   # back to the automatic choice
    """
    global _user_threads
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int or None, got {n!r}")
    _user_threads = n


def _env_threads() -> int | None:
    for name in (_ENV, "OMP_NUM_THREADS"):
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                n = int(raw.split(",")[0])
            except ValueError:
                continue
            if n >= 1:
                return n
    return None


def _cgroup_quota(root: Path = Path("/")) -> float | None:
    """CPUs allowed by the cgroup's CPU quota (v2 ``cpu.max`` or v1 CFS), or None (no quota).

    ``root`` is the file system root (tests point it at a fake tree).
    """
    try:
        text = (root / "proc/self/cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier, controllers, rel = parts
        rel = rel.lstrip("/")
        if hier == "0" and controllers == "":  # cgroup v2
            for base in (root / "sys/fs/cgroup" / rel, root / "sys/fs/cgroup"):
                try:
                    quota, period = (base / "cpu.max").read_text().split()[:2]
                except (OSError, ValueError):
                    continue
                if quota == "max":
                    return None
                return int(quota) / int(period)
        elif "cpu" in controllers.split(","):  # cgroup v1
            v1 = root / "sys/fs/cgroup"
            for base in (v1 / "cpu,cpuacct" / rel, v1 / "cpu" / rel, v1 / "cpu,cpuacct",
                         v1 / "cpu"):
                try:
                    quota = int((base / "cpu.cfs_quota_us").read_text())
                    period = int((base / "cpu.cfs_period_us").read_text())
                except (OSError, ValueError):
                    continue
                return None if quota <= 0 else quota / period
    return None


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota (>= 1)."""
    n = len(_affinity())
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


def _cpu_times(cpus: set[int]) -> tuple[float, float] | None:
    """(busy, total) jiffies summed over ``cpus`` from /proc/stat, or None where unreadable."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0.0
    seen = 0
    for line in lines:
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        try:
            idx = int(name[3:])
        except ValueError:
            continue
        if idx not in cpus:
            continue
        vals = [float(v) for v in fields[:8]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)  # idle + iowait
        total += sum(vals)
        busy += sum(vals) - idle
        seen += 1
    return (busy, total) if seen else None


def idle_cpus(interval: float = IDLE_SAMPLE_S) -> float:
    """CPUs of this process's affinity mask left idle by other work over the next ``interval`` s.

    Counts the busy time of the CPUs in ``/proc/stat`` while this thread sleeps, less this
    process's own CPU time in that interval. Where ``/proc/stat`` cannot be read, the one-minute
    load average stands in.
    """
    cpus = _affinity()
    t0 = _cpu_times(cpus)
    own0 = time.process_time()
    if t0 is None:
        try:
            return max(0.0, len(cpus) - os.getloadavg()[0])
        except OSError:
            return float(len(cpus))
    time.sleep(interval)
    t1 = _cpu_times(cpus)
    own = time.process_time() - own0
    if t1 is None or t1[1] <= t0[1]:
        return float(len(cpus))
    busy_frac = (t1[0] - t0[0]) / (t1[1] - t0[1])  # of all CPUs in the mask
    others = max(0.0, busy_frac * len(cpus) - own / interval)
    return max(0.0, len(cpus) - others)


def _torch_default() -> int:
    return len(_affinity())


def get_num_threads(work: float | None = None) -> int:
    """The thread count :func:`threads_for` would use for ``work`` elements per operation.

    ``work=None`` means work large enough for every usable CPU (as the fixed-point search).
    """
    if _user_threads is not None:
        return _user_threads
    env = _env_threads()
    if env is not None:
        return env
    usable = usable_cpus()
    if usable == 1:
        return 1
    cap = usable if work is None else max(1, min(usable, int(work // WORK_PER_THREAD)))
    if cap == 1:
        return 1
    return max(1, min(cap, int(idle_cpus() + 0.25)))


def _user_set_torch(torch) -> bool:
    """True when the caller changed torch's thread count from its default."""
    return torch.get_num_threads() != _torch_default()


@contextmanager
def threads_for(work: float | None = None) -> Iterator[_Recheck]:
    """Run the enclosed torch work on :func:`get_num_threads` threads; restore torch's count after.

    Yields a :class:`_Recheck` whose ``__call__`` a long loop calls now and then: it lowers the
    count when other processes have started using the CPUs since.
    """
    import torch

    before = torch.get_num_threads()
    if _user_threads is None and _env_threads() is None and _user_set_torch(torch):
        yield _Recheck(None)  # the caller chose with torch.set_num_threads: leave it
        return
    n = get_num_threads(work)
    if n != before:
        torch.set_num_threads(n)
    try:
        yield _Recheck(n if (n > 1 and _user_threads is None and _env_threads() is None)
                       else None)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class _Recheck:
    """Called between epochs: lowers the thread count if the CPUs are no longer idle."""

    def __init__(self, n: int | None):
        self.n = n
        self._last = time.monotonic()

    def __call__(self) -> None:
        if self.n is None or self.n <= 1 or time.monotonic() - self._last < RECHECK_S:
            return
        self._last = time.monotonic()
        free = int(idle_cpus() + 0.25)
        # our own threads sleep while idle_cpus samples, so `free` counts the CPUs others leave
        if free < self.n:
            import torch

            self.n = max(1, free)
            torch.set_num_threads(self.n)
