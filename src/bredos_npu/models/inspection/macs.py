"""Multiply-accumulate counts of the operators that dominate CNN compute."""

from __future__ import annotations

import math

from bredos_npu.models.inspection.graph import Graph, OpInfo


def op_macs(op: OpInfo, graph: Graph) -> int:
    """MACs of one op for one inference; 0 for ops whose cost is negligible (add, pool, ...).

    CONV_2D: out_h·out_w·out_c · k_h·k_w·in_c. DEPTHWISE_CONV_2D: out_h·out_w·out_c · k_h·k_w.
    FULLY_CONNECTED: batch · units · inputs. TRANSPOSE_CONV: in_h·in_w·in_c · k_h·k_w·out_c.
    A damaged shape (negative dims) counts as 0, never as a negative count.
    """
    return max(0, _macs(op, graph))


def _macs(op: OpInfo, graph: Graph) -> int:
    tensors = graph.tensors
    try:
        if op.name == "CONV_2D":
            _, kh, kw, cin = tensors[op.inputs[1]].shape
            return _elements(tensors[op.outputs[0]].shape) * kh * kw * cin
        if op.name == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = tensors[op.inputs[1]].shape
            return _elements(tensors[op.outputs[0]].shape) * kh * kw
        if op.name == "FULLY_CONNECTED":
            units, inputs = tensors[op.inputs[1]].shape[-2:]
            return _elements(tensors[op.outputs[0]].shape) // max(units, 1) * units * inputs
        if op.name == "TRANSPOSE_CONV":
            cout, kh, kw, _ = tensors[op.inputs[1]].shape
            return _elements(tensors[op.inputs[2]].shape) * kh * kw * cout
    except (ValueError, IndexError):  # unexpected rank: count it as negligible
        return 0
    return 0


def _elements(shape: tuple[int, ...]) -> int:
    """Python ints: huge shapes cannot overflow into negative counts (unknown dims count 0)."""
    return math.prod(max(int(d), 0) for d in shape) if shape else 0
