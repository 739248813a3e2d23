"""What each task needs from the server: a fit check, post-processing and its JSON document.

The documents are the per-image documents of the CLI's ``--json`` (without the file name), so a
script can switch between ``bredos-npu detect --json`` and ``POST /v1/detect`` without changes.
The tasks themselves come from :mod:`bredos_npu.tasks.registry`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from bredos_npu.runtime.model import Model
from bredos_npu.tasks import registry

TASKS = registry.names()


class Options(NamedTuple):
    """Per-request options: ``values``, the task's own keyword options (e.g. top_k for classify,
    threshold and max_results for detect), checked by the task; ``mask``: add the class map as a
    PNG to a segmentation answer (a rendering option of the server)."""

    values: dict[str, Any]
    mask: bool = False


def check(task: str, model: Model) -> None:
    """Raise ModelError with one sentence unless ``model`` fits ``task``."""
    registry.get(task).check(model)


def guess(model: Model) -> str | None:
    """The task a model's outputs look made for, or None."""
    return registry.guess(registry.output_shapes(model))


def postprocess(task: str, model: Model, outputs: list[np.ndarray], size: tuple[int, int],
                options: Options) -> Any:
    """The task's result for dequantized ``outputs`` of an image of ``size`` (width, height)."""
    return registry.get(task).postprocess(model, outputs, size, **options.values)


def document(task: str, value: Any, options: Options) -> dict[str, Any]:
    """The CLI's ``--json`` document for one result (plus a mask picture when asked)."""
    found = registry.get(task).document(value)
    if task == "segment" and options.mask:
        found["mask"] = mask_png(value.classes)
    return found


def mask_png(classes: np.ndarray) -> str:
    """The class map as a base64 RGBA PNG: Pascal colours, background (class 0) transparent."""
    from PIL import Image

    from bredos_npu.tasks.segment import pascal_palette

    palette = pascal_palette()
    rgba = np.zeros((*classes.shape, 4), dtype=np.uint8)
    rgba[..., :3] = palette[np.clip(classes, 0, 255)]
    rgba[..., 3] = np.where(classes > 0, 150, 0)
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG", optimize=False, compress_level=1)
    return base64.b64encode(out.getvalue()).decode("ascii")


def options(task: str, **values: Any) -> Options:
    """``task``'s options: ``values`` checked, the others at their defaults."""
    return Options(registry.get(task).bind(values))


def parse_options(task: str, values: Mapping[str, str]) -> Options:
    """``task``'s options from query or form fields (fields it does not take are ignored, as
    DeepStack clients send extra ones); UsageError with one sentence for a bad value."""
    chosen = registry.get(task)
    given = {option.name: values[option.name].strip() for option in chosen.options
             if values.get(option.name, "").strip()}
    mask = values.get("mask", "").lower() in ("1", "true", "yes")
    return Options(chosen.bind(given), mask)
