"""Adaptive rounding: the weights' 8-bit grid points chosen for the layer's output, not one by one.

Rounding each weight to its nearest grid point minimises the weights' error, but what matters
is the convolution's output error, E[(dW x)^2] = dW C dW^T with C the covariance of the inputs
the weight multiplies (AdaRound, Nagel et al., ICML 2020, section 3; the mean part is left to
bias correction). With C measured on the calibration images:

- a 3x3 depthwise channel has 9 weights, so all 2^9 floor/ceil choices are tried and the best
  kept (the exact optimum of AdaRound's objective for that channel);
- a full convolution's output channel has hundreds of weights, so they are rounded one at a
  time and each rounding error is spread over the weights not yet rounded, weighted by C's
  inverse (GPTQ, Frantar et al., ICLR 2023 / Optimal Brain Quantization).

The grid is the quantizer's own for symmetric tensor-wise 8-bit weights: scale = range / 127.
The returned weights lie exactly on it, so the quantizer keeps them as they are.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import numpy as np

from bredos_npu.models.quantize.bias_correction import geometry
from bredos_npu.models.quantize.flatbuffer import opcode_name, set_tensor_data, subgraph, tensor_data
from bredos_npu.models.quantize.statistics import tracing_interpreter

QMAX = 127
DAMPING = 0.01  # share of the mean diagonal added to C before inverting it (GPTQ's default)
MAX_POSITIONS = 3136  # patches per image and layer (56 x 56) used for the statistics
EXHAUSTIVE_TAPS = 9  # up to 3x3 depthwise kernels every floor/ceil choice is tried (2^9)
ENOUGH_SAMPLES = 4  # patches per weight of an output channel needed to trust C


def patches(values: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int], same: bool, output: tuple[int, int]) -> np.ndarray:
    """The input patches a convolution multiplies: (positions, kh * kw, channels)."""
    height, width, channels = values.shape
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, output
    pad_h = max((oh - 1) * sh + (kernel[0] - 1) * dh + 1 - height, 0) if same else 0
    pad_w = max((ow - 1) * sw + (kernel[1] - 1) * dw + 1 - width, 0) if same else 0
    padded = np.pad(values, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2),
                             (0, 0)))
    taps = [padded[kh * dh: kh * dh + (oh - 1) * sh + 1: sh, kw * dw: kw * dw + (ow - 1) * sw + 1: sw]
            for kh in range(kernel[0]) for kw in range(kernel[1])]
    return np.stack(taps, axis=2).reshape(oh * ow, len(taps), channels)


def grid_scale(weights: np.ndarray, limit: float | None = None) -> float:
    top = float(np.abs(weights).max()) if limit is None else limit
    return top / QMAX if top > 0 else 1.0


def round_depthwise(weights: np.ndarray, covariance: np.ndarray, scale: float) -> np.ndarray:
    """Best floor/ceil rounding of each channel of 1 x kh x kw x C depthwise weights.

    ``covariance``: C x (kh*kw) x (kh*kw), per channel, of the input patch values."""
    _, kh, kw, channels = weights.shape
    w = weights.reshape(kh * kw, channels).T  # C x K
    low = np.floor(w / scale)
    choices = np.array(list(itertools.product((0, 1), repeat=kh * kw)), np.float64)  # 2^K x K
    q = np.clip(low[:, None, :] + choices[None], -QMAX, QMAX)  # C x 2^K x K
    error = q * scale - w[:, None, :]
    cost = np.einsum("cbk,ckl,cbl->cb", error, covariance, error)
    best = q[np.arange(channels), cost.argmin(axis=1)]
    return (best * scale).T.reshape(weights.shape)


def round_sequential(weights: np.ndarray, covariance: np.ndarray, scale: float) -> np.ndarray:
    """GPTQ rounding of O x K weights (K inputs per output, ``covariance`` K x K)."""
    w = weights.astype(np.float64).copy()
    k = w.shape[1]
    damped = covariance + DAMPING * np.mean(np.diag(covariance)) * np.eye(k) + 1e-12 * np.eye(k)
    inverse = np.linalg.cholesky(np.linalg.inv(damped)).T  # upper Cholesky factor of C^-1
    q = np.empty_like(w)
    for i in range(k):
        q[:, i] = np.clip(np.rint(w[:, i] / scale), -QMAX, QMAX)
        error = (w[:, i] - q[:, i] * scale) / inverse[i, i]
        w[:, i + 1:] -= np.outer(error, inverse[i, i + 1:])
    return q * scale


def keep_range(rounded: np.ndarray, original: np.ndarray, scale: float) -> np.ndarray:
    """Put the tensor's largest weight back on +-127 if rounding moved it inwards: the quantizer
    derives its scale from the largest value, so the grid must keep its end point."""
    if np.abs(rounded).max() >= QMAX * scale * (1 - 1e-6):
        return rounded
    fixed = rounded.copy()
    at = np.unravel_index(np.abs(original).argmax(), original.shape)
    fixed[at] = np.sign(original[at]) * QMAX * scale
    return fixed


CLIP_STEPS = np.linspace(0.2, 1.0, 81)  # candidate ranges, as shares of the largest weight


def clip_range(weights: np.ndarray) -> float:
    """The range (as a clipping limit) whose 8-bit grid gives the smallest squared error of the
    weights: clipping a few outliers buys a finer grid for all the others."""
    top = float(np.abs(weights).max())
    if top == 0:
        return 0.0
    w = weights.reshape(-1).astype(np.float64)
    errors = []
    for share in CLIP_STEPS:
        scale = top * share / QMAX
        errors.append(float(np.square(np.clip(np.rint(w / scale), -QMAX, QMAX) * scale - w).sum()))
    return top * float(CLIP_STEPS[int(np.argmin(errors))])


class Moments(NamedTuple):
    """Input patch statistics of one convolution: ``mean`` (taps x channels); ``second`` the
    sum of products (full convolution: (taps*channels)^2; depthwise: channels x taps x taps);
    ``count`` the number of patches summed."""

    mean: np.ndarray
    second: np.ndarray
    count: int

    def covariance(self, depthwise: bool) -> np.ndarray:
        if depthwise:
            return self.second / self.count - np.einsum("kc,lc->ckl", self.mean, self.mean)
        flat = self.mean.reshape(-1)
        return self.second / self.count - np.outer(flat, flat)


def input_moments(model: Any, content: bytes, convolutions: list[int], inputs: list[np.ndarray]
                  ) -> dict[int, Moments]:
    """Patch statistics of each convolution's input in the float model ``content`` (whose tree
    is ``model``), over ``inputs``."""
    graph = subgraph(model)
    interpreter = tracing_interpreter(content)
    entry = interpreter.get_input_details()[0]["index"]
    shapes = {i: (opcode_name(model, graph.operators[i]) == "DEPTHWISE_CONV_2D",
                  geometry(model, graph.operators[i]),
                  tuple(tensor_data(model, graph.tensors[graph.operators[i].inputs[1]]).shape[1:3]))
              for i in convolutions}
    sums: dict[int, list[Any]] = {i: [0.0, 0.0, 0] for i in convolutions}
    for tensor in inputs:
        interpreter.set_tensor(entry, tensor)
        interpreter.invoke()
        for i, (depthwise, shape, kernel) in shapes.items():
            # float32 products (one image's sums) run on BLAS far faster than float64; the sums
            # over images are kept in float64.
            values = interpreter.get_tensor(graph.operators[i].inputs[0])[0].astype(np.float32)
            found = patches(values, kernel, shape.stride, shape.dilation, shape.same_padding,
                            shape.output_size)
            found = found[::-(-len(found) // MAX_POSITIONS)]  # neighbours say much the same
            if depthwise:
                second = np.einsum("pkc,plc->ckl", found, found, optimize=True)
            else:
                flat = found.reshape(found.shape[0], -1)
                second = flat.T @ flat
            sums[i][0] = sums[i][0] + second.astype(np.float64)
            sums[i][1] = sums[i][1] + found.sum(axis=0, dtype=np.float64)
            sums[i][2] += found.shape[0]
    return {i: Moments(s / n, second, n) for i, (second, s, n) in sums.items()}


def adaptive_round(model: Any, moments: dict[int, Moments]) -> int:
    """Clip, round and bias-correct the weights of each convolution in ``moments``, in place.

    Each weight tensor is clipped to :func:`clip_range`, rounded on that grid for the smallest
    output error (:func:`round_depthwise`, :func:`round_sequential`), and the mean output
    error the new weights make on the calibration patches, (W~ - W) E[patch], is subtracted
    from the bias (Nagel et al., 2019, section 4.2, with the exact patch means). Returns how
    many convolutions were rounded."""
    graph = subgraph(model)
    for index, stats in moments.items():
        op = graph.operators[index]
        depthwise = opcode_name(model, op) == "DEPTHWISE_CONV_2D"
        weights = tensor_data(model, graph.tensors[op.inputs[1]]).astype(np.float64)
        bias = tensor_data(model, graph.tensors[op.inputs[2]]).astype(np.float64)
        limit = clip_range(weights)
        if limit == 0:
            continue
        scale = limit / QMAX
        clipped = np.clip(weights, -limit, limit)
        covariance = stats.covariance(depthwise)
        if depthwise and weights.shape[1] * weights.shape[2] <= EXHAUSTIVE_TAPS:
            rounded = round_depthwise(clipped, covariance, scale)
            shift = np.einsum("kc,kc->c", (rounded - weights)[0].reshape(-1, weights.shape[3]),
                              stats.mean)
        elif depthwise:  # larger kernels: GPTQ within each channel
            flat = clipped[0].reshape(-1, weights.shape[3]).T  # C x taps
            rounded = np.stack([round_sequential(flat[c:c + 1], covariance[c], scale)[0]
                                for c in range(len(flat))]).T.reshape(weights.shape)
            shift = np.einsum("kc,kc->c", (rounded - weights)[0].reshape(-1, weights.shape[3]),
                              stats.mean)
        else:
            flat = clipped.reshape(len(clipped), -1)
            if stats.count >= ENOUGH_SAMPLES * flat.shape[1]:
                rounded = round_sequential(flat, covariance, scale).reshape(weights.shape)
            else:  # too few samples to estimate C (a classifier's 1x1 head): round to nearest
                rounded = np.clip(np.rint(clipped / scale), -QMAX, QMAX) * scale
            shift = (rounded - weights).reshape(len(weights), -1) @ stats.mean.reshape(-1)
        rounded = keep_range(rounded, clipped, scale)
        set_tensor_data(model, graph.tensors[op.inputs[1]], rounded.astype(np.float32))
        set_tensor_data(model, graph.tensors[op.inputs[2]], (bias - shift).astype(np.float32))
    return len(moments)
