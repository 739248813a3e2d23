"""Semantic segmentation post-processing (DeepLab-style per-pixel class maps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from PIL import Image


class ClassShare(NamedTuple):
    """A class present in the map: id, label and share of the image's pixels (0..1)."""

    id: int
    label: str
    share: float


def class_map(output: np.ndarray) -> np.ndarray:
    """HxW class ids from an output of shape [1,H,W] (ids) or [1,H,W,C] (scores per class)."""
    squeezed = output[0] if output.ndim >= 3 and output.shape[0] == 1 else output
    if squeezed.ndim == 3:
        squeezed = squeezed[..., 0] if squeezed.shape[-1] == 1 else np.argmax(squeezed, axis=-1)
    return squeezed.astype(np.int32)


def resize_map(classes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The class map at ``size`` (width, height) of the original image, nearest neighbour."""
    if classes.shape[::-1] == tuple(size):
        return classes
    image = Image.fromarray(classes.astype(np.int32), mode="I")
    return np.asarray(image.resize(size, Image.Resampling.NEAREST), dtype=np.int32)


def class_shares(classes: np.ndarray, labels: Mapping[int, str] | None = None) -> list[ClassShare]:
    """Classes present, largest share first."""
    ids, counts = np.unique(classes, return_counts=True)
    total = classes.size
    shares = [ClassShare(int(i), (labels or {}).get(int(i), str(int(i))), float(c) / total)
              for i, c in zip(ids, counts, strict=True)]
    return sorted(shares, key=lambda s: -s.share)


def pascal_palette(count: int = 256) -> np.ndarray:
    """The Pascal VOC colour map: class id → RGB (bit-interleaved, as in the VOC devkit)."""
    palette = np.zeros((count, 3), dtype=np.uint8)
    for index in range(count):
        value, colour = index, [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                colour[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette[index] = colour
    return palette
