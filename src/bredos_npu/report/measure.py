"""Per-model measurements: inspect's prediction, CPU and NPU runs, and their numerical agreement.

The parent (:func:`measure_model`) prepares the inputs and compares; each backend runs in a child
process (:mod:`bredos_npu.report.child`) so that a delegate crash becomes that model's result.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bredos_npu.report.child import INPUTS_FILE, ChildOutcome, run_measurement
from bredos_npu.report.teflon_log import parse_teflon_log
from bredos_npu.runtime.probe import PROBE_CACHE_ENV

AGREES, DIFFERS, CRASHED, NOT_MEASURED = "agrees", "differs", "crashed", "not measured"
# Two results agree when the NPU's outputs stay within this many output quantization steps of the
# CPU's on average, every real image keeps its top-1 class and every detection its box.
MEAN_STEPS_TOLERANCE = 1.0
FLOAT_TOLERANCE = 1e-3
MIN_BOX_IOU = 0.9
DETECTION_THRESHOLD = 0.5


@dataclass(frozen=True)
class Plan:
    """How much to measure: timed runs, warm-up runs, parallel interpreter counts, random inputs."""

    runs: int
    warmup: int
    parallel: tuple[int, ...]
    random_inputs: int
    timeout_s: float

    def as_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "warmup": self.warmup, "parallel": list(self.parallel),
                "random_inputs": self.random_inputs, "timeout_s": self.timeout_s}


FULL = Plan(runs=50, warmup=5, parallel=(1, 2, 3), random_inputs=6, timeout_s=300.0)
QUICK = Plan(runs=10, warmup=2, parallel=(1, 3), random_inputs=2, timeout_s=120.0)


# --- the child's side ------------------------------------------------------------------------

def measure_in_child(spec: dict[str, Any], inputs: list[np.ndarray],
                     stage: Callable[[str], None]) -> tuple[dict[str, Any], list[list[np.ndarray]]]:
    """Load on ``spec["backend"]`` and measure; (result record, dequantized outputs per input)."""
    from bredos_npu.errors import BredosNpuError, Reason
    from bredos_npu.runtime.bench import timed_invoke
    from bredos_npu.runtime.model import load
    from bredos_npu.runtime.stats import latency_stats

    plan = Plan(**{**spec["plan"], "parallel": tuple(spec["plan"]["parallel"])})
    stage("loading the model")
    try:
        # debug: native logs reach the child's stderr, where the parent reads Teflon's account.
        model = load(spec["model"], spec["backend"], delegate=spec.get("delegate"), root=spec.get("root"),
                     debug=True)
    except BredosNpuError as why:
        if why.reason in (Reason.DELEGATE_CRASHED, Reason.DELEGATE_HUNG):  # in load()'s probe
            # The probe's child printed Teflon's account: pass it on to the parent like ours.
            sys.stderr.write(why.data.get("log", ""))
            sys.stderr.flush()
            return {"status": CRASHED, "reason": why.fact}, []
        return {"status": NOT_MEASURED, "reason": str(why)}, []
    info = model.backend
    if spec["backend"] == "npu" and not info.npu_node_indices:
        return {"status": NOT_MEASURED, "delegate": info.delegate,
                "reason": f"the delegate {info.delegate} took none of this model's operators"}, []
    result: dict[str, Any] = {"status": "measured", "load_ms": round(model.load_ms, 3),
                              "delegate": info.delegate, "threads": info.threads,
                              "taken_ops": list(info.npu_node_indices), "nodes": info.nodes._asdict()}
    stage("the first invoke (graph compilation on the NPU)")
    result["first_ms"] = round(timed_invoke(model, [inputs[0]]), 3)
    stage("the warm-up and timed runs")
    for _ in range(plan.warmup):
        timed_invoke(model, [inputs[0]])
    stats = latency_stats([timed_invoke(model, [inputs[0]]) for _ in range(plan.runs)])
    result["latency_ms"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in stats._asdict().items()}
    result["per_second"] = round(stats.per_second, 2)
    stage("the agreement inputs")
    outputs = [model.run(tensor) for tensor in inputs]
    result["task"], result["task_results"] = _task_results(model, outputs)
    result["output_steps"] = [float(spec_.quant.scale) for spec_ in model.outputs]
    if spec.get("parallel"):
        result["parallel"] = _parallel(model, inputs[0], plan, stage)
    return result, outputs


def _parallel(model: Any, tensor: np.ndarray, plan: Plan,
              stage: Callable[[str], None]) -> list[dict[str, Any]]:
    from bredos_npu.runtime.bench import run_parallel

    rows = []
    for count in plan.parallel:
        stage(f"{count} interpreters in parallel")
        run = run_parallel(model, [tensor], count, plan.runs)
        rows.append({"interpreters": count, "per_second": round(run.per_second, 2),
                     "efficiency": round(run.efficiency, 3)})
    return rows


def _task_results(model: Any, outputs: list[list[np.ndarray]]) -> tuple[str | None, list[Any]]:
    """What each input's outputs mean for the model's task: top-1 class, or detections."""
    from bredos_npu.tasks import registry
    from bredos_npu.tasks.classify import to_probabilities

    task = registry.guess(registry.output_shapes(model))
    if task == "classify":
        return task, [int(np.argmax(to_probabilities(values[0]))) for values in outputs]
    if task == "detect":
        detect = registry.get("detect")
        found = [detect.postprocess(model, values, model.input_size, threshold=DETECTION_THRESHOLD)
                 for values in outputs]
        return task, [[[d.id, round(d.score, 4), *map(float, d.bbox)] for d in boxes] for boxes in found]
    return task, []


# --- the parent's side -----------------------------------------------------------------------

def agreement_inputs(model: Any, images: list[Path], random_count: int) -> tuple[list[str], list[np.ndarray]]:
    """(names, input tensors): the real images first, then seeded random tensors."""
    from bredos_npu.runtime.bench import random_inputs

    names, tensors = [], []
    for image in images:
        names.append(f"image {image.name}")
        tensors.append(model.preprocess(image))
    for seed in range(random_count):
        names.append(f"random seed {seed}")
        tensors.append(random_inputs(model, seed)[0].reshape(model.inputs[0].shape[1:]))
    return names, tensors


def measure_model(path: Path, images: list[Path], plan: Plan, root: str | None = None,
                  delegate: str | None = None, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Everything the report says about one model (see docs/report.md for the fields)."""
    from bredos_npu.models.inspection.analysis import inspect_model
    from bredos_npu.runtime.model import load

    say = say or (lambda _: None)
    record: dict[str, Any] = {"prediction": prediction(inspect_model(path))}
    cpu_model = load(path, "cpu", root=root)  # the CPU is safe in this process: inputs come from it
    if len(cpu_model.inputs) != 1:
        record.update(verdict=NOT_MEASURED, reason="the report measures models with one image input")
        return record
    names, tensors = agreement_inputs(cpu_model, images, plan.random_inputs)
    record["inputs"] = names
    with tempfile.TemporaryDirectory(prefix="bredos-npu-report-") as scratch:
        runs = {}
        for backend in ("cpu", "npu"):
            say(f"{backend.upper()} runs")
            folder = Path(scratch) / backend
            folder.mkdir()
            np.savez(folder / INPUTS_FILE, **{f"input_{i}": t for i, t in enumerate(tensors)})
            spec = {"model": str(path), "backend": backend, "delegate": delegate, "root": root,
                    "plan": plan.as_dict(), "parallel": backend == "npu"}
            # A probe verdict of its own (not the cache's): the report measures now, and a
            # crash's log (Teflon's account) exists only when the probe really runs.
            env = {"TEFLON_DEBUG": "verbose", PROBE_CACHE_ENV: str(Path(scratch) / "probes")} \
                if backend == "npu" else {}
            runs[backend] = run_measurement(spec, folder, plan.timeout_s, env)
    record["cpu"] = _backend_record(runs["cpu"])
    record["npu"] = _backend_record(runs["npu"])
    account = parse_teflon_log(runs["npu"].stderr)
    record["teflon_log"] = account.as_dict() if account else None
    record["comparison"] = compare_ops(record["prediction"]["npu_ops"], record["npu"], account)
    record["agreement"] = agreement(runs["cpu"], runs["npu"])
    record["verdict"], record["reason"] = verdict(record)
    return record


def prediction(inspection: Any) -> dict[str, Any]:
    return {"npu_ops": [op.index for op in inspection.npu_ops], "ops": len(inspection.ops),
            "op_names": {str(op.index): op.name for op in inspection.ops},
            "npu_mac_share": round(inspection.npu_mac_share, 4), "partitions": inspection.partitions,
            "hazards": [f"op {i}: {h}" for i, h in inspection.hazards]}


def _backend_record(outcome: ChildOutcome) -> dict[str, Any]:
    if outcome.crash:
        return {"status": CRASHED, "reason": outcome.crash}
    record = dict(outcome.result or {})
    record.pop("task_results", None)
    record.pop("output_steps", None)
    return record


def compare_ops(predicted: list[int], npu: dict[str, Any], account: Any) -> dict[str, Any] | None:
    """Ops predicted on the NPU but left to the CPU, and taken although predicted for the CPU."""
    if npu.get("status") != "measured":
        return None
    taken = set(npu["taken_ops"])
    compared = {"predicted_only": sorted(set(predicted) - taken),
                "taken_only": sorted(taken - set(predicted))}
    compared["agrees"] = not compared["predicted_only"] and not compared["taken_only"]
    if account is not None:
        compared["teflon_supported_not_taken"] = sorted(set(account.supported) - taken)
    return compared


def agreement(cpu: ChildOutcome, npu: ChildOutcome) -> dict[str, Any]:
    """Differences of the dequantized outputs, top-1 agreement and detection box IoU."""
    if cpu.result is None or npu.result is None or not cpu.outputs or not npu.outputs:
        return {"status": NOT_MEASURED}
    diffs = [np.abs(a.astype(np.float64) - b.astype(np.float64)).reshape(-1)
             for outs_cpu, outs_npu in zip(cpu.outputs, npu.outputs, strict=True)
             for a, b in zip(outs_cpu, outs_npu, strict=True)]
    flat = np.concatenate(diffs) if diffs else np.zeros(1)
    steps = [s for s in cpu.result["output_steps"] if s > 0]
    record: dict[str, Any] = {"status": "measured", "inputs": len(cpu.outputs),
                              "max_abs_diff": float(flat.max()), "mean_abs_diff": float(flat.mean()),
                              "mean_diff_steps": float(flat.mean() / min(steps)) if steps else None}
    task = cpu.result.get("task")
    ours, theirs = cpu.result["task_results"], npu.result["task_results"]
    if task == "classify":
        record["top1_agreement"] = float(np.mean([a == b for a, b in zip(ours, theirs, strict=True)]))
    if task == "detect":
        record["min_box_iou"] = min((_best_iou(box, other) for boxes, other in zip(ours, theirs, strict=True)
                                     for box in boxes), default=None)
        record["detections_cpu"] = sum(len(b) for b in ours)
        record["detections_npu"] = sum(len(b) for b in theirs)
    return record


def _best_iou(box: list[float], others: list[list[float]]) -> float:
    """The best IoU of ``box`` ([id, score, x0, y0, x1, y1]) with a same-class box of ``others``."""
    best = 0.0
    for other in others:
        if other[0] != box[0]:
            continue
        x0, y0 = max(box[2], other[2]), max(box[3], other[3])
        x1, y1 = min(box[4], other[4]), min(box[5], other[5])
        inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
        union = (box[4] - box[2]) * (box[5] - box[3]) + (other[4] - other[2]) * (other[5] - other[3]) - inter
        best = max(best, inter / union if union > 0 else 0.0)
    return best


def verdict(record: dict[str, Any]) -> tuple[str, str]:
    """(agrees / differs / crashed / not measured, why) for one model."""
    npu = record["npu"]
    if npu.get("status") == CRASHED:
        return CRASHED, npu["reason"]
    if record["cpu"].get("status") == CRASHED:
        return NOT_MEASURED, f"the CPU run failed: {record['cpu']['reason']}"
    if npu.get("status") != "measured":
        return NOT_MEASURED, npu.get("reason", "the NPU was not measured")
    found = record["agreement"]
    problems = []
    if found.get("top1_agreement", 1.0) < 1.0:
        problems.append(f"top-1 agreement {found['top1_agreement']:.0%}")
    if found.get("min_box_iou") is not None and found["min_box_iou"] < MIN_BOX_IOU:
        problems.append(f"a detection box with IoU {found['min_box_iou']:.2f}")
    if found.get("detections_cpu") != found.get("detections_npu"):
        problems.append(f"{found.get('detections_npu')} detections on the NPU vs "
                        f"{found.get('detections_cpu')} on the CPU")
    steps = found.get("mean_diff_steps")
    if steps is not None and steps > MEAN_STEPS_TOLERANCE:
        problems.append(f"outputs differ by {steps:.2f} quantization steps on average")
    if steps is None and found["mean_abs_diff"] > FLOAT_TOLERANCE:
        problems.append(f"mean absolute difference {found['mean_abs_diff']:.4g}")
    if problems:
        return DIFFERS, "; ".join(problems)
    return AGREES, (f"max abs difference {found['max_abs_diff']:.4g} over {found['inputs']} inputs")
