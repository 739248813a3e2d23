"""The exact int8 → uint8 rewrite: q + 128 and zero point + 128 on every 8-bit tensor.

``scale * (q - zp)`` is unchanged when q and zp move together, and TFLite's uint8 kernels take
any zero point, so the uint8 model computes the same integers shifted by 128: its outputs are
bit-identical to the int8 model's on the CPU. int32 biases (zero point 0, scale = input scale x
weight scale) are untouched. uint8 is the form Mesa's rocket driver validates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bredos_npu.models.quantize.flatbuffer import INT8, UINT8, set_tensor_data, subgraph, tensor_data

SHIFT = 128


def to_uint8(model: Any) -> int:
    """Rewrite every int8 tensor of ``model`` in place; return how many there were."""
    count = 0
    for tensor in subgraph(model).tensors:
        if tensor.type != INT8:
            continue
        values = tensor_data(model, tensor)
        if values is not None:
            set_tensor_data(model, tensor, (values.astype(np.int16) + SHIFT).astype(np.uint8))
        if tensor.quantization is not None and tensor.quantization.zeroPoint is not None:
            tensor.quantization.zeroPoint = [int(z) + SHIFT for z in tensor.quantization.zeroPoint]
        tensor.type = UINT8
        count += 1
    return count
