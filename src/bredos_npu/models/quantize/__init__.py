"""Turning float and per-channel int8 models into per-tensor uint8 models the rocket NPU runs.

One module per step, applied in this order by :mod:`.pipeline`:

- :mod:`.flatbuffer`: read/write the .tflite object tree, keeping metadata and packed files;
- :mod:`.normalise`: old files: a ``serving_default`` signature, opcodes with ``builtin_code`` set;
- :mod:`.dequantize`: a full-integer (per-channel) int8 model back to float;
- :mod:`.equalize`: cross-layer equalization (Nagel et al., ICCV 2019, section 4.1);
- :mod:`.bias_correction`: the expected error of quantized weights removed from the biases (4.2);
- :mod:`.calibrate`: images → input tensors; ai-edge-quantizer tensor-wise static int8;
- :mod:`.uint8`: the exact int8 → uint8 rewrite;
- :mod:`.evaluate`: agreement with the source model on held-out images;
- :mod:`.check`: the result must load and pass ``inspect``'s Teflon rules.
"""
