"""The .tflite object tree (``ModelT``) in and out, keeping what a plain re-pack would lose.

A model with TFLite Support metadata is a flatbuffer followed by a zip of packed files (labels):
re-packing the flatbuffer drops that zip, so :func:`to_bytes` appends the files again the way the
metadata writer does (a stored zip after the flatbuffer).
"""

from __future__ import annotations

import zipfile
from io import BytesIO
from typing import Any

import numpy as np

from bredos_npu.models.inspection.graph import schema

# TensorType values of schema.fbs.
FLOAT32, INT32, UINT8, INT8 = 0, 2, 3, 9
NUMPY_TYPES = {FLOAT32: np.float32, INT32: np.int32, UINT8: np.uint8, INT8: np.int8}


def read(content: bytes) -> Any:
    """The mutable object tree (``schema_py_generated.ModelT``) of a .tflite file."""
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(content))


def to_bytes(model: Any, packed_files: dict[str, bytes] | None = None) -> bytes:
    """The .tflite bytes of ``model``, with ``packed_files`` appended as the metadata's zip."""
    from ai_edge_litert.tools import flatbuffer_utils

    compact(model)
    content = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    if not packed_files:
        return content
    out = BytesIO(content)
    out.seek(0, 2)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in packed_files.items():
            archive.writestr(name, data)
    return out.getvalue()


def compact(model: Any) -> int:
    """Drop the buffers nothing refers to (:func:`set_tensor_data` leaves the old ones behind) and
    hold every buffer's data as a numpy array; return how many were dropped.

    The flatbuffers builder packs a numpy array in one copy but other sequences byte by byte
    (minutes for a MobileNet), so both matter for speed, and the first for the file's size.
    """
    used = {0} | {t.buffer for g in model.subgraphs for t in g.tensors}
    used |= {m.buffer for m in model.metadata or []} | set(model.metadataBuffer or [])
    order = sorted(b for b in used if 0 <= b < len(model.buffers))
    new_index = {old: new for new, old in enumerate(order)}
    dropped = len(model.buffers) - len(order)
    model.buffers = [model.buffers[i] for i in order]
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.buffer = new_index.get(tensor.buffer, 0)
    for entry in model.metadata or []:
        entry.buffer = new_index[entry.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [new_index[b] for b in model.metadataBuffer]
    for buffer in model.buffers:
        if buffer.data is not None and not isinstance(buffer.data, np.ndarray):
            buffer.data = np.frombuffer(bytes(buffer.data), np.uint8)
    return dropped


def subgraph(model: Any) -> Any:
    return model.subgraphs[0]


def opcode_name(model: Any, op: Any) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    return {v: k for k, v in vars(schema().BuiltinOperator).items() if not k.startswith("_")}.get(
        builtin, f"BUILTIN_{builtin}")


def tensor_data(model: Any, tensor: Any) -> np.ndarray | None:
    """A constant tensor's values in its shape, or None for an activation."""
    data = model.buffers[tensor.buffer].data if 0 < tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    dtype = NUMPY_TYPES.get(tensor.type)
    if dtype is None:
        return None
    return np.frombuffer(bytes(np.asarray(data, np.uint8)), dtype).reshape(tensor.shape)


def set_tensor_data(model: Any, tensor: Any, values: np.ndarray) -> None:
    """Store ``values`` as the tensor's constant data in a buffer of its own."""
    buffer = schema().BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor.buffer = len(model.buffers) - 1


def quantization(tensor: Any) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(scales, zero points, quantized dimension) of a quantized tensor, or None."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scales = np.asarray(q.scale, np.float64)
    zero_points = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scales), np.int64)
    return scales, zero_points, int(q.quantizedDimension or 0)
