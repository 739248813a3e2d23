"""``bredos-npu report``: verified NPU facts from a board owner's run, safe to share.

:func:`make_report` gathers the system facts, the doctor's verdict and, per model, inspect's
prediction, CPU and NPU measurements (each in a child process) and their numerical agreement. The
result is a JSON-ready dict (schema: ``docs/report.md``, ``report/schema.json``) scrubbed of
private data; :func:`bredos_npu.report.markdown.to_markdown` renders it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from bredos_npu.report.measure import FULL, NOT_MEASURED, QUICK, measure_model
from bredos_npu.report.privacy import private_words, scrub

SCHEMA_VERSION = 1
Say = Callable[[str], None]


def schema() -> dict[str, Any]:
    """The JSON schema every report validates against."""
    return json.loads((files("bredos_npu.report") / "schema.json").read_text())


def default_models() -> list[str]:
    """The bundled classifier and the zoo's default model of every other task."""
    from bredos_npu.tasks import registry

    return ["mobilenet-v2", *(task.default_model for task in registry.tasks() if task.default_model)]


def default_images() -> list[Path]:
    from bredos_npu.models import bundled

    return [bundled.sample_image()]


def make_report(models: Sequence[str | os.PathLike[str]] | None = None,
                images: Sequence[str | os.PathLike[str]] | None = None, quick: bool = False,
                root: str | os.PathLike[str] | None = None, delegate: str | None = None,
                say: Say | None = None) -> dict[str, Any]:
    """Measure and describe this board. Never raises for a model that fails: it becomes a result.

    models: zoo names or .tflite paths (default: :func:`default_models`; zoo models that are not
    cached are downloaded unless offline, and skipped with the reason when that fails).
    images: image files for the agreement check (default: the bundled cat photo); seeded random
    inputs are always added. quick: fewer runs (see :data:`bredos_npu.report.measure.QUICK`).
    root/delegate: as for :func:`bredos_npu.load`. say: called with progress lines.
    """
    from bredos_npu import __version__
    from bredos_npu.doctor import diagnose
    from bredos_npu.report.facts import system_facts
    from bredos_npu.system.root import SystemRoot

    say = say or (lambda _: None)
    started = time.perf_counter()
    system = SystemRoot.from_env(root)
    root_arg = None if root is None else str(root)
    plan = QUICK if quick else FULL
    chosen_images = [Path(i) for i in images] if images else default_images()
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "tool_version": __version__, "quick": quick,
        "plan": plan.as_dict(), "system": system_facts(system, delegate),
        "doctor": diagnose(root_arg, delegate).as_dict(), "models": [], "skipped": [],
        "images": [p.name for p in chosen_images],
    }
    names = [str(m) for m in models] if models else default_models()
    for number, name in enumerate(names, 1):
        prefix = f"[{number}/{len(names)}] {name}"
        say(f"{prefix}: resolving")
        report["models"].append(_model_entry(name, chosen_images, plan, root_arg, delegate,
                                             lambda line, p=prefix: say(f"{p}: {line}")))
    if report["system"]["kernel"]["vendor"]:
        report["skipped"].append("NPU measurements: " + report["system"]["kernel"]["vendor_note"])
    report["seconds"] = round(time.perf_counter() - started, 1)
    return scrub(report, private_words(system))


def _model_entry(name: str, images: list[Path], plan: Any, root: str | None, delegate: str | None,
                 say: Say) -> dict[str, Any]:
    from bredos_npu.errors import BredosNpuError
    from bredos_npu.models.zoo import resolve

    try:
        path = resolve(name).path
    except BredosNpuError as why:
        return {"name": name, "verdict": NOT_MEASURED, "skipped": str(why)}
    if not path.is_file():
        return {"name": name, "verdict": NOT_MEASURED, "skipped": "no such model file or zoo name"}
    entry: dict[str, Any] = {"name": name, "file": path.name,
                             "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    started = time.perf_counter()
    try:
        entry.update(measure_model(path, images, plan, root, delegate, say))
    except BredosNpuError as why:  # e.g. a model no runtime can load, or a broken image
        entry.update(verdict=NOT_MEASURED, skipped=str(why))
    entry["seconds"] = round(time.perf_counter() - started, 1)
    say(f"{entry['verdict']} ({entry['seconds']:.1f} s)")
    return entry


__all__ = ["FULL", "QUICK", "SCHEMA_VERSION", "default_models", "make_report", "schema"]
