"""Measuring one model on one backend in a child process, so a delegate crash is a result.

Mesa asserts (SIGABRT) or faults (SIGSEGV) inside the process on some graphs; no Python code can
catch that. The parent writes a spec, runs ``python -m bredos_npu.report.child SPEC`` with a
deadline, and reads back ``result.json`` and ``outputs.npz``. The child writes the stage it is
entering to ``stage.txt`` first, so a crash can be reported as "during the first invoke".
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bredos_npu.runtime.child_process import run_child, take_stop_signals

STAGE_FILE, RESULT_FILE, OUTPUTS_FILE, INPUTS_FILE = "stage.txt", "result.json", "outputs.npz", "inputs.npz"


class ChildOutcome(NamedTuple):
    """How the child ended. ``result`` is its JSON (None when it died); ``stderr`` its C-level log."""

    result: dict[str, Any] | None
    stderr: str
    crash: str | None  # "crashed with SIGSEGV during the first invoke", "did not finish in 60 s"
    outputs: list[list[np.ndarray]]


def run_measurement(spec: dict[str, Any], folder: Path, timeout: float,
                    env: dict[str, str] | None = None) -> ChildOutcome:
    """Run the child on ``spec`` (inputs already saved in ``folder``); never raises for a crash."""
    (folder / "spec.json").write_text(json.dumps(spec))
    ran = run_child([sys.executable, "-m", "bredos_npu.report.child", str(folder / "spec.json")],
                    timeout, env)
    if ran.timed_out:
        stage = _read(folder / STAGE_FILE)
        return ChildOutcome(None, ran.stderr, f"did not finish in {timeout:.0f} s ({stage})", [])
    result = json.loads(_read(folder / RESULT_FILE) or "null") if ran.returncode == 0 else None
    if result is None:
        stage = _read(folder / STAGE_FILE) or "starting"
        last = [line for line in ran.stderr.splitlines() if line.strip()][-1:]
        detail = f"; it said: {last[0].strip()[:200]}" if last else ""
        return ChildOutcome(None, ran.stderr, f"{ran.ending()} during {stage}{detail}", [])
    return ChildOutcome(result, ran.stderr, None, _load_outputs(folder / OUTPUTS_FILE))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _load_outputs(path: Path) -> list[list[np.ndarray]]:
    if not path.exists():
        return []
    with np.load(path) as saved:
        count = int(saved["count"])
        return [[saved[f"{i}_{k}"] for k in range(int(saved[f"{i}_n"]))] for i in range(count)]


def main(spec_path: str) -> int:
    """The child: load, first invoke, latency, outputs for agreement, parallel throughput."""
    from bredos_npu.report.measure import measure_in_child

    folder = Path(spec_path).parent
    spec = json.loads(Path(spec_path).read_text())
    with np.load(folder / INPUTS_FILE) as saved:
        inputs = [saved[f"input_{i}"] for i in range(len(saved.files))]

    def stage(name: str) -> None:
        (folder / STAGE_FILE).write_text(name)

    started = time.perf_counter()
    result, outputs = measure_in_child(spec, inputs, stage)
    result["seconds"] = round(time.perf_counter() - started, 3)
    arrays = {"count": np.array(len(outputs))}
    for i, values in enumerate(outputs):
        arrays[f"{i}_n"] = np.array(len(values))
        arrays.update({f"{i}_{k}": value for k, value in enumerate(values)})
    np.savez(folder / OUTPUTS_FILE, **arrays)
    (folder / RESULT_FILE).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    take_stop_signals()
    sys.exit(main(sys.argv[1]))
