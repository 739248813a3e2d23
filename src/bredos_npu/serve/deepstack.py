"""The DeepStack / CodeProject.AI detection reply, built from detections (pure functions).

Clients (Frigate's ``deepstack`` detector, Home Assistant through ``deepstack-python``, Blue Iris,
Agent DVR) read ``predictions`` with integer pixel boxes of the posted image. Frigate stops at the
first prediction under 0.4 or with a label it does not know and holds at most 20 rows, so the
reply is sorted by confidence, uses the COCO names DeepStack uses and is capped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bredos_npu.errors import Reason, UsageError
from bredos_npu.tasks.detect import Detection

DEFAULT_MIN_CONFIDENCE = 0.4
# Older label files (Pascal VOC style, some COCO exports) name a few classes differently from
# the COCO names DeepStack replies with.
DEEPSTACK_NAMES = {
    "aeroplane": "airplane", "motorbike": "motorcycle", "sofa": "couch", "tvmonitor": "tv",
    "diningtable": "dining table", "pottedplant": "potted plant", "hair dryer": "hair drier",
}


def min_confidence(text: str | None) -> float:
    """The ``min_confidence`` form field (default 0.4); UsageError for non-numbers and values
    outside 0..1 (DeepStack refuses values over 1)."""
    if text is None or not text.strip():
        return DEFAULT_MIN_CONFIDENCE
    try:
        value = float(text)
    except ValueError:
        raise _bad("Invalid value for min_confidence") from None
    if not math.isfinite(value) or value > 1.0:
        raise _bad("min_confidence cannot be greater than 1")
    if value < 0.0:
        raise _bad("min_confidence cannot be negative")
    return value


def _bad(message: str) -> UsageError:
    return UsageError(message, reason=Reason.BAD_VALUE, option="min_confidence")


def label_name(label: str) -> str:
    return DEEPSTACK_NAMES.get(label.strip().lower(), label.strip())


def _pixel(value: float, limit: int) -> int:
    return min(max(round(value), 0), limit)


def predictions(found: Sequence[Detection], size: tuple[int, int], limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` predictions, best first, integer pixels clamped to the image."""
    width, height = size
    ordered = sorted(found, key=lambda d: -d.score)[:limit]
    return [{"label": label_name(d.label), "confidence": round(float(d.score), 4),
             "x_min": _pixel(d.bbox.xmin, width), "y_min": _pixel(d.bbox.ymin, height),
             "x_max": _pixel(d.bbox.xmax, width), "y_max": _pixel(d.bbox.ymax, height)}
            for d in ordered]


def reply(found: Sequence[Detection], size: tuple[int, int], limit: int, inference_ms: float,
          process_ms: float) -> dict[str, Any]:
    """The success reply: DeepStack's fields plus CodeProject.AI's (count, timings, code, message)."""
    rows = predictions(found, size, limit)
    labels = sorted({row["label"] for row in rows})
    return {"success": True, "predictions": rows, "count": len(rows),
            "message": f"Found {', '.join(labels)}" if labels else "No objects found",
            "inferenceMs": round(inference_ms), "processMs": round(process_ms),
            "duration": round(process_ms / 1e3, 4), "code": 200}


def error(message: str, code: int) -> dict[str, Any]:
    """An error reply as DeepStack sends it, with the status code in the body too."""
    return {"success": False, "error": message, "code": code}
