"""Checking inspect's prediction against a board's report (``bredos-npu report``'s JSON).

The report records which ops the delegate really took on a board, and Teflon's own per-node
account when it printed one. Every op where today's prediction and that evidence disagree is a
place where the rules table (``rules.py``) may need correcting.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from bredos_npu.errors import ModelError
from bredos_npu.models.inspection.analysis import Inspection


class Difference(NamedTuple):
    """One op whose prediction differs from the board: ``predicted``/``actual`` are "npu"/"cpu".

    teflon: what Teflon's verbose log said of the op ("supported"/"unsupported"), when logged.
    """

    index: int
    name: str
    predicted: str
    actual: str
    teflon: str | None


def report_entry(report: dict[str, Any], model_bytes: bytes) -> dict[str, Any]:
    """The report's entry for this model file (matched by sha256), or ModelError saying why not."""
    digest = hashlib.sha256(model_bytes).hexdigest()
    for entry in report.get("models", []):
        if entry.get("sha256") == digest:
            if entry.get("npu", {}).get("status") != "measured":
                reason = entry.get("npu", {}).get("reason") or entry.get("skipped") or "not measured"
                raise ModelError(f"The report did not measure this model on the NPU ({reason}).")
            return entry
    raise ModelError("The report has no measurement of this model file (no entry with its sha256).")


def differences(inspection: Inspection, entry: dict[str, Any]) -> list[Difference]:
    """Ops predicted on one side whose delegate on the board chose the other."""
    taken = set(entry["npu"]["taken_ops"])
    log = entry.get("teflon_log") or {}
    said = {i: "supported" for i in log.get("supported_ops", [])}
    said.update({i: "unsupported" for i in log.get("unsupported_ops", [])})
    found = []
    for op in inspection.ops:
        actual = "npu" if op.index in taken else "cpu"
        if actual != op.target:
            found.append(Difference(op.index, op.name, op.target, actual, said.get(op.index)))
    return found
