"""Building a TFLite interpreter for a model, with or without a delegate, and reading its shape.

Native logs (TFLite's, XNNPACK's, a delegate's) are captured and turned into the error's
sentence unless ``debug`` lets them through.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bredos_npu.cstderr import capture_native_stderr
from bredos_npu.errors import BackendError, Reason
from bredos_npu.models.tflite_file import explain_load_failure
from bredos_npu.runtime.litert import Runtime
from bredos_npu.runtime.nodes import node_ops
from bredos_npu.system.cpu import CpuPlan, pinned
from bredos_npu.tasks.classify import is_score_vector

COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def build_interpreter(runtime: Runtime, path: Path, content: bytes, cpu: CpuPlan,
                      delegates: list[Any], debug: bool) -> Any:
    """An interpreter for ``content`` (the file at ``path``) with ``cpu.threads`` XNNPACK threads
    and ``delegates``, not yet allocated.

    Raises BackendError (DELEGATE_REFUSED_MODEL) when a delegate refuses the graph, ModelError
    when TFLite itself cannot load the model.
    """
    failure: Exception | None = None
    with capture_native_stderr(enabled=not debug) as native:
        try:
            return runtime.interpreter_class(model_content=content, num_threads=cpu.threads,
                                             experimental_delegates=delegates or None)
        except (ValueError, RuntimeError) as exc:
            failure = exc
    message = f"{failure}\n{native.text}"
    if delegates and "custom op" not in message:
        raise BackendError(f"The NPU delegate could not take the model {path}: "
                           f"{message.strip().splitlines()[0]}.", reason=Reason.DELEGATE_REFUSED_MODEL,
                           path=path)
    raise explain_load_failure(path, message)


def allocate(interpreter: Any, path: Path, cpu: CpuPlan, debug: bool) -> None:
    """Allocate the tensors on ``cpu.cpus`` (ModelError when TFLite cannot)."""
    # XNNPACK's worker threads start here and inherit the pinning.
    failure: Exception | None = None
    with capture_native_stderr(enabled=not debug) as native, pinned(cpu.cpus):
        try:
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            failure = exc
    if failure is not None:
        raise explain_load_failure(path, f"{failure}\n{native.text}")


def is_float_model(ops: list[dict[str, Any]], input_dtype: np.dtype) -> bool:
    """True when the model computes in float: its convolutions/FC take float activations."""
    compute = [op for op in ops if op["op_name"] in COMPUTE_OPS]
    if compute:
        return any(np.dtype(op["operand_types"][0]).kind == "f" for op in compute)
    return input_dtype.kind == "f"


def takes_float_input(interpreter: Any) -> bool:
    """True when the first input is a float tensor (normalised pixels, not raw ones)."""
    return np.dtype(interpreter.get_input_details()[0]["dtype"]).kind == "f"


class OutputClasses(NamedTuple):
    """How many classes a model's outputs say it has (what its label file must name).

    scores: the length of a classifier's one score vector. per_pixel: the classes of a
    segmentation map (the last axis of its scores, or of what its ARG_MAX reduces). Both None for
    other outputs (detection, pose), which do not say: their label files are matched against the
    model's own instead.
    """

    scores: int | None
    per_pixel: int | None


def output_classes(shapes: Sequence[tuple[int, ...]],
                   argmax_scores: Callable[[], tuple[int, ...] | None]) -> OutputClasses:
    """The classes of outputs of ``shapes`` (as allocated). argmax_scores: the shape of the tensor
    an ARG_MAX reduces into the one output, or None; asked only of a map of class ids (rank 3)."""
    if len(shapes) != 1:
        return OutputClasses(None, None)
    shape = tuple(int(d) for d in shapes[0])
    if is_score_vector(shape):
        return OutputClasses(math.prod(shape), None)
    if len(shape) == 4:
        return OutputClasses(None, shape[-1] if shape[-1] > 1 else None)
    if len(shape) == 3:
        scores = argmax_scores()
        return OutputClasses(None, int(scores[-1]) if scores is not None else None)
    return OutputClasses(None, None)


def interpreter_classes(interpreter: Any) -> OutputClasses:
    """:func:`output_classes` of an allocated interpreter's outputs."""
    outputs = interpreter.get_output_details()

    def argmax_scores() -> tuple[int, ...] | None:
        for op in node_ops(interpreter):
            if op["op_name"] == "ARG_MAX" and outputs[0]["index"] in op["outputs"]:
                return tuple(interpreter._get_tensor_details(int(op["inputs"][0]), 0)["shape"])
        return None

    return output_classes([tuple(o["shape"]) for o in outputs], argmax_scores)
