"""Putting it together: per-op verdicts, MACs, partitions, hazards and advice for one model."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bredos_npu.models.inspection import rules
from bredos_npu.models.inspection.graph import Graph, TensorInfo, parse
from bredos_npu.models.inspection.macs import op_macs
from bredos_npu.models.inspection.partition import HandOver, Subset, hand_overs, partition
from bredos_npu.models.tflite_file import check_model_content, guard_model_errors, read_model_bytes

MODEL_BYTES = "the model bytes"  # how messages name a model given as bytes

# Custom operators that TFLite's standard op resolver provides.
KNOWN_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess"})
ADD_CRASH = rules.Hazard("ADD that Teflon claims but rocket cannot fuse into a convolution producing "
                         "its first input in the same partition: Mesa asserts or crashes "
                         "(rkt_ml_subgraph_create)", rules.CRASH)


@dataclass(frozen=True)
class OpReport:
    """One operator with its verdict: ``target`` "npu"/"cpu", ``reason`` for cpu, hazards.

    ``index``: its position in the model's execution order (0-based). ``macs``: multiply-
    accumulates per inference (a count). ``partition``: the number of its NPU partition (0-based,
    in execution order), None on the CPU.
    """

    index: int
    name: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    options: dict[str, Any]
    macs: int
    target: str
    reason: str
    hazards: tuple[rules.Hazard, ...]
    partition: int | None = None  # index of its NPU partition


@dataclass(frozen=True)
class Inspection:
    """The static analysis of one model; see :func:`inspect_model`.

    ``path``: the file inspected (None when it was given as bytes). ``ops``: every operator of the
    main subgraph in execution order. ``subsets``: the graph split as TFLite's partitioner would
    split it (delegated subsets are the NPU partitions). ``hand_overs``: the tensors copied between
    CPU and NPU at each partition's edges. ``advice``: sentences for people. ``seconds``: how long
    the analysis took (wall clock, seconds; not part of equality).
    """

    path: Path | None
    ops: list[OpReport]
    subsets: list[Subset]
    hand_overs: list[HandOver]
    advice: list[str] = field(default_factory=list)
    seconds: float = field(default=0.0, compare=False)

    @property
    def npu_ops(self) -> list[OpReport]:
        """The operators predicted to run on the NPU."""
        return [op for op in self.ops if op.target == rules.NPU]

    @property
    def total_macs(self) -> int:
        """Multiply-accumulate operations of one inference, all operators (a count, not millions)."""
        return sum(op.macs for op in self.ops)

    @property
    def npu_macs(self) -> int:
        """Multiply-accumulates of the operators predicted to run on the NPU."""
        return sum(op.macs for op in self.npu_ops)

    @property
    def npu_mac_share(self) -> float:
        """Share of MACs on the NPU, 0..1 (0 for a model without MACs)."""
        return self.npu_macs / self.total_macs if self.total_macs else 0.0

    @property
    def partitions(self) -> int:
        """How many NPU partitions (delegate kernels) the model is split into."""
        return sum(1 for s in self.subsets if s.delegated)

    @property
    def hazards(self) -> list[tuple[int, rules.Hazard]]:
        """(op index, hazard) of every predicted NPU hazard."""
        return [(op.index, h) for op in self.ops for h in op.hazards]

    def hazards_at(self, *levels: str) -> list[tuple[int, rules.Hazard]]:
        """(op index, hazard) of the NPU ops whose hazards have one of ``levels``."""
        return [(i, h) for i, h in self.hazards if h.level in levels]

    @property
    def summary(self) -> str:
        """E.g. ``NPU: 63/66 ops, 99.6% of MACs, 1 partition, 2 hand-overs``."""
        n = self.partitions
        copies = sum(len(h.inputs) + len(h.outputs) for h in self.hand_overs)
        return (f"NPU: {len(self.npu_ops)}/{len(self.ops)} ops, {self.npu_mac_share:.1%} of MACs, "
                f"{n} partition{'s' if n != 1 else ''}, {copies} hand-over{'s' if copies != 1 else ''}")


@guard_model_errors
def inspect_model(model: str | os.PathLike[str] | bytes) -> Inspection:
    """Predict, from the file alone, which ops Mesa Teflon would run on the RK3588 NPU.

    ``model``: the path of a .tflite file, or its content as bytes. Pure: nothing is downloaded
    and zoo names are not looked up (``bredos_npu.models.zoo.resolve(name).path`` gives a zoo
    model's file). Raises ModelError for a missing, non-TFLite or damaged model.
    """
    started = time.perf_counter()
    if isinstance(model, bytes | bytearray | memoryview):
        path, content = None, check_model_content(bytes(model), MODEL_BYTES)
    else:
        path = Path(model)
        content = read_model_bytes(path)
    graph = parse(content, path or MODEL_BYTES)
    verdicts = [rules.judge(op, graph) for op in graph.ops]
    claimed = {i for i, v in enumerate(verdicts) if v.target == rules.NPU}
    subsets = partition(graph, claimed)
    verdicts = _check_add_fusion(graph, subsets, verdicts)
    partition_of = {node: number for number, s in enumerate(s for s in subsets if s.delegated)
                    for node in s.nodes}
    reports = [
        OpReport(op.index, op.name, tuple(graph.tensors[t] for t in op.inputs if t >= 0),
                 tuple(graph.tensors[t] for t in op.outputs), op.options, op_macs(op, graph),
                 v.target, v.reason, v.hazards, partition_of.get(op.index))
        for op, v in zip(graph.ops, verdicts, strict=True)
    ]
    inspection = Inspection(path, reports, subsets, hand_overs(graph, subsets))
    inspection.advice.extend(advise(inspection, graph))
    return Inspection(path, reports, subsets, inspection.hand_overs, inspection.advice,
                      time.perf_counter() - started)


def _check_add_fusion(graph: Graph, subsets: list[Subset], verdicts: list[rules.Verdict]
                      ) -> list[rules.Verdict]:
    producers = graph.producer()
    checked = list(verdicts)
    for subset in subsets:
        if not subset.delegated:
            continue
        for node in subset.nodes:
            op = graph.ops[node]
            if op.name == "ADD" and not rules.fusable_add(op, subset.nodes, graph, producers):
                checked[node] = checked[node]._replace(hazards=(*checked[node].hazards, ADD_CRASH))
    return checked


def advise(inspection: Inspection, graph: Graph) -> list[str]:
    """Concrete advice when coverage is poor or hazards exist."""
    ops = inspection.ops
    advice = []
    reasons = " ".join(op.reason for op in ops)
    float_model = any(op.name in rules.CONVOLUTIONS and op.inputs[0].dtype.startswith("float")
                      for op in ops)
    if float_model:
        advice.append("This is a float model: quantize it to full-integer uint8 with per-tensor "
                      "weights before using the NPU (float on rocket is unsafe).")
    if "per-axis" in reasons:
        advice.append("Convolutions with per-axis (per-channel) int8 weights stay on the CPU: "
                      "re-quantize per-tensor uint8 (e.g. TF1-style quantization-aware training, "
                      "or the TFLite converter with per-channel quantization disabled).")
    if _has_silu(graph):
        advice.append("SiLU activations (LOGISTIC followed by MUL, as in YOLOv8) are not offloaded: "
                      "a ReLU/ReLU6 variant of the model keeps the convolutions together on the NPU.")
    unknown = sorted({op.name for op in graph.ops if op.custom and op.name not in KNOWN_CUSTOM_OPS})
    if unknown:
        advice.append(f"Custom operator {', '.join(unknown)} is not part of TFLite: the model runs "
                      "nowhere unless the application registers it.")
    if not any(op.name in rules.CONVOLUTIONS for op in ops):
        advice.append("This model has no convolutions: Teflon's rocket driver offloads CNN "
                      "convolutions only, so it runs on the CPU.")
    int8_convolutions = [op for op in ops if op.name in rules.CONVOLUTIONS and op.target == rules.NPU
                         and any("int8 data" in h for h in op.hazards)]
    if int8_convolutions:
        advice.append("int8 convolutions are claimed but rocket computes as uint8 and Mesa only "
                      "validates uint8: compare NPU results against the CPU backend.")
    if any(h == ADD_CRASH for _, h in inspection.hazards):
        advice.append("Some ADDs would crash Mesa when offloaded: run this model on the CPU backend "
                      "until Mesa handles them.")
    if inspection.partitions > 3:
        splitters = sorted({graph.ops[n].name for s in inspection.subsets if not s.delegated
                            for n in s.nodes})
        advice.append(f"{inspection.partitions} NPU partitions: every CPU op between them "
                      f"({', '.join(splitters[:5])}) costs a copy in and out of the NPU.")
    return advice


def _has_silu(graph: Graph) -> bool:
    producers = graph.producer()
    for op in graph.ops:
        if op.name == "MUL":
            sources = [producers.get(t) for t in op.inputs]
            if any(s is not None and graph.ops[s].name == "LOGISTIC" for s in sources):
                return True
    return False
