#!/usr/bin/env python3
"""`bredos_npu.quantize` on the per-channel int8 MobileNetV2 (TF2 post-training quantization).

Targets: top-1 agreement with the source model >= 0.85 on photos not used for calibration, and
100% of convolution MACs predicted on the NPU (bredos-npu inspect; no NPU figure is measured).

Images: the natural photos of the test data plus the public-domain/CC0 photos that ship inside
scikit-image's wheel (skimage/data: astronaut, chelsea, coffee, rocket, ...). Each photo gives
12 crops and flips; photos are split between calibration and evaluation (alternately, by name),
so no evaluation image is a crop of a calibration photo. Crops of one photo are not independent
of each other: the effective evaluation sample is closer to the number of photos than of crops.
Usage: pip install scikit-image && python benchmarks/bench_quantize.py [--count 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

import bredos_npu
from bredos_npu.models import bundled

HERE = Path(__file__).resolve().parent
MODEL = HERE.parent / "tests" / "data" / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
TEST_PHOTOS = ("cats_and_dogs.jpg", "grace_hopper.jpg", "sunflower.bmp", "bird_segmentation.bmp",
               "squat.bmp")
SKIMAGE_PHOTOS = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg",
                  "clock_motion.png", "grass.png", "gravel.png", "hubble_deep_field.jpg",
                  "retina.jpg", "motorcycle_left.png", "color.png", "ihc.png", "brick.png",
                  "coins.png", "moon.png")


def photos() -> list[Path]:
    try:
        import skimage
    except ImportError:
        sys.exit("this benchmark needs scikit-image's sample photos: pip install scikit-image")
    data = Path(skimage.__file__).parent / "data"
    found = [data / name for name in SKIMAGE_PHOTOS if (data / name).exists()]
    images = HERE.parent / "tests" / "data" / "images"
    return sorted([bundled.sample_image(), *(images / n for n in TEST_PHOTOS), *found],
                  key=lambda p: p.name)


def crops(photo: Path, folder: Path) -> None:
    """Whole (centre square), four corner and a centre crop at 70%, one at 50%, each flipped."""
    with Image.open(photo) as image:
        rgb = image.convert("RGB")
    width, height = rgb.size
    side = min(width, height)
    boxes = [((width - side) // 2, (height - side) // 2, side)]
    inner = int(side * 0.7)
    boxes += [(0, 0, inner), (width - inner, 0, inner), (0, height - inner, inner),
              (width - inner, height - inner, inner), ((width - inner) // 2, (height - inner) // 2, inner)]
    half = side // 2
    boxes.append(((width - half) // 2, (height - half) // 2, half))
    for number, (x, y, size) in enumerate(boxes[:6]):
        crop = rgb.crop((x, y, x + size, y + size)).resize((256, 256), Image.Resampling.BILINEAR)
        crop.save(folder / f"{photo.stem}_{number}.png")
        crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / f"{photo.stem}_{number}f.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--report", help="also write the report JSON here")
    args = parser.parse_args()
    sources = photos()
    with tempfile.TemporaryDirectory() as work:
        calibration, evaluation = Path(work, "calibration"), Path(work, "evaluation")
        calibration.mkdir()
        evaluation.mkdir()
        for number, photo in enumerate(sources):
            crops(photo, calibration if number % 2 == 0 else evaluation)
        started = time.perf_counter()
        result = bredos_npu.quantize(MODEL, Path(work, "out.tflite"), calibration, count=args.count,
                                     evaluation=evaluation, progress=lambda m: print(m, file=sys.stderr))
        seconds = time.perf_counter() - started
    print(f"model: {MODEL.name} (per-channel int8), {len(sources)} photos: "
          f"{(len(sources) + 1) // 2} for calibration, {len(sources) // 2} for evaluation")
    print(f"images: {result.calibration_images} calibration crops, {result.held_out_images} "
          "evaluation crops")
    print("top-1 agreement and mean |score diff| on the evaluation crops; the method is chosen "
          "on the calibration crops (cal.)")
    for m in result.methods:
        mark = "  <- chosen" if m.method == result.chosen else ""
        print(f"{m.method:<38} top-1 {m.top1_agreement:.3f}  mean |score diff| "
              f"{m.mean_abs_score_diff:.5f}  (cal. top-1 {m.calibration_top1_agreement:.3f}){mark}")
    print(f"float model (dequantized source) top-1 agreement {result.float_top1_agreement:.3f}")
    print(f"conv MACs on the NPU (inspect, predicted): {result.npu_mac_share_before:.1%} before, "
          f"{result.npu_mac_share_after:.1%} after")
    best = next(m.top1_agreement for m in result.methods if m.method == result.chosen)
    print(f"target top-1 agreement >= 0.85 (chosen method): {'met' if best >= 0.85 else 'NOT met'} "
          f"({best:.3f}); "
          f"target 100% of MACs on the NPU: {'met' if result.npu_mac_share_after >= 0.9995 else 'NOT met'}")
    print(f"quantize took {seconds:.1f} s")
    if args.report:
        Path(args.report).write_text(json.dumps(result.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
