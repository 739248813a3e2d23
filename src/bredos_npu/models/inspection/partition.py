"""Partitions as TFLite forms them from the nodes a delegate claims, and their hand-overs.

Follows TFLite's PartitionGraphIntoIndependentNodeSubsets (tensorflow/lite/graph_info.cc): subsets
alternate between claimed and unclaimed nodes; each greedily takes, in execution order, every
node of its kind whose inputs are ready, including inputs produced inside the subset itself.
"""

from __future__ import annotations

from typing import NamedTuple

from bredos_npu.models.inspection.graph import Graph


class Subset(NamedTuple):
    """Consecutive nodes run by one side: ``delegated`` True for an NPU partition."""

    delegated: bool
    nodes: list[int]


class HandOver(NamedTuple):
    """Tensors copied into and out of one NPU partition per inference (with layout conversion)."""

    partition: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    bytes: int


def partition(graph: Graph, claimed: set[int]) -> list[Subset]:
    producers = graph.producer()
    ready = {t for t in range(len(graph.tensors)) if t not in producers}
    done: set[int] = set()
    subsets: list[Subset] = []
    while len(done) < len(graph.ops):
        kind: bool | None = None
        nodes: list[int] = []
        progress = True
        while progress:
            progress = False
            for op in graph.ops:
                if op.index in done or not all(t < 0 or t in ready for t in op.inputs):
                    continue
                if kind is None:
                    kind = op.index in claimed
                if (op.index in claimed) != kind:
                    continue
                done.add(op.index)
                nodes.append(op.index)
                ready.update(op.outputs)
                progress = True
        if not nodes:  # a cycle or a dangling input: stop rather than loop
            break
        subsets.append(Subset(bool(kind), nodes))
    return subsets


def hand_overs(graph: Graph, subsets: list[Subset]) -> list[HandOver]:
    """For each NPU partition: non-constant tensors it reads from outside, tensors others read."""
    consumers: dict[int, set[int]] = {}
    for op in graph.ops:
        for t in op.inputs:
            consumers.setdefault(t, set()).add(op.index)
    result = []
    npu_subsets = [s for s in subsets if s.delegated]
    for number, subset in enumerate(npu_subsets):
        inside = set(subset.nodes)
        produced = {t for i in subset.nodes for t in graph.ops[i].outputs}
        inputs = sorted({t for i in subset.nodes for t in graph.ops[i].inputs
                         if t >= 0 and t not in produced and not graph.tensors[t].constant})
        outputs = sorted(t for t in produced
                         if consumers.get(t, set()) - inside or t in graph.outputs)
        size = sum(graph.tensors[t].bytes for t in (*inputs, *outputs))
        result.append(HandOver(number, tuple(inputs), tuple(outputs), size))
    return result
