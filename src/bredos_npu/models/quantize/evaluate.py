"""How closely a quantized model follows its source: top-1 agreement and score difference.

Both models run on the CPU on the same held-out pixels, each with its own input preprocessing
and its output dequantized, so the comparison is in real scores (0..1 for a softmax).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bredos_npu.tasks.quant import Quantization, dequantize, pixels_to_input


class Agreement(NamedTuple):
    """``top1``: share of images whose best class is the same (0..1); ``mean_abs_diff``: mean
    absolute difference of all output scores."""

    top1: float
    mean_abs_diff: float


class Runner:
    """One CPU interpreter over a model's bytes: pixels in, dequantized first output out."""

    def __init__(self, content: bytes, mean: float | tuple[float, ...] | None = None,
                 std: float | tuple[float, ...] | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=content, num_threads=2)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.mean, self.std = mean, std

    def input_tensor(self, pixels: np.ndarray) -> np.ndarray:
        scale, zero_point = self.input["quantization"]
        quant = Quantization(float(scale), int(zero_point))
        float_input = np.dtype(self.input["dtype"]).kind == "f"
        mean, std = (self.mean, self.std) if float_input else (None, None)
        return pixels_to_input(pixels, self.input["dtype"], quant, mean, std)[np.newaxis]

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], self.input_tensor(pixels))
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.output["index"])
        scale, zero_point = self.output["quantization"]
        return dequantize(raw, Quantization(float(scale), int(zero_point))).reshape(-1)


def agreement(source: Runner | list[np.ndarray], candidate: Runner, images: list[np.ndarray]
              ) -> Agreement:
    """``source``: a runner, or its scores on ``images`` already computed (in order)."""
    same, differences = 0, []
    for number, pixels in enumerate(images):
        a = source[number] if isinstance(source, list) else source.scores(pixels)
        b = candidate.scores(pixels)
        same += int(a.argmax() == b.argmax())
        differences.append(float(np.abs(a - b).mean()))
    return Agreement(same / len(images), float(np.mean(differences)))
