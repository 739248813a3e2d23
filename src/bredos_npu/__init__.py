"""bredos-npu: run TensorFlow Lite models on the RK3588 NPU (Mesa Teflon) with CPU fallback."""

from bredos_npu.errors import (
    BackendError,
    BredosNpuError,
    ImageError,
    LabelsError,
    ModelError,
    RuntimeMissingError,
)
from bredos_npu.models.inspection.analysis import Inspection
from bredos_npu.models.inspection.analysis import inspect_model as inspect
from bredos_npu.runtime.model import Model, load
from bredos_npu.system.doctor import diagnose
from bredos_npu.tasks.classify import Class

__version__ = "0.1.0"

__all__ = [
    "BackendError",
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
]
