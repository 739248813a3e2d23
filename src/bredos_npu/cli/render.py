"""Turning API results into text for people and dicts for --json."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from bredos_npu.cli.errors import describe
from bredos_npu.text import for_terminal

if TYPE_CHECKING:  # imported for the types only: classify's start must not pay for the doctor
    from bredos_npu.doctor import Report
    from bredos_npu.runtime.model import BackendInfo, Model


def backend_line(info: BackendInfo) -> str:
    """E.g. ``npu (/usr/lib/libteflon.so): 60/66 nodes on the NPU in 3 partitions, ...``."""
    n = info.nodes
    cpu = f"{info.threads} thread{'s' if info.threads != 1 else ''}"
    if info.cpus:
        cpu += f" on cpus {','.join(map(str, info.cpus))}"
    parts = []
    if info.name == "npu":
        parts.append(f"{n.npu_nodes}/{n.model_nodes} nodes on the NPU in {n.npu_partitions} "
                     f"partition{'s' if n.npu_partitions != 1 else ''}"
                     + (" (nothing runs on the NPU: the timings are CPU timings)" if not n.npu_nodes else ""))
    parts.append(f"{n.xnnpack_nodes} on XNNPACK ({cpu})")
    if n.cpu_reference_nodes:
        parts.append(f"{n.cpu_reference_nodes} on TFLite CPU kernels")
    where = f"npu ({info.delegate})" if info.name == "npu" else "cpu"
    return f"{where}: {', '.join(parts)}"


def backend_dict(info: BackendInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "requested": info.requested,
        "delegate": info.delegate,
        "threads": info.threads,
        "cpus": list(info.cpus),
        "fallback_reason": describe(info.fallback) if info.fallback else None,
        "fallback": info.fallback.reason.value if info.fallback else None,
        "nodes": info.nodes._asdict(),
        "npu_ran_nothing": info.name == "npu" and not info.nodes.npu_nodes,
        "hazards": list(info.hazards),
    }


def model_header(model: Model, default: bool, has_classes: bool = True) -> str:
    name = for_terminal(model.path.name) + (" (bundled default)" if default else "")
    header = f"model:   {name}\nbackend: {backend_line(model.backend)}"
    if has_classes and model.label_map is None:
        header += "\nlabels:  none in the model (pass --labels FILE to name the classes)"
    return header


def doctor_text(report: Report) -> str:
    from bredos_npu.doctor import FAIL, OK, WARN

    status_style = {OK: ("ok", "green"), WARN: ("warn", "yellow"), FAIL: ("FAIL", "red")}
    width = max(len(c.name) for c in report.checks)
    lines = []
    for check in report.checks:
        word, colour = status_style.get(check.status, (check.status, "white"))
        status = click.style(f"{word:>4}", fg=colour, bold=check.status == FAIL)
        lines.append(f"[{status}] {check.name:<{width}}  {check.found}")
        if check.fix and check.status != OK:
            lines.append(f"       {'':<{width}}  fix: {check.fix}")
    verdict_colour = "green" if report.npu_ready else "yellow"
    lines.append(click.style(report.verdict, fg=verdict_colour, bold=True))
    return "\n".join(lines)


DTYPE_SHORT = {"uint8": "u8", "int8": "i8", "float32": "f32", "int32": "i32", "int16": "i16",
               "float16": "f16", "int64": "i64", "bool": "b"}


def _shape(tensor: Any) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"


def _quant(tensor: Any) -> str:
    if not tensor.quantized:
        return "-"
    return f"per-axis({len(tensor.scales)})" if tensor.per_axis else "per-tensor"


def _params(op: Any) -> str:
    o = op.options
    parts = []
    if "filter_w" in o:
        parts.append(f"f{o['filter_w']}x{o['filter_h']}")
    if "stride_w" in o:
        parts.append(f"s{o['stride_w']}x{o['stride_h']}")
    if o.get("dilation_w", 1) > 1 or o.get("dilation_h", 1) > 1:
        parts.append(f"d{o['dilation_w']}x{o['dilation_h']}")
    if "padding" in o:
        parts.append(o["padding"])
    if o.get("activation", "NONE") != "NONE":
        parts.append(o["activation"])
    return " ".join(parts)


def inspection_rows(inspection: Any) -> list[list[str]]:
    rows = [["#", "op", "input", "output", "type", "weights", "params", "MACs", "where", "why / hazards"]]
    for op in inspection.ops:
        data = op.inputs[0] if op.inputs else None
        weights = op.inputs[1] if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(op.inputs) > 1 else None
        dtype = DTYPE_SHORT.get(data.dtype, data.dtype) if data else "-"
        out = op.outputs[0] if op.outputs else None
        if out is not None and data is not None and out.dtype != data.dtype:
            dtype += ">" + DTYPE_SHORT.get(out.dtype, out.dtype)
        where = f"NPU p{op.partition}" if op.target == "npu" else "CPU"
        notes = [op.reason] if op.reason else []
        notes += [f"! {h}" for h in op.hazards]
        rows.append([str(op.index), op.name, _shape(data) if data else "-", _shape(out) if out else "-",
                     dtype, _quant(weights) if weights else "", _params(op),
                     _count(op.macs) if op.macs else "", where, "; ".join(notes)])
    return rows


def _count(value: float) -> str:
    """12.3M, 4.6k, 512."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}"


def table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; cells made safe for a terminal first."""
    rows = [[for_terminal(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def inspection_text(inspection: Any) -> str:
    lines = [f"model: {for_terminal(str(inspection.path))}", "", table(inspection_rows(inspection)), ""]
    lines.append(f"MACs: {inspection.total_macs / 1e6:.1f} M in all, {inspection.npu_macs / 1e6:.1f} M "
                 "on the NPU")
    for hand in inspection.hand_overs:
        lines.append(f"partition p{hand.partition}: {len(hand.inputs)} tensor(s) in, "
                     f"{len(hand.outputs)} out, {hand.bytes / 1024:.1f} KiB copied per inference")
    for advice in inspection.advice:
        lines.append(f"advice: {for_terminal(advice)}")
    lines.append(click.style(inspection.summary, bold=True))
    return "\n".join(lines)


def runtime_check_text(check: Any) -> str:
    if not check.ran:
        return f"runtime: not checked ({check.reason.rstrip('.')}); the prediction above is static only"
    if check.agrees:
        return f"runtime: the delegate ({check.delegate}) took exactly the predicted ops"
    lines = [f"runtime: the delegate ({check.delegate}) differs from the prediction"]
    if check.predicted_only:
        lines.append(f"  predicted on the NPU but left on the CPU: ops {_ids(check.predicted_only)}")
    if check.runtime_only:
        lines.append(f"  taken by the NPU although predicted on the CPU: ops {_ids(check.runtime_only)}")
    return "\n".join(lines)


def _ids(indices: tuple[int, ...]) -> str:
    shown = ", ".join(map(str, indices[:20]))
    return shown + (f" (+{len(indices) - 20} more)" if len(indices) > 20 else "")


def _tensor_dict(tensor: Any) -> dict[str, Any]:
    return {"index": tensor.index, "shape": list(tensor.shape), "dtype": tensor.dtype,
            "quantization": "per-axis" if tensor.per_axis else "per-tensor" if tensor.quantized
            else "none", "constant": tensor.constant}


def inspection_dict(inspection: Any, check: Any = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": str(inspection.path),
        "summary": inspection.summary,
        "ops_total": len(inspection.ops),
        "ops_npu": len(inspection.npu_ops),
        "macs_total": inspection.total_macs,
        "macs_npu": inspection.npu_macs,
        "npu_mac_share": round(inspection.npu_mac_share, 6),
        "partitions": inspection.partitions,
        "hand_overs": [h._asdict() for h in inspection.hand_overs],
        "advice": inspection.advice,
        "ops": [{"index": op.index, "op": op.name, "target": op.target, "reason": op.reason,
                 "hazards": list(op.hazards), "macs": op.macs, "partition": op.partition,
                 "options": op.options, "inputs": [_tensor_dict(t) for t in op.inputs],
                 "outputs": [_tensor_dict(t) for t in op.outputs]} for op in inspection.ops],
    }
    if check is not None:
        data["runtime"] = {"ran": check.ran, "reason": check.reason, "delegate": check.delegate,
                           "agrees": check.agrees if check.ran else None,
                           "predicted_only": list(check.predicted_only),
                           "runtime_only": list(check.runtime_only)}
    return data


BENCH_STATS = ("mean", "std", "min", "p50", "p90", "p99", "max")


def _unprefixed(reason: str) -> str:
    for prefix in ("NPU not available: ", "NPU not used: "):
        if reason.startswith(prefix):
            return reason[len(prefix):]
    return reason


def _speedups(results: list[Any]) -> dict[str, float | None]:
    cpu = next((r.stats for r in results if r.backend == "cpu" and r.stats), None)
    return {r.backend: (cpu.mean / r.stats.mean if cpu and r.stats else None) for r in results}


def bench_rows(results: list[Any]) -> list[dict[str, Any]]:
    """One flat row per backend (the --csv columns); empty figures when not available."""
    speedups = _speedups(results)
    rows = []
    for run in results:
        stats, info = run.stats, run.info
        row: dict[str, Any] = {"backend": run.backend, "available": run.error is None,
                               "reason": describe(run.error) if run.error else "", "init_ms": "",
                               "first_ms": "",
                               "warmup_mean_ms": ""}
        row.update({f"{k}_ms": "" for k in BENCH_STATS})
        row.update({"inferences_per_s": "", "runs": "", "speedup_vs_cpu": "",
                    "npu_nodes": "", "xnnpack_nodes": "", "model_nodes": "", "threads": "", "cpus": "",
                    "parallel_interpreters": "", "parallel_threads_each": "", "parallel_per_s": "",
                    "parallel_efficiency": ""})
        if stats and info:
            row.update({"init_ms": round(run.init_ms, 3), "first_ms": round(run.first_ms, 3),
                        "warmup_mean_ms": round(sum(run.warmup_ms) / len(run.warmup_ms), 3)
                        if run.warmup_ms else ""})
            row.update({f"{k}_ms": round(getattr(stats, k), 3) for k in BENCH_STATS})
            row.update({"inferences_per_s": round(stats.per_second, 2), "runs": stats.count,
                        "speedup_vs_cpu": round(speedups[run.backend], 3) if speedups[run.backend] else "",
                        "npu_nodes": info.nodes.npu_nodes, "xnnpack_nodes": info.nodes.xnnpack_nodes,
                        "model_nodes": info.nodes.model_nodes, "threads": info.threads,
                        "cpus": " ".join(map(str, info.cpus))})
        if run.parallel:
            row.update({"parallel_interpreters": run.parallel.interpreters,
                        "parallel_threads_each": run.parallel.threads,
                        "parallel_per_s": round(run.parallel.per_second, 2),
                        "parallel_efficiency": round(run.parallel.efficiency, 4)})
        rows.append(row)
    return rows


def bench_dict(results: list[Any], model: str | None, image: str | None) -> dict[str, Any]:
    """The CSV rows as JSON: figures not measured are null, cpus a list, plus every latency."""
    backends = []
    for row, run in zip(bench_rows(results), results, strict=True):
        entry = {key: (None if value == "" else value) for key, value in row.items()}
        entry["reason"] = describe(run.error) if run.error else None
        entry["cpus"] = list(run.info.cpus) if run.info else []
        entry["latencies_ms"] = [round(v, 4) for v in run.latencies_ms]
        backends.append(entry)
    return {"model": model or "bundled default", "input": image or "random", "backends": backends}


def bench_text(results: list[Any], model: str | None, image: str | None, runs: int) -> str:
    speedups = _speedups(results)
    head = ["backend", "init", "first", "warm-up", *BENCH_STATS, "inf/s", "vs cpu", "delegated", "threads"]
    rows = [head]
    notes = []
    for run in results:
        stats, info = run.stats, run.info
        if not stats or not info:
            rows.append([run.backend, *["-"] * (len(head) - 1)])
            reason = describe(run.error) if run.error else ""
            notes.append(f"{run.backend}: not available: {_unprefixed(reason)}")
            continue
        warm = f"{sum(run.warmup_ms) / len(run.warmup_ms):.2f}" if run.warmup_ms else "-"
        n = info.nodes
        delegated = (f"{n.npu_nodes}/{n.model_nodes} NPU" if run.backend == "npu"
                     else f"{n.xnnpack_nodes}/{n.model_nodes} XNNPACK")
        cpus = f" (cpus {','.join(map(str, info.cpus))})" if info.cpus else ""
        speed = speedups[run.backend]
        rows.append([run.backend, f"{run.init_ms:.1f}", f"{run.first_ms:.2f}", warm,
                     *[f"{getattr(stats, k):.2f}" for k in BENCH_STATS], f"{stats.per_second:.1f}",
                     f"{speed:.2f}x" if speed else "-", delegated, f"{info.threads}{cpus}"])
        if run.parallel:
            p = run.parallel
            notes.append(f"{run.backend}: {p.interpreters} interpreters x {p.threads} thread(s) in "
                         f"parallel: {p.per_second:.1f} inf/s together = {p.efficiency:.0%} of "
                         f"{p.interpreters} x {p.single_per_second:.1f} inf/s (one such interpreter "
                         f"alone), {p.per_second / stats.per_second:.2f}x the {stats.per_second:.1f} "
                         "inf/s of the single interpreter in the table")
    title = (f"model: {model or 'bundled default (mobilenet_v2_1.0_224_quant)'}, input: "
             f"{image or 'random'}, times in ms, {runs} timed run{'s' if runs != 1 else ''} per backend")
    return "\n".join([title, table(rows), *notes])
