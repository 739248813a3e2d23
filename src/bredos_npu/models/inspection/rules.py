"""What Mesa's Teflon delegate hands to the rocket NPU driver, as data.

Mirrors Mesa at (GitHub mirror sailfishos-mirror/mesa):
- src/gallium/frontends/teflon/tfl_device.c @ 024c70fbb3ccb1fdd0627b35662aac433c190666
  (fill_operation, fill_tensor, fused_relu6_supported, check_op_support)
- src/gallium/drivers/rocket/rkt_ml.c @ 0b17f5d2f2858650c19f666337d590ca35591912
  (rkt_ml_operation_supported, rkt_ml_subgraph_create)
See ../shared/reference/teflon-rocket-rules.md for the summary. A new Mesa release means
editing the tables and the two judge functions below, nothing else.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bredos_npu.models.inspection.graph import Graph, OpInfo, TensorInfo

# Builtins that Teflon's fill_operation() translates; every other operator stays on the CPU.
TEFLON_OPS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MUL", "ADD",
    "CONCATENATION", "SPLIT", "PAD", "FULLY_CONNECTED", "RESHAPE", "RELU", "ABS", "LOGISTIC",
    "SUB", "TRANSPOSE", "STRIDED_SLICE", "RESIZE_NEAREST_NEIGHBOR",
})
# Of those, rkt_ml_operation_supported() accepts only these.
ROCKET_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "ADD"})
CONVOLUTIONS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})
# fill_operation() asserts the fused activation of a convolution is one of these.
CONV_ACTIVATIONS = frozenset({"NONE", "RELU", "RELU6"})
RELU6_LIMIT = 6.0
QUANTIZED_MAX = {"uint8": 255, "int8": 127}
QUANTIZED_MIN = {"uint8": 0, "int8": -128}
# uint8 is the only type Mesa's tests validate (test_teflon.cpp: is_signed{false}).
VALIDATED_DTYPE = "uint8"

NPU, CPU = "npu", "cpu"
# How bad a hazard is: Mesa takes the process down, the NPU computes something else than the
# CPU would, or nobody has checked the result (int8 on rocket).
CRASH, WRONG, UNVERIFIED = "crash", "wrong", "unverified"


class Hazard(str):
    """A hazard's sentence (it is a str) with its ``level``: crash, wrong or unverified."""

    level: str

    def __new__(cls, text: str, level: str) -> Hazard:
        hazard = super().__new__(cls, text)
        hazard.level = level
        return hazard


class Verdict(NamedTuple):
    """Where Teflon would run an op (``npu``/``cpu``), why not on the NPU, and known hazards."""

    target: str
    reason: str = ""
    hazards: tuple[Hazard, ...] = ()


def judge(op: OpInfo, graph: Graph) -> Verdict:
    """The static verdict for one op (ADD fusion, which needs partitions, is checked later)."""
    if op.custom:
        return Verdict(CPU, f"custom operator {op.name} is not supported by Teflon")
    if op.name not in TEFLON_OPS:
        return Verdict(CPU, f"{op.name} is not supported by Teflon")
    if op.name not in ROCKET_OPS:
        return Verdict(CPU, f"{op.name} is not supported by the rocket NPU driver")
    if op.name == "ADD":
        return _judge_add(op, graph)
    return _judge_convolution(op, graph)


def _judge_add(op: OpInfo, graph: Graph) -> Verdict:
    if any(graph.tensors[t].constant for t in op.inputs[:2]):
        return Verdict(CPU, "ADD with a constant input is not supported by rocket")
    output = graph.tensors[op.outputs[0]]
    hazards = list(_dtype_hazards(output))
    activation = op.options.get("activation", "NONE")
    if activation != "NONE" and _range_allows_negatives(output):
        # rkt_regcmd.c always sets the ReLU bypass bits: add.relu is never applied.
        hazards.append(Hazard(f"fused {activation} is not applied by rocket and the output range "
                              "allows negative values: results differ from the CPU", WRONG))
    return Verdict(NPU, hazards=tuple(hazards))


def _judge_convolution(op: OpInfo, graph: Graph) -> Verdict:
    options = op.options
    tensors = graph.tensors
    data, weights = tensors[op.inputs[0]], tensors[op.inputs[1]]
    bias = tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    output = tensors[op.outputs[0]]
    activation = options.get("activation", "NONE")
    # Teflon reads dilation only from version-2+ registrations.
    dilated = op.version >= 2 and (options.get("dilation_w", 1) > 1 or options.get("dilation_h", 1) > 1)

    if activation == "RELU6" and output.dtype not in QUANTIZED_MAX:
        return Verdict(CPU, f"fused RELU6 on a {output.dtype} output: Teflon takes RELU6 only on "
                            "8-bit outputs")
    if activation == "RELU6" and not relu6_within_limit(output):
        return Verdict(CPU, f"fused RELU6 but the output range reaches {quantized_max_value(output):.7g} "
                            f"> {RELU6_LIMIT:g} (Teflon rejects it)")
    per_axis = [name for name, t in (("input", data), ("weights", weights), ("bias", bias),
                                     ("output", output)) if t is not None and t.per_axis]
    if per_axis:
        return Verdict(CPU, f"per-axis quantized {' and '.join(per_axis)}: rocket needs per-tensor "
                            "quantization")
    if dilated:
        return Verdict(CPU, f"dilation {options.get('dilation_w', 1)}x{options.get('dilation_h', 1)}: "
                            "rocket supports dilation 1 only")
    return Verdict(NPU, hazards=_convolution_hazards(op, data, output, bias, activation))


def _convolution_hazards(op: OpInfo, data: TensorInfo, output: TensorInfo, bias: TensorInfo | None,
                         activation: str) -> tuple[str, ...]:
    options = op.options
    hazards = list(_dtype_hazards(output if data.dtype == output.dtype else data))
    if activation not in CONV_ACTIVATIONS:
        hazards.append(Hazard(f"fused {activation}: Mesa asserts on it in debug builds and rocket "
                              "ignores it", WRONG))
    elif activation != "NONE" and _range_allows_negatives(output):
        hazards.append(Hazard(f"fused {activation} is not applied by rocket and the output range "
                              "allows negative values: results differ from the CPU", WRONG))
    if options.get("stride_w", 1) != options.get("stride_h", 1):
        hazards.append(Hazard(f"stride {options.get('stride_w')}x{options.get('stride_h')}: rocket "
                              "uses the horizontal stride for both directions (wrong results)", WRONG))
    if op.version < 2 and (options.get("dilation_w", 1) > 1 or options.get("dilation_h", 1) > 1):
        hazards.append(Hazard("dilation > 1 in a version-1 operator: Teflon ignores it (wrong results)",
                              WRONG))
    if op.name == "DEPTHWISE_CONV_2D" and options.get("depth_multiplier", 1) > 1:
        hazards.append(Hazard(f"depth multiplier {options['depth_multiplier']}: not handled by rocket",
                              WRONG))
    if data.shape and data.shape[0] > 1:
        hazards.append(Hazard(f"batch {data.shape[0]}: rocket assumes batch 1", WRONG))
    if bias is None:
        hazards.append(Hazard("no bias tensor: Teflon reads one unconditionally", CRASH))
    return tuple(hazards)


def _range_allows_negatives(output: TensorInfo) -> bool:
    return output.quantized and output.zero_points[0] > QUANTIZED_MIN.get(output.dtype, 0)


def _dtype_hazards(tensor: TensorInfo) -> tuple[Hazard, ...]:
    if tensor.dtype.startswith("float"):
        return (Hazard(f"{tensor.dtype} data: rocket does not reject float tensors but computes in "
                       "8 bits (unsafe: quantize the model)", WRONG),)
    if tensor.dtype != VALIDATED_DTYPE:
        return (Hazard(f"{tensor.dtype} data: rocket treats all data as uint8; only uint8 is "
                       "validated (results unverified)", UNVERIFIED),)
    return ()


def quantized_max_value(tensor: TensorInfo) -> float:
    """The largest real value the tensor's quantization can hold (per channel: the largest)."""
    top = QUANTIZED_MAX.get(tensor.dtype)
    if top is None or not tensor.quantized:
        return float("inf")
    zero_points = tensor.zero_points or (0,)
    # Mesa computes in C float: 255 * 0.023529412f is 6.0 there, 6.0000001 in double precision.
    return max(float(np.float32(top - zero_points[i if len(zero_points) > 1 else 0]) * np.float32(scale))
               for i, scale in enumerate(tensor.scales))


def relu6_within_limit(output: TensorInfo) -> bool:
    """fused_relu6_supported(): 8-bit output whose range stays within 6.0."""
    return quantized_max_value(output) <= np.float32(RELU6_LIMIT)


def fusable_add(op: OpInfo, partition_nodes: list[int], graph: Graph,
                producers: dict[int, int]) -> bool:
    """rkt_ml_subgraph_create() fuses an ADD into the op producing its first input, which must be
    an earlier convolution in the same partition; otherwise Mesa asserts (``assert(input_op_2)``).

    An ADD fed by an ADD is fusable too: fusing rewrites the convolution's output_index to the
    ADD's output, so find_producer() finds that convolution for the next ADD.
    """
    producer = producers.get(op.inputs[0])
    if producer is None or producer not in partition_nodes:
        return False
    if partition_nodes.index(producer) > partition_nodes.index(op.index):
        return False
    return graph.ops[producer].name in ROCKET_OPS
