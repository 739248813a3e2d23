"""Object detection post-processing for SSD-style models ending in TFLite_Detection_PostProcess.

The four outputs (boxes, classes, scores, count) come in different orders from different
exporters, so they are identified by shape, then by name, then by their values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from bredos_npu.tasks.registry import (
    OutputShape,
    Task,
    TaskOption,
    output_shapes,
    require_single_input,
    wrong_task,
)

if TYPE_CHECKING:
    from PIL import Image

    from bredos_npu.runtime.model import Model

UNKNOWN_LABELS = frozenset({"???", "n/a", ""})


class BBox(NamedTuple):
    """A box in pixels of the original image, origin at its top-left corner, x to the right and
    y down: left/top inclusive, right/bottom exclusive (floats: boxes are not rounded)."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def width(self) -> float:
        """xmax - xmin, in pixels of the original image."""
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        """ymax - ymin, in pixels of the original image."""
        return self.ymax - self.ymin


class Detection(NamedTuple):
    """One detected object: class id (0-based index into the label file), label, score 0..1, and
    its :class:`BBox` in pixels of the original image."""

    id: int
    label: str
    score: float
    bbox: BBox


class DetectionOutputs(NamedTuple):
    """Positions of each output in the model's output list."""

    boxes: int
    classes: int
    scores: int
    count: int


def identify_outputs(outputs: Sequence[OutputShape], values: Sequence[np.ndarray] | None = None
                     ) -> DetectionOutputs | None:
    """Which output is which, or None when the model does not look like an SSD detector."""
    if len(outputs) != 4:
        return None
    boxes = [i for i, o in enumerate(outputs) if len(o.shape) == 3 and o.shape[-1] == 4]
    count = [i for i, o in enumerate(outputs) if int(np.prod(o.shape)) == 1]
    pair = [i for i in range(4) if i not in boxes + count]
    if len(boxes) != 1 or len(count) != 1 or len(pair) != 2:
        return None
    classes, scores = _order_pair(pair, outputs, values)
    return DetectionOutputs(boxes[0], classes, scores, count[0])


def _order_pair(pair: list[int], outputs: Sequence[OutputShape],
                values: Sequence[np.ndarray] | None) -> tuple[int, int]:
    names = [outputs[i].name.lower() for i in pair]
    for i, name in zip(pair, names, strict=True):
        if "class" in name:
            return i, pair[1 - pair.index(i)]
        if "score" in name:
            return pair[1 - pair.index(i)], i
    # TF1 exports: TFLite_Detection_PostProcess:1 is classes, :2 is scores.
    suffixes = [re.search(r":(\d+)$", n) for n in names]
    if all(suffixes):
        ordered = sorted(zip(pair, [int(s.group(1)) for s in suffixes if s], strict=True), key=lambda p: p[1])
        return ordered[0][0], ordered[1][0]
    if values is not None:
        integral = [bool(np.all(np.mod(values[i], 1) == 0)) for i in pair]
        if integral[1] and not integral[0]:
            return pair[1], pair[0]
    return pair[0], pair[1]


def to_detections(boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, count: float,
                  image_size: tuple[int, int], labels: Mapping[int, str] | None = None,
                  threshold: float = 0.5, max_results: int | None = None) -> list[Detection]:
    """Detections above ``threshold``, best first, boxes scaled to ``image_size`` (width, height).

    ``boxes`` rows are (ymin, xmin, ymax, xmax) in 0..1 of the resized input; since the input was
    resized without keeping the aspect ratio, the same fractions apply to the original image.
    Class ids whose label is unknown ("???", "n/a") are skipped.
    """
    width, height = image_size
    found = []
    for i in range(min(int(count), len(scores.reshape(-1)))):
        score = float(scores.reshape(-1)[i])
        class_id = int(classes.reshape(-1)[i])
        if score < threshold:
            continue
        label = labels.get(class_id, str(class_id)) if labels is not None else str(class_id)
        if label.strip() in UNKNOWN_LABELS:
            continue
        ymin, xmin, ymax, xmax = np.clip(boxes.reshape(-1, 4)[i], 0.0, 1.0)
        found.append(Detection(class_id, label, score,
                               BBox(float(xmin * width), float(ymin * height),
                                    float(xmax * width), float(ymax * height))))
    found.sort(key=lambda d: -d.score)
    return found[:max_results] if max_results is not None else found


# --- the detect task ------------------------------------------------------------------------

def detection_outputs(model: Model, values: list[np.ndarray] | None = None) -> DetectionOutputs:
    """Which output is which; ModelError when the model is not an SSD-style detector."""
    require_single_input(model, "detect")
    found = identify_outputs(output_shapes(model), values)
    if found is None:
        raise wrong_task(model, "detect", "an SSD-style detector with TFLite_Detection_PostProcess")
    return found


def check(model: Model) -> None:
    detection_outputs(model)


def fits(outputs: Sequence[OutputShape]) -> bool:
    return identify_outputs(outputs) is not None


def postprocess(model: Model, outputs: list[np.ndarray], size: tuple[int, int], threshold: float = 0.5,
                max_results: int | None = None) -> list[Detection]:
    """Detections with score >= ``threshold``, best first, boxes in pixels of the original image."""
    which = detection_outputs(model, outputs)
    return to_detections(outputs[which.boxes], outputs[which.classes], outputs[which.scores],
                         float(outputs[which.count].reshape(-1)[0]), size, model.label_map,
                         threshold, max_results)


def _box(d: Detection) -> dict[str, float]:
    return {k: round(v, 1) for k, v in d.bbox._asdict().items()}


def document(found: list[Detection]) -> dict[str, Any]:
    return {"detections": [{"id": d.id, "label": d.label, "score": round(d.score, 6), "box": _box(d)}
                           for d in found]}


def csv_rows(found: list[Detection]) -> list[dict[str, Any]]:
    return [{"id": d.id, "label": d.label, "score": round(d.score, 6), **_box(d)}
            for d in found] or [{}]  # a row even without detections


def text(found: list[Detection]) -> str:
    if not found:
        return "  nothing above the threshold"
    from bredos_npu.text import for_terminal

    labels = [for_terminal(d.label) for d in found]
    width = max(len(label) for label in labels)
    return "\n".join(f"  {label:<{width}}  {d.score * 100:5.1f}%  box x {d.bbox.xmin:.0f}-{d.bbox.xmax:.0f}"
                     f", y {d.bbox.ymin:.0f}-{d.bbox.ymax:.0f}"
                     for label, d in zip(labels, found, strict=True))


def draw(picture: Image.Image, found: list[Detection]) -> Image.Image:
    from bredos_npu.tasks.draw import draw_detections

    return draw_detections(picture, found)


TASK = Task(
    name="detect",
    summary="Find objects in IMAGES with an SSD-style detector (default: SSD MobileNet V1, COCO).",
    description="Boxes are in pixels of the original image; labels come from the label file or the "
                "model.",
    check=check, fits=fits, postprocess=postprocess, result=list[Detection], document=document,
    csv_fields=("id", "label", "score", "xmin", "ymin", "xmax", "ymax"), csv_rows=csv_rows, text=text,
    draw=draw, default_model="ssd-mobilenet-v1", trackable=True,
    options=(
        TaskOption("threshold", float, 0.5, "Minimum score of a detection.",
                   minimum=0.0, maximum=1.0),
        TaskOption("max_results", int, None, "At most N detections per image.", minimum=1),
    ),
)
