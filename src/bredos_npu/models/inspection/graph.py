"""Reading a .tflite flatbuffer into plain records, without an interpreter.

Uses a Python module generated from TFLite's ``schema.fbs``: ai-edge-litert's
(``schema_py_generated``), else TensorFlow's copy, else the pure-Python ``tflite`` package (a
dependency), so reading models never depends on which TFLite runtime runs them.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from bredos_npu.errors import BredosNpuError, ModelError, Reason, RuntimeMissingError

# The runtimes' own copies first (the newest schema: op names the ``tflite`` package may lack).
SCHEMA_MODULES = ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated",
                  "tflite")

# Option tables we read, and the fields of interest in each (schema accessor names).
OPTION_FIELDS = ("StrideW", "StrideH", "DilationWFactor", "DilationHFactor", "Padding",
                 "FusedActivationFunction", "DepthMultiplier", "FilterWidth", "FilterHeight")
OPTION_TABLES = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "ADD": "AddOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions",
}
DTYPE_SIZES = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1,
               "int16": 2, "int8": 1, "float64": 8, "uint32": 4, "uint16": 2}


@cache
def schema() -> Any:
    """The generated TFLite schema module (see the module docstring for where it comes from)."""
    for name in SCHEMA_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise RuntimeMissingError("Reading .tflite files needs the TFLite schema, and no module "
                              "providing it is installed", "run `pip install tflite`",
                              Reason.MISSING_PACKAGE, package="tflite")


def _enum_names(enum_class: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True)
class TensorInfo:
    """A tensor: shape, dtype name ("uint8", "float32"...), quantization, and whether it is constant.

    ``scales``/``zero_points`` hold one value per tensor or one per channel (per-axis).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    constant: bool = False

    @property
    def quantized(self) -> bool:
        """True when the tensor has quantization parameters (some scale other than 0)."""
        return bool(self.scales) and any(s != 0 for s in self.scales)

    @property
    def per_axis(self) -> bool:
        """Per-axis as Mesa Teflon sees it: several scales that are not all equal."""
        return len(self.scales) > 1 and len(set(self.scales)) > 1

    @property
    def elements(self) -> int:
        """Number of values; Python ints, so huge shapes cannot overflow (unknown dims count 0)."""
        return math.prod(max(int(d), 0) for d in self.shape) if self.shape else 1

    @property
    def bytes(self) -> int:
        """Its size in bytes (elements times the dtype's size; 4 for unknown dtypes)."""
        return self.elements * DTYPE_SIZES.get(self.dtype, 4)


@dataclass(frozen=True)
class OpInfo:
    """An operator: type name, its registration version, tensor indices, and parsed options.

    ``options`` keys: stride_w, stride_h, dilation_w, dilation_h, padding ("SAME"/"VALID"),
    activation ("NONE", "RELU", "RELU6", ...), depth_multiplier, filter_w, filter_h.
    """

    index: int
    name: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    custom: bool = False


@dataclass(frozen=True)
class Graph:
    """The main subgraph of a model."""

    tensors: list[TensorInfo]
    ops: list[OpInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def producer(self) -> dict[int, int]:
        """Tensor index → index of the op that writes it."""
        return {t: op.index for op in self.ops for t in op.outputs}


def parse(content: bytes, source: str | Path = "model") -> Graph:
    """Parse the flatbuffer; raises ModelError for a truncated or corrupt file.

    The flatbuffers reader does not verify what it reads, so a damaged file can fail in any way
    (IndexError, struct.error, UnicodeDecodeError, RecursionError...): all of them mean "corrupt".
    """
    try:
        graph = _parse(content)
        _check_indices(graph)
        return graph
    except BredosNpuError:
        raise
    except Exception as error:  # the reader's failures on damaged bytes, whatever their type
        raise ModelError(f"{source} is truncated or corrupt (its TFLite flatbuffer cannot be read)",
                         "download or export it again", Reason.MODEL_CORRUPT, path=source) from error


def _check_indices(graph: Graph) -> None:
    """Tensor indices of ops and of the subgraph must name tensors (-1: an omitted input)."""
    count = len(graph.tensors)
    for op in graph.ops:
        if any(not -1 <= t < count for t in op.inputs) or any(not 0 <= t < count for t in op.outputs):
            raise ValueError(f"op {op.index} names a tensor that does not exist")
    if any(not 0 <= t < count for t in (*graph.inputs, *graph.outputs)):
        raise ValueError("the subgraph names a tensor that does not exist")


def _parse(content: bytes) -> Graph:
    fb = schema()
    model = fb.Model.GetRootAs(content, 0)
    if model.SubgraphsLength() < 1:
        raise ValueError("no subgraph")
    subgraph = model.Subgraphs(0)
    buffers = [_has_data(model.Buffers(i), len(content)) for i in range(model.BuffersLength())]
    tensors = [_tensor(subgraph.Tensors(i), i, buffers) for i in range(subgraph.TensorsLength())]
    codes = [_op_code(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
    ops = [_op(subgraph.Operators(i), i, codes) for i in range(subgraph.OperatorsLength())]
    return Graph(tensors, ops, tuple(int(t) for t in _ints(subgraph.InputsAsNumpy())),
                 tuple(int(t) for t in _ints(subgraph.OutputsAsNumpy())))


def _ints(array: Any) -> list[int]:
    return [] if isinstance(array, int) else [int(x) for x in array]


def _has_data(buffer: Any, file_size: int) -> bool:
    if buffer.DataLength() > 0:
        start = buffer._tab.Vector(buffer._tab.Offset(4))
        if start + buffer.DataLength() > file_size:  # a truncated file
            raise ValueError("buffer beyond end of file")
        return True
    offset = buffer.Offset() if hasattr(buffer, "Offset") else 0
    if offset > 1:  # data stored after the flatbuffer (models > 2 GB)
        if offset + buffer.Size() > file_size:
            raise ValueError("buffer beyond end of file")
        return True
    return False


def _tensor(tensor: Any, index: int, buffers: list[bool]) -> TensorInfo:
    dtype = _enum_names(schema().TensorType).get(tensor.Type(), "unknown").lower()
    quant = tensor.Quantization()
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    if quant is not None and quant.ScaleLength() > 0:
        scales = tuple(float(s) for s in quant.ScaleAsNumpy())
        zero_points = tuple(int(z) for z in _ints(quant.ZeroPointAsNumpy()))
    buffer = tensor.Buffer()
    return TensorInfo(
        index=index,
        name=(tensor.Name() or b"").decode(errors="replace"),
        shape=tuple(_ints(tensor.ShapeAsNumpy())),
        dtype=dtype,
        scales=scales,
        zero_points=zero_points,
        constant=0 < buffer < len(buffers) and buffers[buffer],
    )


class _Code(NamedTuple):
    name: str
    custom: bool
    version: int


def _op_code(code: Any) -> _Code:
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    name = _enum_names(schema().BuiltinOperator).get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        return _Code((code.CustomCode() or b"custom").decode(errors="replace"), True, code.Version())
    return _Code(name, False, code.Version())


def _op(op: Any, index: int, codes: list[_Code]) -> OpInfo:
    code = codes[op.OpcodeIndex()]
    return OpInfo(index, code.name, code.version, tuple(_ints(op.InputsAsNumpy())),
                  tuple(_ints(op.OutputsAsNumpy())), _options(op, code.name), code.custom)


def _options(op: Any, name: str) -> dict[str, Any]:
    table_name = OPTION_TABLES.get(name)
    table = op.BuiltinOptions() if table_name else None
    if table is None:
        return {}
    options = getattr(schema(), table_name)()
    options.Init(table.Bytes, table.Pos)
    raw = {f: getattr(options, f)() for f in OPTION_FIELDS if hasattr(options, f)}
    activations = _enum_names(schema().ActivationFunctionType)
    paddings = _enum_names(schema().Padding)
    keys = {"StrideW": "stride_w", "StrideH": "stride_h", "DilationWFactor": "dilation_w",
            "DilationHFactor": "dilation_h", "Padding": "padding",
            "FusedActivationFunction": "activation", "DepthMultiplier": "depth_multiplier",
            "FilterWidth": "filter_w", "FilterHeight": "filter_h"}
    parsed = {keys[f]: v for f, v in raw.items()}
    if "activation" in parsed:
        parsed["activation"] = activations.get(parsed["activation"], str(parsed["activation"]))
    if "padding" in parsed:
        parsed["padding"] = paddings.get(parsed["padding"], str(parsed["padding"]))
    return parsed
