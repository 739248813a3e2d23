#!/usr/bin/env python3
"""What the child-process delegate probe costs in ``load()``: first run vs cached verdict.

Builds the tests' C delegate that takes the model's RESHAPE (tests/delegates/test_delegate.c,
needs `cc`), then loads the bundled MobileNet V2 on ``npu`` with it: RUNS times with an empty
verdict cache (the probe's child process runs each time), RUNS times with the verdict cached, and
RUNS times on ``cpu`` (no delegate, no probe) as the reference. Medians are printed with the ratio.
On a board the first probe also pays the NPU's graph compilation (~0.4 s); here the delegate runs
the claimed node on the CPU, so these are the probe's own costs (a Python start, one model load,
one invoke). Usage: python benchmarks/bench_probe.py [RUNS]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed_load(backend: str, delegate: str | None) -> float:
    from bredos_npu.runtime.model import load

    started = time.perf_counter()
    load(None, backend, delegate=delegate)
    return (time.perf_counter() - started) * 1e3


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        print("needs a C compiler (cc) to build the test delegate")
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        library = Path(scratch) / "libclaiming.so"
        subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-DCLAIM_BUILTIN=22", "-o", str(library),
                        str(ROOT / "tests" / "delegates" / "test_delegate.c")], check=True)
        verdicts = Path(scratch) / "verdicts"
        os.environ["BREDOS_NPU_PROBE_CACHE"] = str(verdicts)
        timed_load("cpu", None)  # imports and the first model read are nobody's per-load cost
        first = []
        for _ in range(runs):
            shutil.rmtree(verdicts, ignore_errors=True)
            first.append(timed_load("npu", str(library)))
        cached = [timed_load("npu", str(library)) for _ in range(runs)]
        cpu = [timed_load("cpu", None) for _ in range(runs)]
    first_ms, cached_ms, cpu_ms = (statistics.median(t) for t in (first, cached, cpu))
    print(f"load() on npu, verdict not cached (probe runs): {first_ms:7.1f} ms (median of {runs})")
    print(f"load() on npu, verdict cached:                  {cached_ms:7.1f} ms")
    print(f"load() on cpu (no delegate, no probe):          {cpu_ms:7.1f} ms")
    print(f"probe cost, first run: {first_ms - cached_ms:.1f} ms ({first_ms / cached_ms:.1f}x a cached "
          f"load); cached: {cached_ms - cpu_ms:+.1f} ms against cpu (delegate loading included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
