"""Pictures stay readable: checked on the rendered pixels, not on the drawing code's own numbers.

Backgrounds are plain grey, so (near) white pixels can only be label text and pure palette colours only
legend swatches.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from bredos_npu.tasks.detect import BBox, Detection
from bredos_npu.tasks.draw import draw_detections, draw_pose, draw_segmentation
from bredos_npu.tasks.pose import KEYPOINTS, Keypoint
from bredos_npu.tasks.segment import pascal_palette

GREY = (90, 90, 90)
DOT = (230, 57, 70)  # keypoint dots


def grey(width: int = 400, height: int = 300) -> Image.Image:
    return Image.new("RGB", (width, height), GREY)


def mask_of(picture: Image.Image, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(np.asarray(picture) == colour, axis=-1)


def white(picture: Image.Image) -> np.ndarray:
    """Text pixels: white, or nearly where the font is anti-aliased (no fill colour is this light)."""
    return np.asarray(picture).min(axis=-1) >= 200


def labels_survive(detections: list[Detection], size: tuple[int, int] = (400, 300)) -> None:
    """Every label's text is as complete with the others drawn as when drawn alone, and the best
    score's label is exactly where it is when drawn alone."""
    alone = [white(draw_detections(grey(*size), [d])) for d in detections]
    together = white(draw_detections(grey(*size), detections))
    assert together.sum() >= 0.97 * sum(a.sum() for a in alone), "a label covers another one"
    best = max(range(len(detections)), key=lambda i: detections[i].score)
    assert np.array_equal(together & alone[best], alone[best]), "the best label moved or was covered"


def test_labels_of_boxes_sharing_a_corner_do_not_overprint():
    labels_survive([Detection(17, "cat", 0.62, BBox(50, 60, 200, 150)),
                    Detection(18, "dog", 0.91, BBox(50, 60, 300, 250)),
                    Detection(1, "bicycle", 0.55, BBox(50, 60, 250, 200))])


def test_labels_at_the_top_edge_go_inside_and_still_do_not_overprint():
    labels_survive([Detection(17, "cat", 0.62, BBox(0, 0, 200, 150)),
                    Detection(18, "dog", 0.91, BBox(0, 0, 300, 250))])


def test_labels_near_the_right_edge_stay_in_the_picture():
    picture = draw_detections(grey(), [Detection(1, "a rather long label", 0.8, BBox(380, 100, 399, 150))])
    columns = np.nonzero(white(picture).any(axis=0))[0]
    assert columns.size and columns.max() < 399 and columns.min() < 380  # moved left, not cut off


def test_segmentation_has_a_legend_with_each_colour_and_name():
    classes = np.zeros((300, 400), dtype=np.int32)
    classes[:, 200:] = 15  # person
    classes[:100, :100] = 8  # cat
    picture = draw_segmentation(grey(), classes, [(15, "person"), (8, "cat")])
    palette = pascal_palette()
    for class_id in (15, 8):
        swatch = np.argwhere(mask_of(picture, tuple(int(c) for c in palette[class_id])))
        # the overlay is blended, so the pure colour is only the legend's swatch, bottom-left
        assert len(swatch) >= 36, class_id
        assert swatch[:, 0].min() > 150 and swatch[:, 1].max() < 200, class_id
    text = np.argwhere(white(picture))
    assert len(text) > 20 and text[:, 0].min() > 150 and text[:, 1].max() < 200
    absent = tuple(int(c) for c in palette[12])
    assert not mask_of(picture, absent).any()


def test_segmentation_without_classes_has_no_legend():
    picture = draw_segmentation(grey(), np.zeros((300, 400), dtype=np.int32), [(0, "background")])
    assert np.array_equal(np.asarray(picture), np.asarray(grey()))


def keypoints(score: float, **overrides: float) -> list[Keypoint]:
    return [Keypoint(name, 100.0 + 10 * i, 150.0, overrides.get(name, score))
            for i, name in enumerate(KEYPOINTS)]


def test_pose_without_a_person_draws_a_note_and_no_dots():
    picture = draw_pose(grey(), keypoints(0.1, nose=0.35))  # one confident point is no skeleton
    assert not mask_of(picture, DOT).any()
    text = np.argwhere(white(picture))
    assert len(text) > 20 and text[:, 0].max() < 60 and text[:, 1].max() < 200  # top-left note
    changed = np.argwhere(np.any(np.asarray(picture) != GREY, axis=-1))
    assert changed[:, 0].max() < 60 and changed[:, 1].max() < 200  # nothing else drawn


def test_pose_with_a_person_draws_the_skeleton_and_no_note():
    picture = draw_pose(grey(), keypoints(0.1, left_shoulder=0.8, right_shoulder=0.7))
    dots = np.argwhere(mask_of(picture, DOT))
    assert len(dots) and set(np.unique(dots[:, 1] // 10)) <= {14, 15, 16, 17}  # x 150 and 160
    assert not white(picture).any()
