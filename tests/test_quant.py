"""Input quantization from the input tensor, output dequantization, top-k."""

from __future__ import annotations

import numpy as np
import pytest

from bredos_npu.tasks.classify import to_probabilities, top_k
from bredos_npu.tasks.quant import Quantization, dequantize, pixels_to_input, quantize

PIXELS = np.array([[0, 127, 128, 255]], dtype=np.uint8)


def test_uint8_input_takes_pixels_as_they_are():
    out = pixels_to_input(PIXELS, np.uint8, Quantization(1 / 128, 128))
    assert out.dtype == np.uint8 and np.array_equal(out, PIXELS)


def test_int8_input_is_shifted_by_128():
    out = pixels_to_input(PIXELS, np.int8, Quantization(1 / 255, -128))
    assert out.dtype == np.int8 and out.tolist() == [[-128, -1, 0, 127]]


def test_float_input_is_minus_one_to_one_by_default():
    out = pixels_to_input(PIXELS, np.float32, Quantization(0, 0))
    assert out.dtype == np.float32
    assert out[0].tolist() == pytest.approx([-1.0, -0.00392, 0.00392, 1.0], abs=1e-4)


def test_explicit_normalisation_is_quantized_with_the_input_parameters():
    # real = (p - 0) / 255 in [0, 1]; int8 with scale 1/255, zero point -128 → p - 128
    out = pixels_to_input(PIXELS, np.int8, Quantization(1 / 255, -128), mean=0, std=255)
    assert out.tolist() == [[-128, -1, 0, 127]]


def test_quantize_rounds_and_clips():
    q = quantize(np.array([-10.0, 0.5, 1.0, 10.0]), np.uint8, Quantization(0.5, 3))
    assert q.tolist() == [0, 4, 5, 23]


def test_dequantize_uses_scale_and_zero_point():
    values = np.array([0, 128, 255], dtype=np.uint8)
    assert dequantize(values, Quantization(1 / 256, 0)).tolist() == [0.0, 0.5, 255 / 256]
    assert dequantize(values, Quantization(0.1, 128)).tolist() == pytest.approx([-12.8, 0, 12.7])


def test_float_outputs_pass_through():
    values = np.array([0.25, 0.75], dtype=np.float32)
    assert dequantize(values, Quantization(0, 0)) is not values
    assert dequantize(values, Quantization(0, 0)).tolist() == [0.25, 0.75]


def test_logits_get_a_softmax_probabilities_do_not():
    probs = np.array([0.1, 0.9], dtype=np.float32)
    assert to_probabilities(probs).tolist() == pytest.approx([0.1, 0.9])
    logits = to_probabilities(np.array([2.0, 0.0, -1.0]))
    assert logits.sum() == pytest.approx(1.0) and logits.argmax() == 0


def test_top_k_order_ties_and_labels():
    classes = top_k(np.array([0.1, 0.4, 0.4, 0.1]), 3, ["a", "b", "c", "d"])
    assert [(c.index, c.label) for c in classes] == [(1, "b"), (2, "c"), (0, "a")]
    assert len(top_k(np.array([0.5, 0.5]), 10)) == 2
