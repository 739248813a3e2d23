"""Pictures of results: boxes, class overlays and skeletons drawn on the original image.

Everything written on a picture stays readable: detection labels never cover each other (the
best score keeps its place, the others move down), a class overlay carries its colour legend,
and a pose picture without a person says so instead of showing stray dots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bredos_npu.tasks.detect import Detection
from bredos_npu.tasks.pose import MIN_KEYPOINT_SCORE, SKELETON, Keypoint, person_found
from bredos_npu.tasks.segment import pascal_palette

COLOURS = ((230, 57, 70), (42, 157, 143), (233, 196, 106), (38, 70, 83), (244, 162, 97),
           (131, 56, 236), (58, 134, 255), (255, 0, 110))
TEXT_COLOUR = (255, 255, 255)
PANEL_COLOUR = (32, 32, 32)  # behind legends and notes
NO_PERSON = "no person found"


class Rect(NamedTuple):
    """A rectangle in pixels: left, top, right, bottom (right/bottom exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    def overlaps(self, other: Rect) -> bool:
        return (self.left < other.right and other.left < self.right
                and self.top < other.bottom and other.top < self.bottom)

    def moved_to(self, left: int, top: int) -> Rect:
        return Rect(left, top, left + self.right - self.left, top + self.bottom - self.top)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def _sizes(picture: Image.Image) -> tuple[int, ImageFont.ImageFont]:
    """Line width and font scaled to the picture, so labels read the same on any photo."""
    return max(2, round(min(picture.size) / 200)), _font(max(12, round(min(picture.size) / 30)))


def _text_rect(canvas: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, pad: int) -> Rect:
    """The rectangle ``text`` needs with ``pad`` pixels around it, placed at (0, 0)."""
    left, top, right, bottom = canvas.textbbox((0, 0), text, font=font)
    return Rect(0, 0, right - left + 2 * pad, bottom - top + 2 * pad)


def _draw_label(canvas: ImageDraw.ImageDraw, rect: Rect, text: str, font: ImageFont.ImageFont,
                pad: int, fill: tuple[int, int, int]) -> None:
    canvas.rectangle((rect.left, rect.top, rect.right - 1, rect.bottom - 1), fill=fill)
    left, top, _, _ = canvas.textbbox((0, 0), text, font=font)
    canvas.text((rect.left + pad - left, rect.top + pad - top), text, fill=TEXT_COLOUR, font=font)


def place_labels(boxes: Sequence[Rect], sizes: Sequence[Rect], width: int, height: int) -> list[Rect]:
    """Where each box's label goes, in the order given (best first): above the box's top-left
    corner, or inside it when there is no room above; a label that would cover one placed
    before moves down below it (as far as the picture allows)."""
    placed: list[Rect] = []
    for box, size in zip(boxes, sizes, strict=True):
        label_w, label_h = size.right, size.bottom
        left = max(0, min(box.left, width - label_w))
        top = box.top - label_h if box.top >= label_h else box.top
        rect = size.moved_to(left, top)
        while hit := [p for p in placed if rect.overlaps(p)]:
            below = max(p.bottom for p in hit)
            if below + label_h > height:  # no room left: it stays, drawn under the better ones
                break
            rect = size.moved_to(left, below)
        placed.append(rect)
    return placed


def draw_detections(image: Image.Image, detections: Sequence[Detection]) -> Image.Image:
    """A copy of ``image`` with a box, label and score per detection.

    Labels never cover each other where the picture has room: the best score keeps its place
    above its box and the others move down; where they must overlap the best is drawn on top.
    """
    picture = image.convert("RGB")
    canvas = ImageDraw.Draw(picture)
    line, font = _sizes(picture)
    ranked = sorted(detections, key=lambda d: -d.score)
    texts = [f"{d.label} {d.score:.0%}" for d in ranked]
    boxes = [Rect(round(d.bbox.xmin), round(d.bbox.ymin), round(d.bbox.xmax), round(d.bbox.ymax))
             for d in ranked]
    for detection, box in zip(ranked, boxes, strict=True):
        canvas.rectangle(box, outline=COLOURS[detection.id % len(COLOURS)], width=line)
    labels = place_labels(boxes, [_text_rect(canvas, t, font, line) for t in texts], *picture.size)
    for detection, text, rect in reversed(list(zip(ranked, texts, labels, strict=True))):
        _draw_label(canvas, rect, text, font, line, COLOURS[detection.id % len(COLOURS)])
    return picture


def draw_segmentation(image: Image.Image, classes: np.ndarray,
                      labels: Sequence[tuple[int, str]] | None = None, opacity: float = 0.5) -> Image.Image:
    """The image blended with the class map in Pascal VOC colours (background, class 0, left
    clear), with a legend in the bottom-left corner: a swatch of each class's colour (unblended)
    and its name. ``labels``: (class id, name) pairs in legend order; default: the ids present."""
    picture = image.convert("RGB")
    palette = pascal_palette()
    overlay = Image.fromarray(palette[np.clip(classes, 0, 255)], "RGB")
    mask = Image.fromarray(((classes > 0) * int(255 * opacity)).astype(np.uint8), "L")
    picture.paste(overlay, (0, 0), mask)
    if labels is None:
        labels = [(int(i), str(int(i))) for i in np.unique(classes)]
    entries = [(i, name) for i, name in labels if 0 < i < len(palette)]
    if entries:
        _draw_legend(picture, [(tuple(int(c) for c in palette[i]), name) for i, name in entries])
    return picture


def _draw_legend(picture: Image.Image, entries: Sequence[tuple[tuple[int, ...], str]]) -> None:
    canvas = ImageDraw.Draw(picture)
    line, font = _sizes(picture)
    rows = [_text_rect(canvas, name, font, line) for _, name in entries]
    row_h = max(r.bottom for r in rows)
    swatch = row_h - 2 * line
    width = min(picture.width, swatch + line + max(r.right for r in rows) + 2 * line)
    height = min(picture.height, row_h * len(entries) + 2 * line)
    top = picture.height - height
    canvas.rectangle((0, top, width - 1, picture.height - 1), fill=PANEL_COLOUR)
    for row, (colour, name) in enumerate(entries):
        y = top + line + row * row_h
        canvas.rectangle((2 * line, y + line, 2 * line + swatch - 1, y + line + swatch - 1), fill=colour)
        left, text_top, _, _ = canvas.textbbox((0, 0), name, font=font)
        canvas.text((2 * line + swatch + line - left, y + line - text_top), name, fill=TEXT_COLOUR, font=font)


def draw_pose(image: Image.Image, keypoints: Sequence[Keypoint],
              min_score: float = MIN_KEYPOINT_SCORE) -> Image.Image:
    """The image with the skeleton between confident keypoints and a dot on each; when the
    keypoints do not describe a person (see ``person_found``), only a note saying so."""
    picture = image.convert("RGB")
    canvas = ImageDraw.Draw(picture)
    line, font = _sizes(picture)
    if not person_found(keypoints, min_score):
        _draw_label(canvas, _text_rect(canvas, NO_PERSON, font, line), NO_PERSON, font, line, PANEL_COLOUR)
        return picture
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
