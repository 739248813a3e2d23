"""Counting the nodes a delegate kernel replaced, from the interpreter's op list."""

from __future__ import annotations

from conftest import MODELS, bare_interpreter

import bredos_npu
from bredos_npu.runtime.nodes import replaced_nodes, summarise


def op(name, inputs, outputs):
    return {"op_name": name, "inputs": inputs, "outputs": outputs}


# tensor 0 → conv(A) → 2 → conv(B) → 3 → pool(C) → 4 → conv(D) → 5; weights 1, 6, 7
GRAPH = [
    op("CONV_2D", [0, 1], [2]),
    op("CONV_2D", [2, 6], [3]),
    op("AVERAGE_POOL_2D", [3], [4]),
    op("CONV_2D", [4, 7], [5]),
]


def test_replaced_nodes_walks_back_to_the_kernel_inputs():
    ops = [*GRAPH, op("DELEGATE", [0, 1, 6], [3])]
    assert replaced_nodes(ops, 4, 4) == {0, 1}


def test_summary_splits_npu_kernels_from_xnnpack_kernels():
    ops = [*GRAPH, op("DELEGATE", [0, 1, 6], [3]), op("DELEGATE", [4, 7], [5]),
           op("DELEGATE", [3], [4])]
    # built with one NPU kernel (index 4), XNNPACK added two at allocation
    summary = summarise(ops, model_nodes=4, after_delegate=5)
    assert (summary.npu_nodes, summary.npu_partitions) == (2, 1)
    assert (summary.xnnpack_nodes, summary.xnnpack_partitions) == (2, 2)
    assert summary.cpu_reference_nodes == 0


def test_nothing_delegated():
    summary = summarise(GRAPH, model_nodes=4, after_delegate=4)
    assert summary == (4, 0, 0, 0, 0) and summary.cpu_reference_nodes == 4


def test_a_live_interpreter_reports_exactly_the_nodes_a_delegate_took(delegates, monkeypatch):
    """The listed test delegate takes known nodes of SSD (scattered: four TFLite partitions)."""
    ssd = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
    claimed = {op.index for op in bredos_npu.inspect(ssd).npu_ops}
    monkeypatch.setenv("TEST_DELEGATE_NODES", ",".join(map(str, sorted(claimed))))
    model = bredos_npu.load(ssd, backend="npu", delegate=str(delegates["listed"]))
    assert set(model.backend.npu_node_indices) == claimed
    assert model.backend.nodes.npu_nodes == len(claimed)
    bare = bare_interpreter(ssd, delegates["listed"])._get_ops_details()
    assert model.backend.nodes.npu_partitions == sum(op["op_name"] == "DELEGATE" for op in bare)
