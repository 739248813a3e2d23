"""Object detection post-processing for SSD-style models ending in TFLite_Detection_PostProcess.

The four outputs (boxes, classes, scores, count) come in different orders from different
exporters, so they are identified by shape, then by name, then by their values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

UNKNOWN_LABELS = frozenset({"???", "n/a", ""})


class BBox(NamedTuple):
    """A box in pixels of the original image: left/top inclusive, right/bottom exclusive."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin


class Detection(NamedTuple):
    """One detected object: class id (0-based index into the label file), label, score 0..1, box."""

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


class OutputShape(NamedTuple):
    name: str
    shape: tuple[int, ...]


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
