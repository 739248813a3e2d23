"""CPU clusters of big.LITTLE SoCs, to run XNNPACK on the fast cores only.

RK3588: cpu0-3 are Cortex-A55 (capacity ~414), cpu4-7 Cortex-A76 (capacity 1024). Spreading
XNNPACK threads over both clusters makes every layer wait for the slow cores.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from bredos_npu.errors import Reason, UsageError
from bredos_npu.system.root import SystemRoot

NPU_CORES = 3  # the RK3588's NPU has three cores: one interpreter each


class CpuPlan(NamedTuple):
    """Threads for XNNPACK and the CPUs to pin them to (empty: no pinning).

    ``cpus``: the kernel's CPU numbers (as in /sys/devices/system/cpu/cpuN). ``reason``: why these
    threads and cores, in words ("fastest cluster by capacity: cpus 4-7", "all cores are alike").
    """

    threads: int
    cpus: tuple[int, ...]
    reason: str


def list_cpus(root: SystemRoot) -> list[int]:
    folder = root.path("/sys/devices/system/cpu")
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := re.fullmatch(r"cpu(\d+)", p.name)))


def read_int(root: SystemRoot, system_path: str) -> int | None:
    """The integer in the file ``system_path`` below ``root`` (sysfs style), None when it is
    missing or holds no integer."""
    text = root.read_text(system_path)
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


def cpu_speeds(root: SystemRoot) -> tuple[dict[int, int], str]:
    """Each CPU's relative speed and its source: ``cpu_capacity``, else ``cpuinfo_max_freq``."""
    cpus = list_cpus(root)
    for source in ("cpu_capacity", "cpufreq/cpuinfo_max_freq"):
        speeds = {c: read_int(root, f"/sys/devices/system/cpu/cpu{c}/{source}") for c in cpus}
        if cpus and all(v is not None for v in speeds.values()):
            return {c: int(v) for c, v in speeds.items() if v is not None}, source
    return {}, ""


def fastest_cluster(speeds: dict[int, int]) -> tuple[int, ...]:
    """The CPUs that share the highest speed value."""
    if not speeds:
        return ()
    top = max(speeds.values())
    return tuple(sorted(c for c, v in speeds.items() if v == top))


def plan_threads(root: SystemRoot, threads: int | None = None) -> CpuPlan:
    """Thread count and pinning for the CPU backend.

    By default: one thread per core of the fastest cluster, pinned to those cores. ``threads``
    overrides the count (pinning is kept when it fits in the cluster). CPUs this process may not
    run on (``taskset``, cgroups) are left out.
    """
    check_threads(threads, root)
    speeds, source = cpu_speeds(root)
    # A fake tree's CPUs are not this machine's: only a real root is checked against affinity.
    allowed = _allowed_cpus() if root.is_real else None
    cluster = tuple(c for c in fastest_cluster(speeds) if allowed is None or c in allowed)
    heterogeneous = len(set(speeds.values())) > 1
    if heterogeneous and cluster:
        count = threads or len(cluster)
        pinned = cluster if count <= len(cluster) else ()
        reason = f"fastest cluster by {source}: cpus {_span(cluster)}"
        return CpuPlan(count, pinned, reason)
    available = len(allowed) if allowed else (len(list_cpus(root)) or os.cpu_count() or 1)
    return CpuPlan(threads or available, (), "all cores are alike" if speeds else "no cpu topology")


def usable_cpus() -> int:
    """CPUs this process may run on (``taskset``, cgroups), at least 1."""
    return len(_allowed_cpus() or ()) or os.cpu_count() or 1


def check_threads(threads: int | None, root: SystemRoot) -> None:
    """UsageError unless ``threads`` is None or 1 to the CPUs there are (more only waste memory,
    and tens of thousands crash XNNPACK)."""
    if threads is None:
        return
    limit = max(usable_cpus(), len(list_cpus(root)))
    if threads < 1:
        raise UsageError(f"threads must be 1 or more, not {threads}", reason=Reason.BAD_VALUE,
                         option="threads", value=threads)
    if threads > limit:
        raise UsageError(f"threads must be at most {limit} here (one per CPU core), not {threads}",
                         reason=Reason.BAD_VALUE, option="threads", value=threads, limit=limit)


def parallel_limit() -> int:
    """The most interpreters that can run at once here: one per CPU core, or per NPU core."""
    return max(usable_cpus(), NPU_CORES)


def check_parallel(parallel: int) -> None:
    """UsageError when ``parallel`` > :func:`parallel_limit` (each interpreter holds
    the model's memory; more than can run at once only costs memory)."""
    limit = parallel_limit()
    if parallel > limit:
        raise UsageError(f"parallel must be at most {limit} here (one interpreter per CPU core, "
                         f"or per NPU core), not {parallel}", reason=Reason.BAD_VALUE,
                         option="parallel", value=parallel, limit=limit)


@contextmanager
def pinned(cpus: tuple[int, ...]) -> Iterator[None]:
    """Run the block on ``cpus`` (CPU numbers); threads started inside inherit them.

    A no-op when ``cpus`` is empty or the affinity cannot be set (a container may forbid it).
    """
    if not cpus:
        yield
        return
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpus)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _allowed_cpus() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _span(cpus: tuple[int, ...]) -> str:
    if cpus and cpus == tuple(range(cpus[0], cpus[-1] + 1)):
        return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else str(cpus[0])
    return ",".join(map(str, cpus))
