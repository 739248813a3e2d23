"""Turning API results into text for people and dicts for --json."""

from __future__ import annotations

from typing import Any

import click

from bredos_npu.runtime.model import BackendInfo, Model
from bredos_npu.system.doctor import FAIL, OK, WARN, Report
from bredos_npu.tasks.classify import Class

STATUS_STYLE = {OK: ("ok", "green"), WARN: ("warn", "yellow"), FAIL: ("FAIL", "red")}


def backend_line(info: BackendInfo) -> str:
    """E.g. ``npu (/usr/lib/libteflon.so): 60/66 nodes on the NPU in 3 partitions, ...``."""
    n = info.nodes
    cpu = f"{info.threads} thread{'s' if info.threads != 1 else ''}"
    if info.cpus:
        cpu += f" on cpus {','.join(map(str, info.cpus))}"
    parts = []
    if info.name == "npu":
        parts.append(f"{n.npu_nodes}/{n.model_nodes} nodes on the NPU in {n.npu_partitions} "
                     f"partition{'s' if n.npu_partitions != 1 else ''}")
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
        "fallback_reason": info.fallback_reason,
        "nodes": info.nodes._asdict(),
    }


def class_dict(item: Class) -> dict[str, Any]:
    return {"index": item.index, "label": item.label, "score": round(item.score, 6)}


def classes_text(classes: list[Class]) -> str:
    width = max((len(c.label) for c in classes), default=0)
    return "\n".join(
        f"  {rank}. {c.label:<{width}}  {c.score * 100:5.1f}%  ({c.index})"
        for rank, c in enumerate(classes, 1)
    )


def model_header(model: Model, default: bool) -> str:
    name = model.path.name + (" (bundled default)" if default else "")
    return f"model:   {name}\nbackend: {backend_line(model.backend)}"


def doctor_text(report: Report) -> str:
    width = max(len(c.name) for c in report.checks)
    lines = []
    for check in report.checks:
        word, colour = STATUS_STYLE.get(check.status, (check.status, "white"))
        status = click.style(f"{word:>4}", fg=colour, bold=check.status == FAIL)
        lines.append(f"[{status}] {check.name:<{width}}  {check.found}")
        if check.fix and check.status != OK:
            lines.append(f"       {'':<{width}}  fix: {check.fix}")
    verdict_colour = "green" if report.npu_ready else "yellow"
    lines.append(click.style(report.verdict, fg=verdict_colour, bold=True))
    return "\n".join(lines)
