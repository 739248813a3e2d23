"""Pictures of results: boxes, class overlays and skeletons drawn on the original image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bredos_npu.tasks.detect import Detection
from bredos_npu.tasks.pose import SKELETON, Keypoint
from bredos_npu.tasks.segment import pascal_palette

COLOURS = ((230, 57, 70), (42, 157, 143), (233, 196, 106), (38, 70, 83), (244, 162, 97),
           (131, 56, 236), (58, 134, 255), (255, 0, 110))


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def draw_detections(image: Image.Image, detections: Sequence[Detection]) -> Image.Image:
    """A copy of ``image`` with a box, label and score per detection."""
    picture = image.convert("RGB")
    canvas = ImageDraw.Draw(picture)
    line = max(2, round(min(picture.size) / 200))
    font = _font(max(12, round(min(picture.size) / 30)))
    for detection in detections:
        colour = COLOURS[detection.id % len(COLOURS)]
        box = detection.bbox
        canvas.rectangle((box.xmin, box.ymin, box.xmax, box.ymax), outline=colour, width=line)
        text = f"{detection.label} {detection.score:.0%}"
        left, top, right, bottom = canvas.textbbox((box.xmin, box.ymin), text, font=font)
        lift = max(0, bottom - top + 2 * line)
        y = box.ymin - lift if box.ymin >= lift else box.ymin
        canvas.rectangle((box.xmin, y, box.xmin + right - left + 2 * line, y + lift), fill=colour)
        canvas.text((box.xmin + line, y + line - (top - box.ymin)), text, fill=(255, 255, 255), font=font)
    return picture


def draw_segmentation(image: Image.Image, classes: np.ndarray, opacity: float = 0.5) -> Image.Image:
    """The image blended with the class map in Pascal VOC colours (background left clear)."""
    picture = image.convert("RGB")
    colours = pascal_palette()[np.clip(classes, 0, 255)]
    overlay = Image.fromarray(colours, "RGB")
    mask = Image.fromarray(((classes > 0) * int(255 * opacity)).astype(np.uint8), "L")
    picture.paste(overlay, (0, 0), mask)
    return picture


def draw_pose(image: Image.Image, keypoints: Sequence[Keypoint], min_score: float = 0.3) -> Image.Image:
    """The image with the skeleton between confident keypoints and a dot on each."""
    picture = image.convert("RGB")
    canvas = ImageDraw.Draw(picture)
    line = max(2, round(min(picture.size) / 150))
    for a, b in SKELETON:
        if keypoints[a].score >= min_score and keypoints[b].score >= min_score:
            canvas.line((keypoints[a].x, keypoints[a].y, keypoints[b].x, keypoints[b].y),
                        fill=(42, 157, 143), width=line)
    for point in keypoints:
        if point.score >= min_score:
            r = line * 1.5
            canvas.ellipse((point.x - r, point.y - r, point.x + r, point.y + r), fill=(230, 57, 70))
    return picture
