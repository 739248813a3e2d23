"""Quantization between pixels, model input tensors and model outputs.

TFLite stores a quantized value q for the real value ``r = scale * (q - zero_point)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# MobileNet-style float inputs expect pixels mapped to [-1, 1].
DEFAULT_MEAN = 127.5
DEFAULT_STD = 127.5


class Quantization(NamedTuple):
    """Per-tensor quantization of a tensor; scale 0 means "not quantized"."""

    scale: float
    zero_point: int


Norm = float | tuple[float, ...]


def pixels_to_input(
    pixels: np.ndarray,
    dtype: np.dtype | type,
    quant: Quantization,
    mean: Norm | None = None,
    std: Norm | None = None,
) -> np.ndarray:
    """Turn uint8 pixels (0..255) into the model's input tensor values.

    ``mean``/``std`` are one value, or one per channel; when only one is given the other is 127.5.
    - float input: ``(pixels - mean) / std`` (default mean = std = 127.5, i.e. [-1, 1]).
    - quantized input without ``mean``/``std``: uint8 takes the pixels as they are and int8 takes
      ``pixels - 128``; converters choose the input quantization so that raw pixels are the input.
    - quantized input with ``mean``/``std``: normalise, then quantize with the input's own scale
      and zero point.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        m = np.float32(DEFAULT_MEAN) if mean is None else np.asarray(mean, np.float32)
        s = np.float32(DEFAULT_STD) if std is None else np.asarray(std, np.float32)
        return ((pixels.astype(np.float32) - m) / s).astype(dtype)
    if mean is None and std is None:
        if dtype == np.uint8:
            return pixels.astype(np.uint8)
        if dtype == np.int8:
            return (pixels.astype(np.int16) - 128).astype(np.int8)
    m = np.float32(DEFAULT_MEAN) if mean is None else np.asarray(mean, np.float32)
    s = np.float32(DEFAULT_STD) if std is None else np.asarray(std, np.float32)
    return quantize((pixels.astype(np.float32) - m) / s, dtype, quant)


def takes_pixels(dtype: np.dtype | type, quant: Quantization, mean: Norm | None = None,
                 std: Norm | None = None) -> bool:
    """True when :func:`pixels_to_input` can make this input: float, uint8/int8 raw pixels, or an
    integer type with quantization parameters to quantize normalised pixels with."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return True
    if dtype.kind not in "iu":
        return False
    raw = mean is None and std is None and dtype in (np.uint8, np.int8)
    return raw or quant.scale != 0


def finite_normalization(mean: Norm | None, std: Norm | None) -> bool:
    """True when ``(pixel - mean) / std`` is a finite float32 for every pixel 0..255.

    ``std = 1e-300`` is not 0 but is 0 in float32, and ``mean = 1e300`` overflows: both would
    feed the model inf/NaN and every score would print as ``nan%``.
    """
    with np.errstate(all="ignore"):
        m = np.asarray(DEFAULT_MEAN if mean is None else mean, np.float64).astype(np.float32)
        s = np.asarray(DEFAULT_STD if std is None else std, np.float64).astype(np.float32)
        ends = (np.array([[0.0], [255.0]], np.float32) - m) / s
    return bool(np.all(np.isfinite(ends)) and np.all(np.isfinite(s)) and np.all(s != 0))


def quantize(real: np.ndarray, dtype: np.dtype | type, quant: Quantization) -> np.ndarray:
    """Real values to the integer dtype with scale/zero point, rounded and clipped."""
    info = np.iinfo(np.dtype(dtype))
    if quant.scale == 0:
        raise ValueError("cannot quantize to a tensor without quantization parameters")
    q = np.round(real / quant.scale + quant.zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, quant: Quantization) -> np.ndarray:
    """Real values of a tensor: ``scale * (q - zero_point)``; float tensors pass through."""
    if values.dtype.kind == "f" or quant.scale == 0:
        return values.astype(np.float32)
    return (quant.scale * (values.astype(np.float32) - quant.zero_point)).astype(np.float32)
