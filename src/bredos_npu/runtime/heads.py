"""Turning a model's dequantized outputs into task results, with checks that the model fits.

Each check raises ModelError with one sentence when a model is used for the wrong task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from bredos_npu.errors import ModelError, Reason
from bredos_npu.tasks.classify import is_score_vector
from bredos_npu.tasks.detect import Detection, DetectionOutputs, OutputShape, identify_outputs, to_detections
from bredos_npu.tasks.pose import KEYPOINTS, Keypoint, to_keypoints
from bredos_npu.tasks.segment import ClassShare, class_map, class_shares, resize_map

if TYPE_CHECKING:
    from bredos_npu.runtime.model import Model


class Segmentation(NamedTuple):
    """classes: HxW class ids at the original image size; shares: classes present, largest first."""

    classes: np.ndarray
    shares: list[ClassShare]


def _shapes(model: Model) -> str:
    return ", ".join("x".join(map(str, o.shape)) for o in model.outputs)


def guess_task(model: Model) -> str | None:
    """The command this model's outputs look made for: classify, detect, segment or pose."""
    outputs = model.outputs
    shapes = [OutputShape(n, o.shape) for n, o in zip(model.output_names, outputs, strict=True)]
    if identify_outputs(shapes) is not None:
        return "detect"
    if len(outputs) != 1:
        return None
    shape = outputs[0].shape
    if int(np.prod(shape)) == len(KEYPOINTS) * 3:
        return "pose"
    if is_score_vector(shape):
        return "classify"
    if len(shape) in (3, 4) and min(shape[1:3]) > 1:
        return "segment"
    return None


def wrong_task(model: Model, task: str, what: str) -> ModelError:
    """'X is not <what> (outputs ...)', with the command that fits the model when there is one."""
    fits = guess_task(model)
    fits = fits if fits != task else None
    return ModelError(f"{model.path} is not {what} (outputs {_shapes(model)})",
                      f"it looks made for the {fits} task" if fits else None, Reason.WRONG_TASK,
                      path=model.path, task=task, fits=fits)


def require_single_input(model: Model, task: str) -> None:
    if len(model.inputs) != 1:
        raise ModelError(f"{model.path} has {len(model.inputs)} inputs: {task} needs a model with "
                         "one image input.", reason=Reason.WRONG_TASK, path=model.path, task=task, fits=None)
    model.check_image_input()


def detection_outputs(model: Model, values: list[np.ndarray] | None = None) -> DetectionOutputs:
    require_single_input(model, "detect")
    shapes = [OutputShape(n, o.shape) for n, o in zip(model.output_names, model.outputs, strict=True)]
    found = identify_outputs(shapes, values)
    if found is None:
        raise wrong_task(model, "detect", "an SSD-style detector with TFLite_Detection_PostProcess")
    return found


def detections(model: Model, outputs: list[np.ndarray], size: tuple[int, int], threshold: float,
               max_results: int | None) -> list[Detection]:
    which = detection_outputs(model, outputs)
    return to_detections(outputs[which.boxes], outputs[which.classes], outputs[which.scores],
                         float(outputs[which.count].reshape(-1)[0]), size, model.label_map,
                         threshold, max_results)


def require_segmenter(model: Model) -> None:
    require_single_input(model, "segment")
    shape = model.outputs[0].shape
    width, height = model.input_size
    spatial = len(shape) in (3, 4) and shape[0] == 1 and shape[1] * 4 >= height and shape[2] * 4 >= width
    if len(model.outputs) != 1 or not spatial:
        raise wrong_task(model, "segment", "a segmentation model with one per-pixel class map")


def segmentation(model: Model, outputs: list[np.ndarray], size: tuple[int, int]) -> Segmentation:
    require_segmenter(model)
    classes = resize_map(class_map(outputs[0]), size)
    return Segmentation(classes, class_shares(classes, model.label_map))


def require_pose(model: Model) -> None:
    require_single_input(model, "pose")
    if len(model.outputs) != 1 or int(np.prod(model.outputs[0].shape)) != len(KEYPOINTS) * 3:
        raise wrong_task(model, "pose", "a single-pose model with MoveNet's 1x1x17x3 keypoints")


def keypoints(model: Model, outputs: list[np.ndarray], size: tuple[int, int]) -> list[Keypoint]:
    require_pose(model)
    return to_keypoints(outputs[0], size)
