"""A full-integer model (e.g. TensorFlow 2's per-channel int8) back to the float model it encodes.

Every quantized constant becomes its real values ``scale * (q - zero_point)`` along its
quantized dimension (so per-channel weights and their int32 biases come back exactly), every
quantized activation becomes float32, and the QUANTIZE/DEQUANTIZE operators at the edges, which
are identities in float, are removed. The float model then computes what the integer model
approximates, and can be re-quantized per tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bredos_npu.models.quantize.flatbuffer import (
    FLOAT32,
    opcode_name,
    quantization,
    set_tensor_data,
    subgraph,
    tensor_data,
)

CONVERSIONS = frozenset({"QUANTIZE", "DEQUANTIZE"})


def is_integer_model(model: Any) -> bool:
    """True when the convolutions' weights are stored as quantized integers."""
    graph = subgraph(model)
    weights = [graph.tensors[op.inputs[1]] for op in graph.operators
               if opcode_name(model, op) in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    return bool(weights) and all(w.type != FLOAT32 and quantization(w) is not None for w in weights)


def dequantize(model: Any) -> int:
    """Turn ``model`` into float in place; return the number of tensors converted."""
    graph = subgraph(model)
    converted = 0
    for tensor in graph.tensors:
        params = quantization(tensor)
        if params is None or tensor.type == FLOAT32:
            continue
        values = tensor_data(model, tensor)
        if values is not None:
            set_tensor_data(model, tensor, _real(values, *params))
        tensor.type = FLOAT32
        tensor.quantization = None
        converted += 1
    _remove_conversions(model)
    return converted


def _real(values: np.ndarray, scales: np.ndarray, zero_points: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * values.ndim
    if len(scales) > 1:
        shape[axis] = len(scales)
    real = scales.reshape(shape) * (values.astype(np.float64) - zero_points.reshape(shape))
    return real.astype(np.float32)


def _remove_conversions(model: Any) -> None:
    graph = subgraph(model)
    kept = []
    for op in graph.operators:
        if opcode_name(model, op) in CONVERSIONS:
            _rewire(model, op.outputs[0], op.inputs[0])
        else:
            kept.append(op)
    graph.operators = kept
    drop_unused_tensors(model)


def _rewire(model: Any, old: int, new: int) -> None:
    """Every use of tensor ``old`` (op inputs, graph outputs, signatures) now reads ``new``."""
    graph = subgraph(model)
    for op in graph.operators:
        op.inputs = [new if t == old else t for t in op.inputs]
    graph.outputs = [new if t == old else t for t in graph.outputs]
    for signature in model.signatureDefs or []:
        for entry in [*(signature.inputs or []), *(signature.outputs or [])]:
            if entry.tensorIndex == old:
                entry.tensorIndex = new


def drop_unused_tensors(model: Any) -> None:
    """Remove tensors no op, graph edge or signature uses (TFLite allocates no data for them)."""
    graph = subgraph(model)
    signatures = [e for s in model.signatureDefs or [] for e in [*(s.inputs or []), *(s.outputs or [])]]
    used = {t for op in graph.operators for t in [*op.inputs, *op.outputs] if t >= 0}
    used |= {*graph.inputs, *graph.outputs, *(e.tensorIndex for e in signatures)}
    order = sorted(used)
    new_index = {old: new for new, old in enumerate(order)}
    graph.tensors = [graph.tensors[i] for i in order]
    for op in graph.operators:
        op.inputs = [new_index[t] if t >= 0 else t for t in op.inputs]
        op.outputs = [new_index[t] for t in op.outputs]
    graph.inputs = [new_index[t] for t in graph.inputs]
    graph.outputs = [new_index[t] for t in graph.outputs]
    for entry in signatures:
        entry.tensorIndex = new_index[entry.tensorIndex]
