#!/usr/bin/env python3
"""Static inspection time of every model in the test data (target: well under a second each).

Each model is inspected 5 times in this process; the median is reported with the file size.
Usage: python benchmarks/bench_inspect.py [MODEL...]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import bredos_npu
from bredos_npu.models import bundled

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    models = [Path(p) for p in sys.argv[1:]] or [
        bundled.default_model(), *sorted((ROOT / "tests" / "data" / "models").glob("*.tflite"))]
    bredos_npu.inspect(models[0])  # imports and schema loading are not per-model costs
    worst = 0.0
    for model in models:
        try:
            times = []
            for _ in range(5):
                started = time.perf_counter()
                result = bredos_npu.inspect(model)
                times.append(time.perf_counter() - started)
        except bredos_npu.BredosNpuError as error:
            print(f"{model.name:<50} error: {error}")
            continue
        median = statistics.median(times)
        worst = max(worst, median)
        print(f"{model.name:<50} {model.stat().st_size / 1e6:6.2f} MB  {median * 1e3:7.1f} ms  "
              f"{result.summary}")
    print(f"slowest: {worst * 1e3:.1f} ms (target: well under 1000 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
