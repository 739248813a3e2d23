"""Static per-tensor int8 quantization with ai-edge-quantizer (pure Python, no TensorFlow).

Recipe: every supported op, 8-bit activations (asymmetric) and 8-bit weights (symmetric) with
``TENSORWISE`` granularity, i.e. one scale per tensor as rocket needs; activation ranges come
from calibration on the float model. The input's range is set to the whole pixel range
(0..255 normalised the way the model expects), so the quantized input takes raw pixels.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import numpy as np

from bredos_npu.errors import RuntimeMissingError

EXTRA_HINT = "pip install 'bredos-npu[quantize]'"


def _library() -> tuple[Any, Any]:
    try:
        from ai_edge_quantizer import qtyping, quantizer
    except ImportError:
        raise RuntimeMissingError(f"Quantizing needs ai-edge-quantizer: run `{EXTRA_HINT}`.") from None
    return quantizer, qtyping


def require() -> None:
    """Raise RuntimeMissingError (exit 8) now when the quantize extra is missing."""
    _library()


def quantize_int8(float_model: bytes, signature: str, input_name: str, input_tensor: str,
                  inputs: list[np.ndarray], input_range: tuple[float, float]) -> bytes:
    """The tensor-wise int8 model of ``float_model``, calibrated on ``inputs`` (model tensors).

    ``input_name`` is the signature's name for the image input, ``input_tensor`` its tensor's name.
    """
    quantizer, qtyping = _library()
    engine = quantizer.Quantizer(bytearray(float_model))
    engine.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=8,
                             weight_num_bits=8,
                             weight_granularity=qtyping.QuantGranularity.TENSORWISE)
    quiet = io.StringIO()
    # The library draws progress bars and logs on stderr; our callers report progress themselves.
    with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "preserve_all_tensors is for debugging"
        ranges = engine.calibrate({signature: [{input_name: x} for x in inputs]})
        if input_tensor in ranges:
            shape = np.shape(ranges[input_tensor]["min"])
            ranges[input_tensor] = {"min": np.full(shape, input_range[0], np.float32),
                                  "max": np.full(shape, input_range[1], np.float32)}
        result = engine.quantize(ranges, enable_progress_report=False)
    return bytes(result.quantized_model)
