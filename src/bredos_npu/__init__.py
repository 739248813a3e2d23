"""bredos-npu: run TensorFlow Lite models on the RK3588 NPU (Mesa Teflon) with CPU fallback.

Conventions of every result: image coordinates are pixels of the original image as given (full
size, upright after its EXIF orientation), origin at its top-left corner, x to the right and y
down; sizes are (width, height); scores and shares are in 0..1; times end in ``_ms``
(milliseconds) or ``_s``/``seconds`` (seconds).

The public names are imported on first use, so ``import bredos_npu`` (and every CLI start) stays
cheap until a model is actually loaded: only :mod:`bredos_npu.errors` is imported up front.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from bredos_npu.errors import (
    BackendError,
    BredosNpuError,
    DownloadError,
    ImageError,
    LabelsError,
    ModelError,
    OutputError,
    Reason,
    RuntimeMissingError,
    SourceError,
    UsageError,
)

if TYPE_CHECKING:
    from bredos_npu.doctor import Check, Report, diagnose
    from bredos_npu.models.inspection.analysis import Inspection, OpReport
    from bredos_npu.models.inspection.analysis import inspect_model as inspect
    from bredos_npu.models.inspection.graph import TensorInfo
    from bredos_npu.models.inspection.partition import HandOver, Subset
    from bredos_npu.models.inspection.rules import Hazard
    from bredos_npu.models.quantize.pipeline import MethodResult, QuantizeResult, quantize
    from bredos_npu.runtime.backends import BackendPlan
    from bredos_npu.runtime.litert import Runtime
    from bredos_npu.runtime.model import BackendInfo, Model, Prepared, TensorSpec, load
    from bredos_npu.runtime.nodes import NodeSummary
    from bredos_npu.runtime.pipeline import Result
    from bredos_npu.runtime.stream import FrameResult, Stream
    from bredos_npu.runtime.video import SourceStats, VideoInfo
    from bredos_npu.system.cpu import CpuPlan
    from bredos_npu.tasks.classify import Class
    from bredos_npu.tasks.detect import BBox, Detection
    from bredos_npu.tasks.pose import Keypoint
    from bredos_npu.tasks.quant import Quantization
    from bredos_npu.tasks.segment import ClassShare, Segmentation

__version__ = "0.1.0"

# name → (module, attribute): imported on first use by __getattr__.
_LAZY = {
    # loading and running
    "load": ("bredos_npu.runtime.model", "load"),
    "Model": ("bredos_npu.runtime.model", "Model"),
    "BackendPlan": ("bredos_npu.runtime.backends", "BackendPlan"),
    "BackendInfo": ("bredos_npu.runtime.model", "BackendInfo"),
    "CpuPlan": ("bredos_npu.system.cpu", "CpuPlan"),
    "NodeSummary": ("bredos_npu.runtime.nodes", "NodeSummary"),
    "Runtime": ("bredos_npu.runtime.litert", "Runtime"),
    "TensorSpec": ("bredos_npu.runtime.model", "TensorSpec"),
    "Quantization": ("bredos_npu.tasks.quant", "Quantization"),
    "Prepared": ("bredos_npu.runtime.model", "Prepared"),
    # results of the tasks, of folders and of streams
    "Class": ("bredos_npu.tasks.classify", "Class"),
    "Detection": ("bredos_npu.tasks.detect", "Detection"),
    "BBox": ("bredos_npu.tasks.detect", "BBox"),
    "Keypoint": ("bredos_npu.tasks.pose", "Keypoint"),
    "Segmentation": ("bredos_npu.tasks.segment", "Segmentation"),
    "ClassShare": ("bredos_npu.tasks.segment", "ClassShare"),
    "Result": ("bredos_npu.runtime.pipeline", "Result"),
    "Stream": ("bredos_npu.runtime.stream", "Stream"),
    "FrameResult": ("bredos_npu.runtime.stream", "FrameResult"),
    "VideoInfo": ("bredos_npu.runtime.video", "VideoInfo"),
    "SourceStats": ("bredos_npu.runtime.video", "SourceStats"),
    # the board
    "diagnose": ("bredos_npu.doctor", "diagnose"),
    "Report": ("bredos_npu.doctor", "Report"),
    "Check": ("bredos_npu.doctor", "Check"),
    # static inspection
    "inspect": ("bredos_npu.models.inspection.analysis", "inspect_model"),
    "Inspection": ("bredos_npu.models.inspection.analysis", "Inspection"),
    "OpReport": ("bredos_npu.models.inspection.analysis", "OpReport"),
    "TensorInfo": ("bredos_npu.models.inspection.graph", "TensorInfo"),
    "Subset": ("bredos_npu.models.inspection.partition", "Subset"),
    "HandOver": ("bredos_npu.models.inspection.partition", "HandOver"),
    "Hazard": ("bredos_npu.models.inspection.rules", "Hazard"),
    # quantization (the [quantize] extra)
    "quantize": ("bredos_npu.models.quantize.pipeline", "quantize"),
    "QuantizeResult": ("bredos_npu.models.quantize.pipeline", "QuantizeResult"),
    "MethodResult": ("bredos_npu.models.quantize.pipeline", "MethodResult"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bredos_npu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BBox",
    "BackendError",
    "BackendInfo",
    "BackendPlan",
    "BredosNpuError",
    "Check",
    "Class",
    "ClassShare",
    "CpuPlan",
    "Detection",
    "DownloadError",
    "FrameResult",
    "HandOver",
    "Hazard",
    "ImageError",
    "Inspection",
    "Keypoint",
    "LabelsError",
    "MethodResult",
    "Model",
    "ModelError",
    "NodeSummary",
    "OpReport",
    "OutputError",
    "Prepared",
    "Quantization",
    "QuantizeResult",
    "Reason",
    "Report",
    "Result",
    "Runtime",
    "RuntimeMissingError",
    "Segmentation",
    "SourceError",
    "SourceStats",
    "Stream",
    "Subset",
    "TensorInfo",
    "TensorSpec",
    "UsageError",
    "VideoInfo",
    "__version__",
    "diagnose",
    "inspect",
    "load",
    "quantize",
]
