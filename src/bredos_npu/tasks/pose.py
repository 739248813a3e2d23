"""Single-person pose post-processing (MoveNet: 17 COCO keypoints)."""

from __future__ import annotations

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
