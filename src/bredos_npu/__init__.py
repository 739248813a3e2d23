"""bredos-npu: run TensorFlow Lite models on the RK3588 NPU (Mesa Teflon) with CPU fallback.

The public names are imported on first use, so ``import bredos_npu`` (and every CLI start) stays
cheap until a model is actually loaded.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from bredos_npu.errors import (
    BackendError,
    BredosNpuError,
    ImageError,
    LabelsError,
    ModelError,
    RuntimeMissingError,
)

if TYPE_CHECKING:
    from bredos_npu.doctor import diagnose
    from bredos_npu.models.inspection.analysis import Inspection
    from bredos_npu.models.inspection.analysis import inspect_model as inspect
    from bredos_npu.models.quantize.pipeline import quantize
    from bredos_npu.runtime.backends import BackendPlan
    from bredos_npu.runtime.model import Model, load
    from bredos_npu.tasks.classify import Class

__version__ = "0.1.0"

_LAZY = {
    "BackendPlan": ("bredos_npu.runtime.backends", "BackendPlan"),
    "Class": ("bredos_npu.tasks.classify", "Class"),
    "Inspection": ("bredos_npu.models.inspection.analysis", "Inspection"),
    "Model": ("bredos_npu.runtime.model", "Model"),
    "diagnose": ("bredos_npu.doctor", "diagnose"),
    "inspect": ("bredos_npu.models.inspection.analysis", "inspect_model"),
    "load": ("bredos_npu.runtime.model", "load"),
    "quantize": ("bredos_npu.models.quantize.pipeline", "quantize"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bredos_npu' has no attribute {name!r}")


__all__ = [
    "BackendError",
    "BackendPlan",
    "BredosNpuError",
    "Class",
    "ImageError",
    "Inspection",
    "LabelsError",
    "Model",
    "ModelError",
    "RuntimeMissingError",
    "__version__",
    "diagnose",
    "inspect",
    "load",
    "quantize",
]
