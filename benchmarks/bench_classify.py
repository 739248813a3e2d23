#!/usr/bin/env python3
"""Overhead of the classify path over the bare interpreter, and CLI cold start.

Measured in one run on one machine, so the ratios hold even where absolute times are noisy:
blocks of bare ``interpreter.invoke()`` and of ``model.classify(...)`` alternate, and the
medians of the per-call times are compared. The classify path is measured for three inputs:
an HxWx3 array already at the input size, a decoded PIL image (resize + quantize), and a file
path (decode + EXIF + resize + quantize). Target: classify(array) <= 1.10x bare invoke.

Usage: python benchmarks/bench_classify.py [--model PATH] [--image PATH] [--backend cpu]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

import bredos_npu
from bredos_npu.models import bundled

TARGET = 1.10


def per_call_ms(action: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        action()
    return (time.perf_counter() - started) / calls * 1e3


def interleaved(actions: dict[str, Callable[[], object]], blocks: int, calls: int) -> dict[str, float]:
    """Median per-call time of each action over alternating blocks."""
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for action in actions.values():
        per_call_ms(action, 5)  # warm-up: first-invoke costs, caches
    for _ in range(blocks):
        for name, action in actions.items():
            samples[name].append(per_call_ms(action, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def cold_start_ms(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bredos_npu", *args], check=True,
                       capture_output=True)
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(bundled.default_model()))
    parser.add_argument("--image", default=str(bundled.sample_image()))
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()

    model = bredos_npu.load(args.model, args.backend)
    width, height = model.input_size
    decoded = Image.open(args.image).convert("RGB")
    at_size = np.asarray(decoded.resize((width, height), Image.Resampling.BILINEAR))
    tensor = model.preprocess(args.image)
    interpreter, index = model.interpreter, model.inputs[0].index

    def bare() -> None:
        interpreter.set_tensor(index, tensor.reshape(model.inputs[0].shape))
        interpreter.invoke()
        interpreter.get_tensor(model.outputs[0].index)

    medians = interleaved({
        "bare invoke": bare,
        "classify(array at input size)": lambda: model.classify(at_size),
        "classify(PIL image)": lambda: model.classify(decoded),
        "classify(path)": lambda: model.classify(args.image),
    }, args.blocks, args.calls)

    print(f"model {model.path.name}, backend {model.backend.name}, {model.backend.threads} threads, "
          f"{args.blocks} blocks x {args.calls} calls, medians")
    base = medians["bare invoke"]
    for name, value in medians.items():
        ratio = value / base
        verdict = ""
        if name == "classify(array at input size)":
            verdict = f"  (target <= {TARGET:.2f}x: {'met' if ratio <= TARGET else 'NOT met'})"
        print(f"  {name:<32} {value:8.3f} ms  {ratio:5.2f}x{verdict}")

    cli = ["classify", "--backend", args.backend, "--model", args.model, args.image]
    print(f"  cold start `bredos-npu classify` (process start to result, median of 5): "
          f"{cold_start_ms(cli, 5):.0f} ms")
    print(f"  cold start `python -c pass` for comparison: "
          f"{statistics.median(_python_start() for _ in range(5)):.0f} ms")
    return 0


def _python_start() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - started) * 1e3


if __name__ == "__main__":
    sys.exit(main())
