"""A stop signal while a task command is still loading its model (a zoo download, the delegate
probe's child process): the same one line and exit 128+N as during the run, nothing at the model's
final name, no child process left behind.

Without it the signal's default action ends the process silently, and the probe's child (in its
own session, so that a crash there stays there) lives on as an orphan.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from conftest import CAT
from userfiles import finish, run, start, wait_until

SSD = "ssd-mobilenet-v1"
SSD_FILE = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
STOPPED = "bredos-npu: stopped by SIGTERM while loading the model."


def _partial_of_at_least(cache: Path, size: int) -> bool:
    for part in cache.rglob("*.part"):
        with contextlib.suppress(FileNotFoundError):  # renamed meanwhile
            if part.stat().st_size >= size:
                return True
    return False


def test_sigterm_during_a_zoo_download_stops_cleanly_and_the_download_resumes(tmp_path, server):
    cache, results = tmp_path / "cache", tmp_path / "out.jsonl"
    env = {"BREDOS_NPU_CACHE": str(cache), "BREDOS_NPU_MODEL_BASE_URL": server.url + "/trickle/"}
    process = start("detect", "-m", SSD, "-b", "cpu", CAT, "--jsonl", results, env=env)
    wait_until(lambda: _partial_of_at_least(cache, server.trickle_head), process, timeout=30)
    os.kill(process.pid, signal.SIGTERM)
    stopped = finish(process, timeout=15)
    assert (stopped.code, stopped.err.splitlines(), stopped.out) == (143, [STOPPED], "")
    assert not (cache / SSD_FILE).exists() and not results.exists()
    [partial] = cache.rglob("*.part")  # kept, unlocked, as a killed process would leave it
    have = partial.stat().st_size

    env["BREDOS_NPU_MODEL_BASE_URL"] = server.url + "/"
    done = run("models", "pull", SSD, env=env)
    assert done.code == 0, done.err
    assert [r for path, r in server.requests if path == f"/{SSD_FILE}"] == [f"bytes={have}-"]
    assert list(cache.rglob("*.part")) == []


def _children(pid: int, marker: str) -> list[int]:
    """The processes whose parent is ``pid`` and whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid and marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_during_the_delegate_probe_leaves_no_child(tmp_path, delegates):
    """The probe's delegate hangs in its first invoke: the CLI waits on its child when stopped."""
    env = {"BREDOS_NPU_PROBE_CACHE": str(tmp_path / "verdicts"), "BREDOS_NPU_PROBE_TIMEOUT": "60"}
    process = start("classify", "-b", "npu", "--delegate", delegates["hang_invoke"], CAT, env=env)
    probes: list[int] = []
    try:
        wait_until(lambda: bool(probes.extend(_children(process.pid, "bredos_npu.runtime.probe"))
                                or probes), process, timeout=30)
        os.kill(process.pid, signal.SIGTERM)
        stopped = finish(process, timeout=15)
        assert (stopped.code, stopped.err.splitlines(), stopped.out) == (143, [STOPPED], "")
        assert [pid for pid in probes if _alive(pid)] == []
    finally:  # an orphaned probe would hang forever: never leave it behind, even when failing
        for pid in probes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    assert list((tmp_path / "verdicts").glob("*")) == []  # a stop is no verdict on the delegate
