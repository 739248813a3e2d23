"""Cross-layer equalization (Nagel et al., "Data-Free Quantization Through Weight Equalization and
Bias Correction", ICCV 2019, section 4.1).

For two consecutive convolutions A → B with a positively scale-equivariant activation between
them (ReLU(x / s) = ReLU(x) / s for s > 0), dividing A's output channel i (weights and bias) by
s_i and multiplying B's input channel i by s_i leaves the network's function unchanged. With
r1_i = max|A's weights of output channel i| and r2_i = max|B's weights of input channel i|,
s_i = sqrt(r1_i * r2_i) / r2_i gives both channels the range sqrt(r1_i * r2_i): the per-channel
weight ranges become as equal as they can be, which is what per-tensor quantization needs.
Chains (expand 1x1 → depthwise 3x3 → project 1x1) are equalized pair by pair until the scales
settle.

ReLU6 is not scale-equivariant (its bound of 6 would have to become 6 / s_i per channel, which a
fused activation cannot hold): as the paper does for MobileNetV2, the ReLU6 of A is replaced by
ReLU before equalizing (:func:`unclip`), which changes the float model only where activations
exceeded 6. Equalization itself is then an exact reparameterisation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from bredos_npu.models.inspection.graph import schema
from bredos_npu.models.inspection.rules import CONVOLUTIONS
from bredos_npu.models.quantize.flatbuffer import (
    opcode_name,
    quantization,
    set_tensor_data,
    subgraph,
    tensor_data,
)

EQUIVARIANT = ("NONE", "RELU")
ITERATIONS = 20
SETTLED = 1e-4  # largest |log s| of an iteration at which the scales count as settled


class Pair(NamedTuple):
    """Operator indices of two convolutions, the first feeding only the second."""

    first: int
    second: int


def _activation_names() -> dict[int, str]:
    enum = schema().ActivationFunctionType
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def activation(op: Any) -> str:
    options = op.builtinOptions
    code = getattr(options, "fusedActivationFunction", 0) if options is not None else 0
    return _activation_names().get(code, str(code))


def _depth_multiplier_one(model: Any, op: Any) -> bool:
    if opcode_name(model, op) != "DEPTHWISE_CONV_2D":
        return True
    return getattr(op.builtinOptions, "depthMultiplier", 1) in (0, 1)


def pairs(model: Any) -> list[Pair]:
    """Convolution pairs A → B that can be equalized: A's output feeds B alone, through no
    activation, ReLU or ReLU6, and both have float weights."""
    graph = subgraph(model)
    consumers: dict[int, list[int]] = {}
    for index, op in enumerate(graph.operators):
        for t in op.inputs:
            consumers.setdefault(t, []).append(index)
    found = []
    for index, op in enumerate(graph.operators):
        if not _equalizable(model, op):
            continue
        out = op.outputs[0]
        users = consumers.get(out, [])
        if out in graph.outputs or len(users) != 1:
            continue
        second = graph.operators[users[0]]
        if _equalizable(model, second) and second.inputs[0] == out \
                and activation(op) in (*EQUIVARIANT, "RELU6"):
            found.append(Pair(index, users[0]))
    return found


def _equalizable(model: Any, op: Any) -> bool:
    if opcode_name(model, op) not in CONVOLUTIONS or not _depth_multiplier_one(model, op):
        return False
    weights = subgraph(model).tensors[op.inputs[1]]
    values = tensor_data(model, weights)
    return values is not None and values.dtype.kind == "f" and quantization(weights) is None


def unclip(model: Any, found: list[Pair]) -> int:
    """Replace the fused ReLU6 of every pair's first convolution by ReLU; return how many."""
    relu = schema().ActivationFunctionType.RELU
    graph = subgraph(model)
    changed = 0
    for pair in found:
        op = graph.operators[pair.first]
        if activation(op) == "RELU6":
            op.builtinOptions.fusedActivationFunction = relu
            changed += 1
    return changed


def drop_dead_channels(model: Any, found: list[Pair]) -> int:
    """Zero the channels a pair does not use, exactly; return how many were zeroed.

    Trained networks have dead channels (MobileNetV2's first layers have several): when B's
    weights for input channel i are all zero, A's output channel i is ignored and A's weights and
    bias for it are set to zero; when A's channel i is constant zero (zero weights, bias that
    its activation maps to 0), B's weights for input channel i are set to zero. Neither changes
    the function, but a dead channel with large weights would otherwise set the whole tensor's
    quantization range (in MobileNetV2's first depthwise layer it is 20 times the live ones).
    """
    graph = subgraph(model)
    zeroed = 0
    for _ in range(2):  # a channel zeroed in one pair can free its neighbour in the next
        for first, second in found:
            a, b = graph.operators[first], graph.operators[second]
            wa = tensor_data(model, graph.tensors[a.inputs[1]]).copy()
            wb = tensor_data(model, graph.tensors[b.inputs[1]]).copy()
            ba = _bias(model, a)
            r1, r2 = _ranges(wa, _out_axis(model, a)), _ranges(wb, 3)
            bias_a = ba if ba is not None else np.zeros_like(r1)
            constant_zero = (r1 == 0) & ((bias_a <= 0) if activation(a) != "NONE" else (bias_a == 0))
            ignored = (r2 == 0) & ((r1 > 0) | (bias_a != 0))
            blank_b = constant_zero & (r2 > 0)
            if ignored.any():
                np.moveaxis(wa, _out_axis(model, a), 0)[ignored] = 0
                set_tensor_data(model, graph.tensors[a.inputs[1]], wa)
                if ba is not None:
                    set_tensor_data(model, graph.tensors[a.inputs[2]],
                                    np.where(ignored, 0, ba).astype(np.float32))
            if blank_b.any():
                np.moveaxis(wb, 3, 0)[blank_b] = 0
                set_tensor_data(model, graph.tensors[b.inputs[1]], wb)
            zeroed += int(ignored.sum() + blank_b.sum())
    return zeroed


def _out_axis(model: Any, op: Any) -> int:
    """Output-channel axis of a weight tensor: OHWI for CONV_2D, 1HWC for DEPTHWISE_CONV_2D."""
    return 0 if opcode_name(model, op) == "CONV_2D" else 3


def _ranges(values: np.ndarray, axis: int) -> np.ndarray:
    return np.abs(np.moveaxis(values, axis, 0)).reshape(values.shape[axis], -1).max(axis=1)


def _scale_along(values: np.ndarray, factors: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * values.ndim
    shape[axis] = len(factors)
    return (values * factors.reshape(shape)).astype(values.dtype)


def equalize(model: Any, found: list[Pair], maxima: dict[int, np.ndarray] | None = None) -> int:
    """Equalize every pair in place; return the iterations used.

    A pair whose first convolution has a fused ReLU6 needs ``maxima``: the largest value of
    each of its output channels over calibration images (keyed by the pair's first op index).
    A channel that reached 6 is clipped and keeps scale 1; the others are scaled no further up
    than keeps them under 6, so ReLU6 behaves as ReLU on them and scaling stays exact on data
    like the calibration images. Without ``maxima``, call :func:`unclip` first.
    """
    graph = subgraph(model)
    weights = {i: tensor_data(model, graph.tensors[graph.operators[i].inputs[1]]).astype(np.float64)
               for pair in found for i in pair}
    biases = {i: _bias(model, graph.operators[i]) for pair in found for i in pair}
    scales: dict[int, np.ndarray] = {}
    iterations = 0
    for iterations in range(1, ITERATIONS + 1):  # noqa: B007 (the count is returned)
        largest = 0.0
        for first, second in found:
            a = graph.operators[first]
            r1 = _ranges(weights[first], _out_axis(model, a))
            r2 = _ranges(weights[second], 3)  # input channels: last axis for both kinds
            s = np.ones_like(r1)
            usable = (r1 > 0) & (r2 > 0)
            s[usable] = np.sqrt(r1[usable] * r2[usable]) / r2[usable]
            if activation(a) == "RELU6":
                s = _within_relu6(s, maxima, first, scales.get(first))
            scales[first] = scales.get(first, np.ones_like(s)) * s
            weights[first] = _scale_along(weights[first], 1 / s, _out_axis(model, a))
            if biases[first] is not None:
                biases[first] = biases[first] / s
            weights[second] = _scale_along(weights[second], s, 3)
            largest = max(largest, float(np.abs(np.log(s)).max(initial=0.0)))
        if largest < SETTLED:
            break
    for index, values in weights.items():
        op = graph.operators[index]
        set_tensor_data(model, graph.tensors[op.inputs[1]], values.astype(np.float32))
        if biases[index] is not None:
            set_tensor_data(model, graph.tensors[op.inputs[2]], biases[index].astype(np.float32))
    return iterations


RELU6_BOUND = 6.0
CLIPPED = 6.0 * (1 - 1e-6)


def _within_relu6(s: np.ndarray, maxima: dict[int, np.ndarray] | None, op: int,
                  applied: np.ndarray | None) -> np.ndarray:
    """Limit new scales ``s`` so ReLU6 never clips a channel it did not clip before."""
    if maxima is None or op not in maxima:
        return np.ones_like(s)
    total = applied if applied is not None else np.ones_like(s)
    peak = maxima[op]  # in the unscaled model
    clipped = peak >= CLIPPED
    # After all scaling the channel's peak is peak / (total * s); keep it below the bound.
    lowest = peak / (RELU6_BOUND * total)
    limited = np.maximum(s, lowest)
    return np.where(clipped, 1.0, limited)


def _bias(model: Any, op: Any) -> np.ndarray | None:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return None
    values = tensor_data(model, subgraph(model).tensors[op.inputs[2]])
    return None if values is None else values.astype(np.float64)
