"""Writing small, deterministic .tflite models for the tests with the flatbuffer schema."""

from __future__ import annotations

from typing import Any

import flatbuffers
import numpy as np

from bredos_npu.models.inspection.graph import schema

DTYPES = {"uint8": (3, np.uint8), "int8": (9, np.int8), "int32": (2, np.int32),
          "float32": (0, np.float32)}
ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU6": 3, "TANH": 4}


class ModelBuilder:
    """Tensors and ops of one subgraph; ``build()`` returns the .tflite bytes."""

    def __init__(self) -> None:
        self.fb = schema()
        self.buffers: list[Any] = [self.fb.BufferT()]  # buffer 0: the empty sentinel
        self.tensors: list[Any] = []
        self.ops: list[Any] = []
        self.codes: dict[tuple[str, int], int] = {}

    def tensor(self, shape: tuple[int, ...], dtype: str = "uint8",
               scale: tuple[float, ...] | None = (0.02,), zero_point: tuple[int, ...] | None = None,
               data: np.ndarray | None = None, axis: int = 0) -> int:
        t = self.fb.TensorT()
        t.shape = list(shape)
        t.type = DTYPES[dtype][0]
        t.name = f"t{len(self.tensors)}".encode()
        t.buffer = 0
        if data is not None:
            buffer = self.fb.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data, DTYPES[dtype][1]).tobytes(), np.uint8)
            self.buffers.append(buffer)
            t.buffer = len(self.buffers) - 1
        if scale is not None and dtype != "float32":
            q = self.fb.QuantizationParametersT()
            q.scale = list(scale)
            q.zeroPoint = list(zero_point if zero_point is not None else [0] * len(scale))
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, name: str, inputs: list[int], outputs: list[int], options: Any = None,
           options_type: str | None = None, version: int = 1) -> int:
        key = (name, version)
        if key not in self.codes:
            self.codes[key] = len(self.codes)
        o = self.fb.OperatorT()
        o.opcodeIndex = self.codes[key]
        o.inputs, o.outputs = list(inputs), list(outputs)
        if options is not None:
            o.builtinOptionsType = getattr(self.fb.BuiltinOptions, options_type)
            o.builtinOptions = options
        self.ops.append(o)
        return len(self.ops) - 1

    def conv(self, x: int, out_channels: int, kernel: int = 3, stride: tuple[int, int] = (1, 1),
             dilation: tuple[int, int] = (1, 1), activation: str = "NONE", depthwise: bool = False,
             weight_scales: tuple[float, ...] | None = None, out_scale: float = 0.02,
             out_zero_point: int = 0, dtype: str = "uint8", version: int = 1,
             depth_multiplier: int = 1) -> int:
        """A convolution with weights, bias and a new output tensor; returns the output index."""
        n, h, w, cin = self.tensors[x].shape
        channels = cin * depth_multiplier if depthwise else out_channels
        scales = weight_scales or (0.01,)
        rng = np.random.default_rng(len(self.ops))
        weight_shape = (1, kernel, kernel, channels) if depthwise else (channels, kernel, kernel, cin)
        low, high = (0, 255) if dtype == "uint8" else (-127, 127)
        weights = self.tensor(weight_shape, dtype if dtype != "float32" else "float32", scales,
                              [128 if dtype == "uint8" else 0] * len(scales),
                              rng.integers(low, high, weight_shape), axis=3 if depthwise else 0)
        in_scale = self.tensors[x].quantization.scale[0] if self.tensors[x].quantization else 1.0
        bias = self.tensor((channels,), "int32" if dtype != "float32" else "float32",
                           tuple(in_scale * s for s in scales), None, np.zeros(channels))
        oh, ow = -(-h // stride[1]), -(-w // stride[0])
        out = self.tensor((n, oh, ow, channels), dtype, (out_scale,), (out_zero_point,))
        options = (self.fb.DepthwiseConv2DOptionsT() if depthwise else self.fb.Conv2DOptionsT())
        options.padding = self.fb.Padding.SAME
        options.strideW, options.strideH = stride
        options.dilationWFactor, options.dilationHFactor = dilation
        options.fusedActivationFunction = ACTIVATIONS[activation]
        if depthwise:
            options.depthMultiplier = depth_multiplier
        self.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x, weights, bias], [out],
                options, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions", version)
        return out

    def add(self, a: int, b: int, out_scale: float = 0.04) -> int:
        out = self.tensor(self.tensors[a].shape, self.dtype(a), (out_scale,), (0,))
        options = self.fb.AddOptionsT()
        self.op("ADD", [a, b], [out], options, "AddOptions")
        return out

    def unary(self, name: str, x: int, options: Any = None, options_type: str | None = None,
              shape: tuple[int, ...] | None = None) -> int:
        quant = self.tensors[x].quantization
        out = self.tensor(shape or self.tensors[x].shape, self.dtype(x),
                          tuple(quant.scale) if quant else None,
                          tuple(quant.zeroPoint) if quant else None)
        self.op(name, [x], [out], options, options_type)
        return out

    def dtype(self, index: int) -> str:
        code = self.tensors[index].type
        return next(name for name, (c, _) in DTYPES.items() if c == code)

    def build(self, inputs: list[int], outputs: list[int]) -> bytes:
        fb = self.fb
        sub = fb.SubGraphT()
        sub.tensors, sub.operators = self.tensors, self.ops
        sub.inputs, sub.outputs = list(inputs), list(outputs)
        model = fb.ModelT()
        model.version = 3
        model.subgraphs = [sub]
        model.buffers = self.buffers
        model.operatorCodes = []
        for (name, version), _ in sorted(self.codes.items(), key=lambda kv: kv[1]):
            code = fb.OperatorCodeT()
            value = getattr(fb.BuiltinOperator, name)
            code.builtinCode = value
            code.deprecatedBuiltinCode = min(value, 127)
            code.version = version
            model.operatorCodes.append(code)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
