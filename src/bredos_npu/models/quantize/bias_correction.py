"""Bias correction (Nagel et al., ICCV 2019, section 4.2).

Quantizing weights W to W~ = W + e shifts a convolution's expected output by E[e x] = e E[x]
per output channel: a systematic error that per-tensor quantization makes large where a
channel's weights are small next to the tensor's range. Subtracting it from the bias removes it.
E[x] is each input channel's mean over calibration images (the paper's empirical variant, its
appendix D), and e is computed with the quantizer's own rule for symmetric tensor-wise 8-bit
weights: scale = max|W| / 127, q = round(W / scale) clipped to [-127, 127].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bredos_npu.models.quantize.flatbuffer import opcode_name, set_tensor_data, subgraph, tensor_data

CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")
QMAX = 127


def quantization_error(weights: np.ndarray) -> np.ndarray:
    """W~ - W for symmetric, narrow-range, tensor-wise 8-bit quantization."""
    top = float(np.abs(weights).max())
    if top == 0:
        return np.zeros_like(weights)
    scale = top / QMAX
    return np.clip(np.rint(weights / scale), -QMAX, QMAX) * scale - weights


def correctable(model: Any) -> list[int]:
    """Indices of the convolutions with float weights and a float bias."""
    graph = subgraph(model)
    found = []
    for index, op in enumerate(graph.operators):
        if opcode_name(model, op) not in CONVOLUTIONS or len(op.inputs) < 3 or op.inputs[2] < 0:
            continue
        weights, bias = (tensor_data(model, graph.tensors[t]) for t in op.inputs[1:3])
        if weights is not None and bias is not None and weights.dtype.kind == bias.dtype.kind == "f":
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
