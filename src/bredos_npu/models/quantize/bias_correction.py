"""Bias correction (Nagel et al., ICCV 2019, section 4.2).

Quantizing weights W to W~ = W + e shifts a convolution's expected output by E[e x] = e E[x]
per output channel: a systematic error that per-tensor quantization makes large where a
channel's weights are small next to the tensor's range. Subtracting it from the bias removes it.
E[x] is each input channel's mean over calibration images (the paper's empirical variant, its
appendix D), and e is computed with the quantizer's own rule for symmetric tensor-wise 8-bit
weights: scale = max|W| / 127, q = round(W / scale) clipped to [-127, 127].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
from bredos_npu.models.quantize.flatbuffer import read as flatbuffer_read
from bredos_npu.models.quantize.flatbuffer import to_bytes as flatbuffer_bytes
from bredos_npu.models.quantize.statistics import tracing_interpreter

QMAX = 127


def quantization_error(weights: np.ndarray) -> np.ndarray:
    """W~ - W for symmetric, narrow-range, tensor-wise 8-bit quantization."""
    top = float(np.abs(weights).max())
    if top == 0:
        return np.zeros_like(weights)
    scale = top / QMAX
    return np.clip(np.rint(weights / scale), -QMAX, QMAX) * scale - weights


def correctable(model: Any) -> list[int]:
    """Indices of the convolutions with float weights and a float bias, each weight seeing one
    input channel (no grouped convolution, no depth multiplier)."""
    graph = subgraph(model)
    found = []
    for index, op in enumerate(graph.operators):
        if opcode_name(model, op) not in CONVOLUTIONS or len(op.inputs) < 3 or op.inputs[2] < 0:
            continue
        weights, bias = (tensor_data(model, graph.tensors[t]) for t in op.inputs[1:3])
        if weights is None or bias is None or not weights.dtype.kind == bias.dtype.kind == "f":
            continue
        if weights.shape[3] == graph.tensors[op.inputs[0]].shape[3]:
            found.append(index)
    return found


def correct(model: Any, input_means: dict[int, np.ndarray]) -> int:
    """Subtract e E[x] from the bias of each convolution whose input mean is in ``input_means``
    (keyed by op index); return how many biases were corrected."""
    graph = subgraph(model)
    for index, mean in input_means.items():
        op = graph.operators[index]
        weights = tensor_data(model, graph.tensors[op.inputs[1]]).astype(np.float64)
        bias = tensor_data(model, graph.tensors[op.inputs[2]]).astype(np.float64)
        error = quantization_error(weights)
        if opcode_name(model, op) == "CONV_2D":  # OHWI
            shift = np.einsum("ohwi,i->o", error, mean)
        else:  # 1HWC: each channel sees only its own input
            shift = np.einsum("ahwc,c->c", error, mean)
        set_tensor_data(model, graph.tensors[op.inputs[2]], (bias - shift).astype(np.float32))
    return len(input_means)


# --- Empirical bias correction ------------------------------------------------------------------


class Geometry(NamedTuple):
    """What the mean of a convolution's output depends on besides its weights."""

    stride: tuple[int, int]
    dilation: tuple[int, int]
    same_padding: bool
    output_size: tuple[int, int]


def geometry(model: Any, op: Any) -> Geometry:
    graph = subgraph(model)
    options = op.builtinOptions
    out = graph.tensors[op.outputs[0]].shape
    return Geometry((options.strideH or 1, options.strideW or 1),
                    (options.dilationHFactor or 1, options.dilationWFactor or 1),
                    options.padding == schema().Padding.SAME, (int(out[1]), int(out[2])))


def tap_means(mean_input: np.ndarray, kernel: tuple[int, int], shape: Geometry) -> np.ndarray:
    """For each kernel tap (kh, kw), the input's mean over the output positions it meets
    (zero padding counted as zero): K_h x K_w x C. A convolution's mean output per channel is
    then the sum over taps and input channels of weight x tap mean, exactly, by linearity."""
    height, width, _ = mean_input.shape
    (sh, sw), (dh, dw), (oh, ow) = shape.stride, shape.dilation, shape.output_size
    pad_h = max((oh - 1) * sh + (kernel[0] - 1) * dh + 1 - height, 0) if shape.same_padding else 0
    pad_w = max((ow - 1) * sw + (kernel[1] - 1) * dw + 1 - width, 0) if shape.same_padding else 0
    padded = np.pad(mean_input, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2),
                                 (0, 0)))
    taps = np.empty((*kernel, mean_input.shape[2]))
    for kh in range(kernel[0]):
        for kw in range(kernel[1]):
            rows = padded[kh * dh: kh * dh + (oh - 1) * sh + 1: sh]
            taps[kh, kw] = rows[:, kw * dw: kw * dw + (ow - 1) * sw + 1: sw].mean(axis=(0, 1))
    return taps


def mean_output(kind: str, weights: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Mean over positions of a convolution's output before bias and activation, per channel."""
    if kind == "CONV_2D":  # OHWI
        return np.einsum("ohwi,hwi->o", weights, taps)
    return np.einsum("hwc,hwc->c", weights[0], taps)  # 1HWC, depth multiplier 1


def mean_maps(content: bytes, tensors: Iterable[int], inputs: Iterable[np.ndarray]
              ) -> dict[int, np.ndarray]:
    """Each tensor's mean over ``inputs`` (float model tensors) at every position, in real
    values (HxWxC): the model is float, or integer with the inputs quantized for it."""
    wanted = sorted(set(tensors))
    interpreter = tracing_interpreter(content)
    entry = interpreter.get_input_details()[0]
    params = {d["index"]: d["quantization"] for d in interpreter.get_tensor_details()}
    sums: dict[int, np.ndarray] = {}
    count = 0
    for tensor in inputs:
        if np.dtype(entry["dtype"]).kind != "f":
            scale, zero_point = entry["quantization"]
            limits = np.iinfo(entry["dtype"])
            tensor = np.clip(np.rint(tensor / scale + zero_point), limits.min, limits.max)
        interpreter.set_tensor(entry["index"], tensor.astype(entry["dtype"]))
        interpreter.invoke()
        count += 1
        for t in wanted:
            values = interpreter.get_tensor(t)[0].astype(np.float64)
            scale, zero_point = params[t]
            if scale:
                values = scale * (values - zero_point)
            sums[t] = sums.get(t, 0) + values
    return {t: sums[t] / max(count, 1) for t in wanted}


def _real_weights(model: Any, tensor: Any) -> np.ndarray | None:
    """A tensor-wise quantized weight tensor in real values (None if it is not one)."""
    values = tensor_data(model, tensor)
    params = quantization(tensor)
    if values is None or params is None or len(params[0]) != 1:
        return None
    return params[0][0] * (values.astype(np.float64) - params[1][0])


def empirical_correct(reference: bytes, quantized: bytes, inputs: list[np.ndarray],
                      progress: Callable[[int, int], None] | None = None) -> bytes:
    """Empirical bias correction (Nagel et al., appendix D) of ``quantized``, the tensor-wise
    int8 model of the float model ``reference`` (same operators in the same order).

    Convolution by convolution, in order, the quantized model runs on ``inputs`` and the mean
    of its pre-activation output per channel is made equal to the reference's by changing the
    int32 bias: each correction sees the corrected layers before it, so it also removes the
    mean error their rounding and clipping pass on, which the analytic correction cannot see.
    Means before the activation are computed exactly from the mean input maps (the
    convolution is linear), so no operator is changed or added. Returns the corrected model.
    """
    float_model, int_model = flatbuffer_read(reference), flatbuffer_read(quantized)
    graph, int_graph = subgraph(float_model), subgraph(int_model)
    # The quantizer adds QUANTIZE/DEQUANTIZE operators around some others but keeps every
    # convolution, in order: the n-th convolution of one model is the n-th of the other.
    float_order, int_order = (
        [i for i, op in enumerate(g.operators) if opcode_name(m, op) in CONVOLUTIONS]
        for m, g in ((float_model, graph), (int_model, int_graph)))
    if [opcode_name(float_model, graph.operators[i]) for i in float_order] != \
            [opcode_name(int_model, int_graph.operators[i]) for i in int_order]:
        return quantized  # not the same convolutions: nothing can be matched safely
    counterpart = dict(zip(float_order, int_order, strict=True))
    convolutions = correctable(float_model)
    reference_maps = mean_maps(reference, [graph.operators[i].inputs[0] for i in convolutions],
                               inputs)
    for done, index in enumerate(convolutions):
        op, int_op = graph.operators[index], int_graph.operators[counterpart[index]]
        kind, shape = opcode_name(float_model, op), geometry(float_model, op)
        weights = tensor_data(float_model, graph.tensors[op.inputs[1]]).astype(np.float64)
        bias = tensor_data(float_model, graph.tensors[op.inputs[2]]).astype(np.float64)
        kernel = weights.shape[1:3]
        target = mean_output(kind, weights, tap_means(reference_maps[op.inputs[0]], kernel, shape)) + bias
        int_weights = _real_weights(int_model, int_graph.tensors[int_op.inputs[1]])
        bias_tensor = int_graph.tensors[int_op.inputs[2]]
        int_bias = tensor_data(int_model, bias_tensor)
        if int_weights is None or quantization(bias_tensor) is None or int_bias is None \
                or int_bias.dtype != np.int32:
            continue
        bias_scale = quantization(bias_tensor)[0]
        int_bias = int_bias.astype(np.float64)
        measured = mean_maps(flatbuffer_bytes(int_model), [int_op.inputs[0]], inputs)[int_op.inputs[0]]
        got = mean_output(kind, int_weights, tap_means(measured, kernel, shape)) + int_bias * bias_scale
        corrected = np.rint(int_bias + (target - got) / bias_scale)
        limits = np.iinfo(np.int32)
        set_tensor_data(int_model, bias_tensor, np.clip(corrected, limits.min, limits.max).astype(np.int32))
        if progress is not None:
            progress(done + 1, len(convolutions))
    return flatbuffer_bytes(int_model)
