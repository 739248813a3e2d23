#!/usr/bin/env python3
"""What a cluster worker pays to decode ``--ship``ped photos: decoded one by one up front (as the
worker did) vs handed to the pipeline as file objects (its decoder threads, JPEG draft decoding).

No Ray here: the worker's batch step alone, in this process. COUNT phone-sized JPEGs (4000x3000,
made from the tests' cats_and_dogs.jpg) are detected with SSD MobileNet on the CPU, in batches of
4 as the cluster runner sends them, ROUNDS times each way; medians and their ratio are printed.
Usage: python benchmarks/bench_ship_decode.py [COUNT] [ROUNDS]
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SSD = ROOT / "tests/data/models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
PETS = ROOT / "tests/data/images/cats_and_dogs.jpg"


def photos(count: int) -> list[bytes]:
    with Image.open(PETS) as small:
        big = small.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return [out.getvalue()] * count


def decoded_up_front(model, batch: list[bytes]) -> list:
    pictures = []
    for data in batch:
        picture = Image.open(io.BytesIO(data))
        picture.load()
        pictures.append(picture)
    return list(model.run_task_many("detect", pictures))


def through_the_pipeline(model, batch: list[bytes]) -> list:
    return list(model.run_task_many("detect", [io.BytesIO(data) for data in batch]))


def seconds(step, model, shipped: list[bytes]) -> float:
    started = time.perf_counter()
    for start in range(0, len(shipped), 4):
        step(model, shipped[start:start + 4])
    return time.perf_counter() - started


def main() -> int:
    import bredos_npu

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    model = bredos_npu.load(SSD, "cpu")
    shipped = photos(count)
    old = [r.value for r in decoded_up_front(model, shipped[:1])]
    new = [r.value for r in through_the_pipeline(model, shipped[:1])]
    print(f"same detections: {[d.label for d in old[0]] == [d.label for d in new[0]]}")
    before = statistics.median(seconds(decoded_up_front, model, shipped) for _ in range(rounds))
    after = statistics.median(seconds(through_the_pipeline, model, shipped) for _ in range(rounds))
    print(f"{count} shipped 4000x3000 JPEGs, SSD on the CPU, batches of 4, median of {rounds}:")
    print(f"  decoded up front, one by one: {before * 1e3 / count:7.1f} ms/image")
    print(f"  through the pipeline:         {after * 1e3 / count:7.1f} ms/image")
    print(f"  ratio: {before / after:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
