"""Semantic segmentation post-processing (DeepLab-style per-pixel class maps)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from PIL import Image

from bredos_npu.tasks.pose import KEYPOINTS
from bredos_npu.tasks.registry import OutputShape, Task, require_single_input, wrong_task

if TYPE_CHECKING:
    from bredos_npu.runtime.model import Model


class ClassShare(NamedTuple):
    """A class present in the map: id, label and share of the image's pixels (0..1)."""

    id: int
    label: str
    share: float


class Segmentation(NamedTuple):
    """classes: HxW int32 class ids at the original image's size (row y, column x, origin at the
    top-left); shares: the classes present, largest first."""

    classes: np.ndarray
    shares: list[ClassShare]


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


# --- the segment task -----------------------------------------------------------------------

def check(model: Model) -> None:
    """Raise ModelError unless the model gives one per-pixel class map (at least 1/4 of the input)."""
    require_single_input(model, "segment")
    shape = model.outputs[0].shape
    width, height = model.input_size
    spatial = len(shape) in (3, 4) and shape[0] == 1 and shape[1] * 4 >= height and shape[2] * 4 >= width
    if len(model.outputs) != 1 or not spatial:
        raise wrong_task(model, "segment", "a segmentation model with one per-pixel class map")


def fits(outputs: Sequence[OutputShape]) -> bool:
    if len(outputs) != 1:
        return False
    shape = outputs[0].shape
    return len(shape) in (3, 4) and min(shape[1:3]) > 1 and int(np.prod(shape)) != len(KEYPOINTS) * 3


def postprocess(model: Model, outputs: list[np.ndarray], size: tuple[int, int]) -> Segmentation:
    """The class map at the original image's ``size`` (width, height) and the share of each class."""
    classes = resize_map(class_map(outputs[0]), size)
    return Segmentation(classes, class_shares(classes, model.label_map))


def document(result: Segmentation) -> dict[str, Any]:
    return {"classes": [{"id": s.id, "label": s.label, "share": round(s.share, 6)} for s in result.shares]}


def csv_rows(result: Segmentation) -> list[dict[str, Any]]:
    return [{"id": s.id, "label": s.label, "share": round(s.share, 6)} for s in result.shares]


def text(result: Segmentation) -> str:
    from bredos_npu.text import for_terminal

    return "\n".join(f"  {for_terminal(s.label):<14} {s.share * 100:5.1f}% of pixels" for s in result.shares)


def draw(picture: Image.Image, result: Segmentation) -> Image.Image:
    from bredos_npu.tasks.draw import draw_segmentation

    return draw_segmentation(picture, result.classes, [(s.id, s.label) for s in result.shares])


TASK = Task(
    name="segment",
    summary="Label every pixel of IMAGES (default: DeepLab V3 MobileNet V2, Pascal VOC classes).",
    description="The share of pixels per class; the picture is a coloured overlay with a legend.",
    check=check, fits=fits, postprocess=postprocess, result=Segmentation, document=document,
    csv_fields=("id", "label", "share"), csv_rows=csv_rows, text=text, draw=draw,
    default_model="deeplabv3-mnv2-dm05", verb="segmented",
)
