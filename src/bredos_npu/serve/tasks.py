"""What each task needs from the server: a fit check, post-processing and its JSON document.

The documents are the per-image documents of the CLI's ``--json`` (without the file name), so a
script can switch between ``bredos-npu detect --json`` and ``POST /v1/detect`` without changes.
The tasks themselves come from :mod:`bredos_npu.tasks.registry`.
"""

from __future__ import annotations

import base64
import io
from typing import Any, NamedTuple

import numpy as np

from bredos_npu.errors import Reason, UsageError
from bredos_npu.runtime.model import Model
from bredos_npu.tasks import registry

TASKS = registry.names()


class Options(NamedTuple):
    """Per-request options: top_k (classify), threshold and max_results (detect), mask (segment)."""

    top_k: int = 5
    threshold: float = 0.5
    max_results: int | None = None
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
    chosen = registry.get(task)
    values = {option.name: getattr(options, option.name) for option in chosen.options}
    return chosen.postprocess(model, outputs, size, **values)


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


def parse_options(values: dict[str, str]) -> Options:
    """Options from query or form fields; UsageError with one sentence for bad values."""
    top_k = _number(values, "top_k", int, 5)
    threshold = _number(values, "threshold", float, 0.5)
    max_results = _number(values, "max_results", int, None)
    if top_k < 1:
        raise UsageError(f"top_k must be 1 or more, not {top_k}", reason=Reason.BAD_VALUE,
                         option="top_k", value=top_k)
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"threshold must be between 0 and 1, not {values.get('threshold')}",
                         reason=Reason.BAD_VALUE, option="threshold", value=threshold)
    if max_results is not None and max_results < 1:
        raise UsageError(f"max_results must be 1 or more, not {max_results}", reason=Reason.BAD_VALUE,
                         option="max_results", value=max_results)
    mask = values.get("mask", "").lower() in ("1", "true", "yes")
    return Options(top_k, threshold, max_results, mask)


def _number(values: dict[str, str], name: str, kind: type, default: Any) -> Any:
    text = values.get(name, "").strip()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{name} must be a number, not {text[:40]!r}", reason=Reason.BAD_VALUE,
                         option=name, value=text[:40]) from None
