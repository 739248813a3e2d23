"""Single-person pose post-processing (MoveNet: 17 COCO keypoints)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

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
    """A body keypoint in pixels of the original image, with its confidence 0..1."""

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
