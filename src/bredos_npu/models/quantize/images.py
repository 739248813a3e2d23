"""Calibration and evaluation images: found in a folder, decoded, resized, split honestly.

Agreement is only meaningful on images the quantizer did not see, so one folder is split
into a calibration part and a held-out part (every fourth image, in name order), unless a
separate evaluation folder is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bredos_npu.errors import ImageError, UsageError
from bredos_npu.inputs import IMAGE_SUFFIXES
from bredos_npu.tasks.image import open_image, resize_for_input

MIN_CALIBRATION = 8
MIN_HELD_OUT = 4
HOLD_OUT_EVERY = 4


class ImageSets(NamedTuple):
    """Resized HxWxC uint8 pixels: for calibration, and held out for evaluation."""

    calibration: list[np.ndarray]
    held_out: list[np.ndarray]
    calibration_files: list[Path]
    held_out_files: list[Path]


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files of a folder (by extension, recursively, in name order)."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(f"Calibration folder not found: {root}: pass a folder of images.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f"{root} holds no images (.jpg, .png, .bmp, ...): calibration needs photos "
                         "like the ones the model will see.")
    return files


def load(files: list[Path], size: tuple[int, int], channels: int) -> list[np.ndarray]:
    width, height = size
    return [resize_for_input(open_image(f, size), width, height, channels) for f in files]


def image_sets(calibration: str | os.PathLike[str], count: int, size: tuple[int, int],
               channels: int, evaluation: str | os.PathLike[str] | None = None) -> ImageSets:
    """Up to ``count`` images for calibration and the held-out images, decoded and resized."""
    if count < MIN_CALIBRATION:
        raise UsageError(f"A count of {count} is too small: calibration needs at least "
                         f"{MIN_CALIBRATION} images.")
    files = image_files(calibration)
    if evaluation is not None:
        held = image_files(evaluation)
        calibrate = files[:count]
    else:
        held = files[HOLD_OUT_EVERY - 1::HOLD_OUT_EVERY]
        chosen = set(held)
        calibrate = [f for f in files if f not in chosen][:count]
    if len(calibrate) < MIN_CALIBRATION or len(held) < MIN_HELD_OUT:
        raise ImageError(f"Too few images: {len(files)} in {calibration}"
                         + (f" and {len(held)} in {evaluation}" if evaluation is not None else "")
                         + f"; quantizing needs at least {MIN_CALIBRATION} for calibration and "
                         f"{MIN_HELD_OUT} held out to measure the accuracy.")
    return ImageSets(load(calibrate, size, channels), load(held, size, channels), calibrate, held)
