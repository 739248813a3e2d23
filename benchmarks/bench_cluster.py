#!/usr/bin/env python3
"""The cluster path's cost on one machine, and the memory of an idle Ray head node.

All figures come from one run on this machine:
1. per-image time of a local `classify_many` (1 interpreter, 1 XNNPACK thread) vs the same over a
   one-node Ray cluster on 127.0.0.1 with one worker of 1 thread, paths and --ship: the difference
   is the cluster path's overhead per image (scheduling, object transfer, result return);
2. the private memory (USS) of a head node started as `bredos-npu cluster start --head` would
   (`ray start --head --include-dashboard=false`), after it settles.
Usage: python benchmarks/bench_cluster.py [--images 60]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback only
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bulk import make_photos

import bredos_npu
from bredos_npu.cluster.connect import wait_until_reachable

MODEL = bredos_npu.load().path


def local_ms(photos: list[Path]) -> float:
    model = bredos_npu.load(MODEL, "cpu", threads=1)
    list(model.classify_many(photos[:5]))  # warm-up
    started = time.perf_counter()
    results = list(model.classify_many(photos))
    assert all(r.ok for r in results)
    return (time.perf_counter() - started) * 1e3 / len(photos)


def cluster_ms(address: str, photos: list[Path], ship: bool) -> float:
    from bredos_npu.cluster.runner import run_on_cluster

    list(run_on_cluster(address, MODEL, "classify", photos[:5], {"top_k": 5}, ship=ship, actors=1,
                        load_options={"backend": "cpu", "threads": 1}))  # warm-up: workers start
    started = time.perf_counter()
    run = run_on_cluster(address, MODEL, "classify", photos, {"top_k": 5}, ship=ship, actors=1,
                         load_options={"backend": "cpu", "threads": 1})
    results = list(run)
    assert all(r.ok for r in results)
    return (time.perf_counter() - started) * 1e3 / len(photos)


def uss_mib(root_pid: int) -> float:
    """Private memory (USS: Private_Clean + Private_Dirty) of a process tree, in MiB."""
    pids, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
            pids.add(int(child))
            frontier.append(int(child))
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Private_"))
    return total / 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60)
    args = parser.parse_args()
    port = free_port()
    head = subprocess.Popen([sys.executable, "-m", "bredos_npu", "cluster", "start", "--head", "--port",
                             str(port), "--block"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_reachable(f"127.0.0.1:{port}", 120)
        time.sleep(10)  # let the head settle before measuring it idle
        idle = uss_mib(head.pid)
        with tempfile.TemporaryDirectory() as folder:
            photos = make_photos(Path(folder), args.images)
            here = local_ms(photos)
            paths = cluster_ms(f"127.0.0.1:{port}", photos, ship=False)
            shipped = cluster_ms(f"127.0.0.1:{port}", photos, ship=True)
    finally:
        head.terminate()
        head.wait(timeout=60)
    print(f"{args.images} photos 640x480, bundled MobileNet V2, 1 worker x 1 thread, this machine:")
    print(f"  local classify_many      {here:7.2f} ms/image")
    print(f"  cluster, shared paths    {paths:7.2f} ms/image  overhead {paths - here:+.2f} ms "
          f"({paths / here:.2f}x)")
    print(f"  cluster, --ship bytes    {shipped:7.2f} ms/image  overhead {shipped - here:+.2f} ms "
          f"({shipped / here:.2f}x)")
    print(f"  idle head node (ray start --head --include-dashboard=false): {idle:.0f} MiB USS")


if __name__ == "__main__":
    main()
