"""Old .tflite files in the form ai-edge-quantizer reads correctly.

Two traps in files from older converters (e.g. TensorFlow 1's MobileNets):
- no SignatureDef: the quantizer calibrates per signature and needs ``serving_default``;
- operator codes that set only ``deprecated_builtin_code`` (the int8 field used before there were
  more than 127 builtins): the quantizer reads ``builtin_code`` alone, sees 0 (ADD) for every op,
  and exports a broken model. Both fields are set as the current converter sets them.
"""

from __future__ import annotations

from typing import Any

from bredos_npu.models.inspection.graph import schema
from bredos_npu.models.quantize.flatbuffer import subgraph

SIGNATURE = "serving_default"
# schema.fbs: deprecated_builtin_code holds codes < 127; larger ones are written as this placeholder.
PLACEHOLDER_FOR_GREATER_OP_CODES = 127


def normalise(model: Any) -> list[str]:
    """Fix both traps in place; return what was changed, as short phrases."""
    changes = []
    if _fix_opcodes(model):
        changes.append("operator codes set from deprecated_builtin_code")
    if not model.signatureDefs:
        model.signatureDefs = [_signature(model)]
        changes.append(f"'{SIGNATURE}' signature added")
    return changes


def _fix_opcodes(model: Any) -> bool:
    changed = False
    for code in model.operatorCodes:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        deprecated = min(builtin, PLACEHOLDER_FOR_GREATER_OP_CODES)
        if (code.builtinCode, code.deprecatedBuiltinCode) != (builtin, deprecated):
            code.builtinCode, code.deprecatedBuiltinCode = builtin, deprecated
            changed = True
    return changed


def _signature(model: Any) -> Any:
    fb = schema()
    graph = subgraph(model)
    signature = fb.SignatureDefT()
    signature.signatureKey = SIGNATURE
    signature.subgraphIndex = 0
    signature.inputs = [_tensor_map(graph, i) for i in graph.inputs]
    signature.outputs = [_tensor_map(graph, i) for i in graph.outputs]
    return signature


def _tensor_map(graph: Any, index: int) -> Any:
    entry = schema().TensorMapT()
    name = graph.tensors[index].name
    entry.name = name.decode() if isinstance(name, bytes) else (name or f"tensor_{index}")
    entry.tensorIndex = index
    return entry


def signature_input_name(model: Any) -> str:
    """The name the quantizer's calibration data uses for the (single) image input."""
    name = model.signatureDefs[0].inputs[0].name
    return name.decode() if isinstance(name, bytes) else name
