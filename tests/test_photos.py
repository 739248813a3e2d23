"""Phone-sized photos: results in pixels of the full-size, upright original, whatever the decode.

Large JPEGs are decoded at a reduced scale (Pillow's draft mode) and phone photos are stored
sideways with an EXIF orientation. The references are the same scenes at their original size,
run without draft and mapped to the large image by hand (multiplied by the scale factor).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from conftest import IMAGES, MODELS
from PIL import Image, ImageOps

import bredos_npu

SSD = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
DEEPLAB = MODELS / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
MOVENET = MODELS / "movenet_single_pose_lightning_ptq.tflite"
PETS, BIRD, SQUAT = IMAGES / "cats_and_dogs.jpg", IMAGES / "bird_segmentation.bmp", IMAGES / "squat.bmp"

# What EXIF orientation o asks a viewer to do is undone here: stored = upright.transpose(...).
STORE_SIDEWAYS = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
                  8: Image.Transpose.ROTATE_270}


def photo(source: Path, folder: Path, width: int, fmt: str, orientation: int | None) -> tuple[Path, float]:
    """``source`` scaled to ``width`` and stored as a camera would: (file, scale factor)."""
    with Image.open(source) as original:
        upright = original.convert("RGB")
    scale = width / upright.width
    upright = upright.resize((width, round(upright.height * scale)), Image.Resampling.BICUBIC)
    stored = upright.transpose(STORE_SIDEWAYS[orientation]) if orientation else upright
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    path = folder / f"{source.stem}-{width}-{orientation}.{fmt}"
    options = {"quality": 90} if fmt == "jpg" else {"compress_level": 1}
    stored.save(path, exif=exif, **options)
    with Image.open(path) as check:  # the file really shows the upright scene
        assert ImageOps.exif_transpose(check).size == upright.size
    return path, scale


def iou(a, b) -> float:
    width = min(a.xmax, b.xmax) - max(a.xmin, b.xmin)
    height = min(a.ymax, b.ymax) - max(a.ymin, b.ymin)
    inter = max(0.0, width) * max(0.0, height)
    return inter / (a.width * a.height + b.width * b.height - inter)


def scaled(box, factor: float):
    return type(box)(*(v * factor for v in box))


@pytest.fixture(scope="module")
def detector():
    return bredos_npu.load(SSD, backend="cpu")


@pytest.mark.parametrize(("fmt", "width", "orientation"), [
    ("jpg", 2400, None), ("jpg", 4800, 6), ("jpg", 8000, 3), ("png", 3000, 8)])
def test_detections_are_in_pixels_of_the_upright_original(detector, tmp_path, fmt, width, orientation):
    path, scale = photo(PETS, tmp_path, width, fmt, orientation)
    reference = [d for d in detector.detect(PETS, threshold=0.5)]
    assert len(reference) == 3  # three cats in the small original
    found = detector.detect(path, threshold=0.3)
    for expected in reference:
        box = scaled(expected.bbox, scale)
        best = max((iou(box, d.bbox) for d in found if d.label == expected.label), default=0.0)
        assert best >= 0.85, (expected, found)


def test_cli_json_and_picture_use_the_original_pixels(detector, capfd, tmp_path):
    path, _ = photo(PETS, tmp_path, 4000, "jpg", 6)
    picture = tmp_path / "boxes.png"
    outcome = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", path, "--json", "-o", picture)
    assert outcome.code == 0, outcome.err
    boxes = [d["box"] for d in json.loads(outcome.out)["results"][0]["detections"]]
    api = [d.bbox for d in detector.detect(path)]
    assert [tuple(b.values()) for b in boxes] == [tuple(round(v, 1) for v in b) for b in api]
    assert max(b["xmax"] for b in boxes) > 0.8 * 4000  # a cat at the right edge, not at 1/4
    with Image.open(picture) as drawn:
        assert drawn.size == (4000, 2000)
    text = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", path)
    first = api[0]
    assert f"box x {first.xmin:.0f}-{first.xmax:.0f}, y {first.ymin:.0f}-{first.ymax:.0f}" in text.out


def test_pose_keypoints_follow_the_exif_rotation(tmp_path):
    model = bredos_npu.load(MOVENET, backend="cpu")
    path, scale = photo(SQUAT, tmp_path, 2500, "jpg", 6)
    reference = [p for p in model.pose(SQUAT) if p.score >= 0.6]
    found = {p.name: p for p in model.pose(path)}
    assert len(reference) >= 8
    for point in reference:
        near = found[point.name]
        assert abs(near.x - point.x * scale) < 0.04 * 2500, (point, near)
        assert abs(near.y - point.y * scale) < 0.04 * 2500 * 610 / 500, (point, near)


def test_segmentation_map_covers_the_upright_original(tmp_path):
    model = bredos_npu.load(DEEPLAB, backend="cpu")
    path, scale = photo(BIRD, tmp_path, 2052, "jpg", 8)
    small, big = model.segment(BIRD), model.segment(path)
    assert big.classes.shape == (2052, 2052)
    bird = {s.id: s.share for s in small.shares}[3]
    assert abs({s.id: s.share for s in big.shares}[3] - bird) < 0.03

    def centre(classes: np.ndarray) -> np.ndarray:
        return np.argwhere(classes == 3).mean(axis=0)

    # rotated by 90 degrees the wrong way, the centre would move by ~a quarter of the side
    assert np.abs(centre(big.classes) / scale - centre(small.classes)).max() < 0.03 * 513


def test_bytes_in_memory_decode_like_the_file(detector, tmp_path):
    """A binary file object (bytes shipped to a cluster worker, say) takes the file's path: draft
    decoding, EXIF rotation, results in the original's pixels; a broken one is named."""
    import io

    path, _ = photo(PETS, tmp_path, 4800, "jpg", 6)
    shipped = io.BytesIO(path.read_bytes())
    assert detector.detect(shipped) == detector.detect(path)
    [one] = detector.detect_many(io.BytesIO(path.read_bytes()))  # one input, not one per line
    assert one.value == detector.detect(path)
    broken = io.BytesIO(b"\xff\xd8 not really a JPEG")
    broken.name = "holiday.jpg"
    [failed] = detector.detect_many([broken])
    assert failed.error == ("holiday.jpg is not an image Pillow can read (corrupt or unsupported "
                            "format): use a JPEG, PNG or BMP file.")
