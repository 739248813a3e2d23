#!/usr/bin/env python3
"""Folder throughput against the bare invoke-bound rate, the naive per-image script, and scaling.

All figures come from one run on this machine (ratios, not absolute times, are the point):
1. bare invoke rate of an interpreter configuration vs `Model.classify_many` over 50 photos
   with the same configuration (target >= 0.9x: decoding hidden behind inference). Shown for 1
   XNNPACK thread, where a core is left for decoding as the NPU would leave the CPU free, and for
   the default thread count, where decoding competes with inference for the same cores.
2. `bredos-npu classify DIR` (one process) vs the naive script (one process per image), over the
   same 50 photos (target >= 5x).
3. `--parallel 2` against `--parallel 1` with 1 thread each.
Usage: python benchmarks/bench_bulk.py [--images 50]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

import bredos_npu
from bredos_npu.models import bundled

HERE = Path(__file__).resolve().parent
SOURCES = [bundled.sample_image(), *sorted((HERE.parent / "tests" / "data" / "images").glob("*"))]


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` 640x480 JPEGs made from the test images (camera-like input)."""
    photos = []
    for number in range(count):
        with Image.open(SOURCES[number % len(SOURCES)]) as image:
            photo = image.convert("RGB").resize((640, 480)).rotate(number % 7)
        path = folder / f"photo_{number:03d}.jpg"
        photo.save(path, quality=90)
        photos.append(path)
    return photos


def bare_rate(model: bredos_npu.Model, image: Path, calls: int) -> float:
    tensor = model.preprocess(image)
    for _ in range(5):
        model.invoke(tensor)
    started = time.perf_counter()
    for _ in range(calls):
        model.invoke(tensor)
    return calls / (time.perf_counter() - started)


def folder_rate(model: bredos_npu.Model, photos: list[Path], parallel: int = 1) -> float:
    list(model.classify_many(photos[:5], top_k=5, parallel=parallel))  # warm-up, clones built
    started = time.perf_counter()
    results = list(model.classify_many(photos, top_k=5, parallel=parallel))
    assert all(r.ok for r in results)
    return len(photos) / (time.perf_counter() - started)


def process_seconds(commands: list[list[str]]) -> float:
    started = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        photos = make_photos(folder, args.images)
        print(f"{args.images} photos of 640x480, model {bundled.default_model().name}, CPU backend")

        for threads in (1, None):
            model = bredos_npu.load(backend="cpu", threads=threads)
            bare = bare_rate(model, photos[0], args.images * 2)
            bulk = folder_rate(model, photos)
            print(f"  {model.backend.threads} thread(s): bare invoke {bare:6.1f}/s, classify_many "
                  f"{bulk:6.1f} images/s = {bulk / bare:.2f}x the invoke-bound rate (target >= 0.90)")

        one = bredos_npu.load(backend="cpu", threads=1)
        serial, parallel = folder_rate(one, photos, 1), folder_rate(one, photos, 2)
        print(f"  --parallel 2 x 1 thread: {parallel:.1f} images/s vs {serial:.1f} with one "
              f"interpreter = {parallel / serial:.2f}x ({parallel / serial / 2:.0%} scaling efficiency)")

        model_path = str(bundled.default_model())
        naive = process_seconds([[sys.executable, str(HERE / "naive_classify.py"), model_path, str(p)]
                                 for p in photos])
        ours = process_seconds([[sys.executable, "-m", "bredos_npu", "classify", "-b", "cpu", "-k", "5",
                                 "--jsonl", str(folder / "out.jsonl"), str(folder)]])
        print(f"  naive script, one process per image: {naive:.2f} s; `bredos-npu classify DIR`: "
              f"{ours:.2f} s (process start included) = {naive / ours:.1f}x faster (target >= 5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
