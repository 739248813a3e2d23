"""The report as Markdown, ready to paste into an issue or a discussion."""

from __future__ import annotations

from typing import Any


def _ms(value: float | None) -> str:
    return f"{value:.1f} ms" if isinstance(value, (int, float)) else "not measured"


def _system(report: dict[str, Any]) -> list[str]:
    system = report["system"]
    kernel, rocket, teflon = system["kernel"], system["rocket"], system["teflon"]
    device = rocket["device"]
    shown_device = (f"{device['path']} {device['mode']} {device['owner']}:{device['group']}"
                    f"{'' if device['accessible'] else ' (not accessible to this user)'}"
                    if device.get("exists") else f"{device['path']} missing")
    runtime = system["runtime"] or {"name": "none", "version": ""}
    lines = [
        "| | |", "|---|---|",
        f"| SoC / board | {system['soc'] or 'not an RK3588'} / {system['board'] or 'unknown'} |",
        f"| Kernel | {kernel['release']} (rocket config: {kernel['rocket_config'] or 'not set'}) |",
        f"| rocket | module {rocket['module'] or 'not loaded'}; {shown_device} |",
        f"| Teflon | {teflon['path'] or 'not found'}"
        + (f", {teflon['size']} bytes, sha256 {teflon['sha256'][:16]}…" if teflon.get("sha256") else "")
        + (f", package {teflon['package']}" if teflon.get("package") else "") + " |",
        f"| Python stack | Python {system['python']}, {runtime['name']} {runtime['version']}, "
        f"numpy {system['numpy']} |",
        f"| CPU | {_clusters(system['cpu'])} |",
        f"| Memory | {system['memory_mb']} MB |",
        f"| Doctor | {report['doctor']['verdict']} |",
    ]
    if kernel["vendor"]:
        lines += ["", f"> **Vendor kernel** ({kernel['vendor_evidence']}): {kernel['vendor_note']}"]
    return lines


def _clusters(cpu: dict[str, Any]) -> str:
    parts = [f"cpus {c['cpus'][0]}-{c['cpus'][-1]} (speed {c['speed']}, {c['governor'] or 'no governor'})"
             for c in cpu["clusters"]]
    return f"{cpu['count']} cores" + (": " + "; ".join(parts) if parts else "")


def _model(entry: dict[str, Any]) -> list[str]:
    lines = [f"### {entry['name']} — {entry.get('verdict', 'not measured')}", ""]
    if "skipped" in entry:
        return [*lines, f"Skipped: {entry['skipped']}", ""]
    lines.append(f"{entry.get('reason', '')}")
    prediction = entry["prediction"]
    lines += ["", f"- Prediction (`inspect`): {len(prediction['npu_ops'])}/{prediction['ops']} ops on the "
              f"NPU, {prediction['npu_mac_share']:.1%} of MACs, {prediction['partitions']} partition(s)"]
    for backend in ("cpu", "npu"):
        run = entry.get(backend, {})
        if run.get("status") == "measured":
            latency = run["latency_ms"]
            lines.append(f"- {backend.upper()}: first invoke {_ms(run['first_ms'])}, "
                         f"mean {_ms(latency['mean'])}"
                         f" (p50 {_ms(latency['p50'])}, p99 {_ms(latency['p99'])}), "
                         f"{run['per_second']:.1f} inf/s")
        else:
            lines.append(f"- {backend.upper()}: {run.get('status', 'not measured')} — "
                         f"{run.get('reason', '')}")
    for row in entry.get("npu", {}).get("parallel", []):
        lines.append(f"  - {row['interpreters']} NPU interpreter(s): {row['per_second']:.1f} inf/s, "
                     f"scaling efficiency {row['efficiency']:.0%}")
    compared = entry.get("comparison")
    if compared:
        lines.append(f"- Prediction vs delegate: {'agree' if compared['agrees'] else 'differ'} "
                     f"(predicted only: {compared['predicted_only'] or 'none'}, "
                     f"taken only: {compared['taken_only'] or 'none'})")
    if entry.get("teflon_log"):
        log = entry["teflon_log"]
        lines.append(f"- Teflon's account: supported {log['supported_ops']}, compile {log['compile_ms']} ms")
    found = entry.get("agreement", {})
    if found.get("status") == "measured":
        extra = ""
        if "top1_agreement" in found:
            extra += f", top-1 agreement {found['top1_agreement']:.0%}"
        if found.get("min_box_iou") is not None:
            extra += f", min box IoU {found['min_box_iou']:.3f}"
        lines.append(f"- Agreement over {found['inputs']} inputs: max abs diff {found['max_abs_diff']:.4g}, "
                     f"mean {found['mean_abs_diff']:.4g}{extra}")
    return [*lines, ""]


def to_markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    lines = [f"## bredos-npu report (schema {report['schema_version']}, bredos-npu {report['tool_version']})",
             "", *_system(report), "", "## Models", ""]
    for entry in report["models"]:
        lines += _model(entry)
    if report["skipped"]:
        lines += ["## Skipped", "", *[f"- {s}" for s in report["skipped"]], ""]
    lines.append(f"_Made in {report['seconds']:.0f} s{' in quick mode' if report['quick'] else ''}; "
                 "no host names, user names, addresses, serial numbers or home paths included._")
    return "\n".join(lines) + "\n"
