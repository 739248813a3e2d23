"""Single-person pose post-processing (MoveNet: 17 COCO keypoints)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from bredos_npu.tasks.registry import OutputShape, Task, require_single_input, wrong_task

if TYPE_CHECKING:
    from PIL import Image

    from bredos_npu.runtime.model import Model

KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# Pairs of keypoint indices joined when drawing the skeleton.
SKELETON = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12),
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)


# A keypoint is drawn from this score on; a person is found when the two ends of at least one
# bone of the skeleton reach it (so the picture shows at least one line of the skeleton).
MIN_KEYPOINT_SCORE = 0.3


class Keypoint(NamedTuple):
    """A body keypoint: ``x``/``y`` in pixels of the original image (origin at the top-left, y
    down) and its confidence ``score`` in 0..1. ``name`` is one of :data:`KEYPOINTS`."""

    name: str
    x: float
    y: float
    score: float


def to_keypoints(output: np.ndarray, image_size: tuple[int, int]) -> list[Keypoint]:
    """17 keypoints from MoveNet's [1,1,17,3] output of (y, x, score) in 0..1 of the input."""
    rows = output.reshape(-1, 3)
    if rows.shape[0] != len(KEYPOINTS):
        raise ValueError(f"expected {len(KEYPOINTS)} keypoints, got {rows.shape[0]}")
    width, height = image_size
    return [Keypoint(name, float(x * width), float(y * height), float(score))
            for name, (y, x, score) in zip(KEYPOINTS, rows.astype(np.float64), strict=True)]


def person_found(points: Sequence[Keypoint], min_score: float = MIN_KEYPOINT_SCORE) -> bool:
    """Whether the keypoints describe a person: both ends of some bone of SKELETON score at least
    ``min_score``. MoveNet always returns 17 points; on an image without a person they are noise
    with low scores (on a cat photo: one point at 0.3, the rest 0.06-0.25)."""
    return any(points[a].score >= min_score and points[b].score >= min_score for a, b in SKELETON)


# --- the pose task --------------------------------------------------------------------------

def fits(outputs: Sequence[OutputShape]) -> bool:
    return len(outputs) == 1 and int(np.prod(outputs[0].shape)) == len(KEYPOINTS) * 3


def check(model: Model) -> None:
    """Raise ModelError unless the model gives MoveNet's 17 keypoints."""
    require_single_input(model, "pose")
    if not fits([OutputShape("", o.shape) for o in model.outputs]):
        raise wrong_task(model, "pose", "a single-pose model with MoveNet's 1x1x17x3 keypoints")


def postprocess(model: Model, outputs: list[np.ndarray], size: tuple[int, int]) -> list[Keypoint]:
    """The 17 keypoints in pixels of the original image of ``size`` (width, height)."""
    return to_keypoints(outputs[0], size)


def document(points: list[Keypoint]) -> dict[str, Any]:
    """``person``: whether the keypoints describe a person (:func:`person_found`); the 17
    keypoints are listed either way."""
    return {"person": person_found(points),
            "keypoints": [{"name": p.name, "x": round(p.x, 1), "y": round(p.y, 1), "score": round(p.score, 4)}
                          for p in points]}


def csv_rows(points: list[Keypoint]) -> list[dict[str, Any]]:
    return [{"name": p.name, "x": round(p.x, 1), "y": round(p.y, 1), "score": round(p.score, 4)}
            for p in points]


def text(points: list[Keypoint]) -> str:
    """The keypoints, or "no person found" when they do not describe one (as the picture says)."""
    if not person_found(points):
        return f"  no person found (no two joined keypoints score {MIN_KEYPOINT_SCORE:.2f} or more)"
    return "\n".join(f"  {p.name:<15} x {p.x:6.1f}  y {p.y:6.1f}  score {p.score:.2f}"
                     + ("" if p.score >= MIN_KEYPOINT_SCORE else "  (not drawn: low score)") for p in points)


def draw(picture: Image.Image, points: list[Keypoint]) -> Image.Image:
    from bredos_npu.tasks.draw import draw_pose

    return draw_pose(picture, points)


TASK = Task(
    name="pose",
    summary="Find the 17 body keypoints of the person in IMAGES (default: MoveNet Lightning).",
    description="The picture shows the skeleton, or says that no person was found.",
    check=check, fits=fits, postprocess=postprocess, result=list[Keypoint], document=document,
    csv_fields=("name", "x", "y", "score"), csv_rows=csv_rows, text=text, draw=draw,
    default_model="movenet-lightning", uses_labels=False,
)
