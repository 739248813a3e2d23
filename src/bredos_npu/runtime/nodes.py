"""Which of a model's nodes each delegate took, read back from a live interpreter.

After ``ModifyGraphWithDelegate`` TFLite keeps the model's original nodes and appends one
``DELEGATE`` node per partition it replaced. The external delegate is applied when the interpreter
is built; XNNPACK (the default CPU delegate) is applied lazily at ``allocate_tensors``. So the
``DELEGATE`` nodes present right after construction belong to the external (NPU) delegate, and
those added by allocation belong to XNNPACK.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

DELEGATE_OP = "DELEGATE"


def node_ops(interpreter: Any, typed: Collection[str] = ()) -> list[dict[str, Any]]:
    """Each node's ``op_name``, ``inputs`` and ``outputs``, like ``interpreter._get_ops_details()``.

    ``_get_ops_details`` also reads the details of every tensor of every node (about 10 ms for a
    MobileNet, three times per load); here only the ops named in ``typed`` get their
    ``operand_types`` (the dtypes of their inputs).
    """
    native = getattr(interpreter, "_interpreter", None)
    if native is None or not hasattr(native, "NodeName"):  # a runtime without the raw accessors
        return interpreter._get_ops_details()
    ops = []
    for index in range(native.NumNodes()):
        op = {"index": index, "op_name": native.NodeName(index), "inputs": native.NodeInputs(index),
              "outputs": native.NodeOutputs(index)}
        if op["op_name"] in typed:
            op["operand_types"] = [native.TensorType(int(t), 0) for t in op["inputs"] if t != -1]
        ops.append(op)
    return ops


class NodeSummary(NamedTuple):
    """Node counts of one interpreter: model nodes, and how many each delegate took.

    ``npu_partitions``/``xnnpack_partitions`` count the delegate kernels (connected groups).
    """

    model_nodes: int
    npu_nodes: int
    npu_partitions: int
    xnnpack_nodes: int
    xnnpack_partitions: int

    @property
    def cpu_reference_nodes(self) -> int:
        """Nodes left to TFLite's own reference/optimized CPU kernels."""
        return self.model_nodes - self.npu_nodes - self.xnnpack_nodes


def replaced_nodes(ops: Sequence[dict[str, Any]], delegate_index: int, model_nodes: int) -> set[int]:
    """The original nodes that the delegate kernel at ``delegate_index`` replaced.

    Walks back from the kernel's outputs through the producers among the original nodes until
    reaching the kernel's own inputs (partitions are convex, so this finds exactly the subset).
    """
    producer = {int(t): i for i in range(model_nodes) for t in ops[i]["outputs"]}
    kernel = ops[delegate_index]
    boundary = {int(t) for t in kernel["inputs"]}
    pending = [int(t) for t in kernel["outputs"]]
    found: set[int] = set()
    while pending:
        node = producer.get(pending.pop())
        if node is None or node in found:
            continue
        found.add(node)
        pending += [int(t) for t in ops[node]["inputs"] if int(t) not in boundary]
    return found


def taken_nodes(ops: Sequence[dict[str, Any]], kernels: range, model_nodes: int) -> set[int]:
    """Every original node replaced by the delegate kernels at ``kernels``."""
    taken: set[int] = set()
    for index in kernels:
        if ops[index]["op_name"] == DELEGATE_OP:
            taken |= replaced_nodes(ops, index, model_nodes)
    return taken


def summarise(ops: Sequence[dict[str, Any]], model_nodes: int, after_delegate: int) -> NodeSummary:
    """Summarise ``ops`` (``_get_ops_details()`` after allocation).

    ``after_delegate`` is the node count right after construction (model nodes + NPU kernels).
    """
    npu = range(model_nodes, after_delegate)
    xnnpack = range(after_delegate, len(ops))
    return NodeSummary(
        model_nodes=model_nodes,
        npu_nodes=len(taken_nodes(ops, npu, model_nodes)),
        npu_partitions=len(npu),
        xnnpack_nodes=len(taken_nodes(ops, xnnpack, model_nodes)),
        xnnpack_partitions=len(xnnpack),
    )
