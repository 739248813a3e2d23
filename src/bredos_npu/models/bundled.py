"""The small model and sample image shipped inside the package."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_NAME = "mobilenet_v2_1.0_224_quant.tflite"
SAMPLE_IMAGE_NAME = "cat.bmp"


DATA = Path(__file__).parent / "data"  # not importlib.resources: it costs start-up time


def data_path(name: str) -> Path:
    return DATA / name


def default_model() -> Path:
    """MobileNet V2 1.0 224, per-tensor uint8 (Coral test data, Apache-2.0)."""
    return data_path(DEFAULT_MODEL_NAME)


def sample_image() -> Path:
    """A cat photo the default model classifies as 286 "Egyptian cat"."""
    return data_path(SAMPLE_IMAGE_NAME)
