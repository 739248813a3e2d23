"""Running the real CLI in a child process, to stop, pause and signal it mid-run like a user."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

DEADLINE_S = 90.0


class Finished(NamedTuple):
    code: int
    out: str
    err: str


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREDOS_NPU_")}
    env.update(LC_ALL="C.UTF-8", PYTHONIOENCODING="")
    return env


def start(*args: object, cwd: Path | None = None, prefix: tuple[str, ...] = (),
          preexec: Callable[[], None] | None = None, env: dict[str, str] | None = None
          ) -> subprocess.Popen[bytes]:
    """``bredos-npu ARGS`` in a child process (its own session, so signals reach only it), with
    the variables ``env`` added to a clean environment."""
    command = [*prefix, sys.executable, "-m", "bredos_npu", *(os.fsdecode(a) if isinstance(a, bytes)
                                                             else str(a) for a in args)]
    return subprocess.Popen(command, cwd=cwd, env={**environment(), **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=preexec)


def finish(process: subprocess.Popen[bytes], timeout: float = DEADLINE_S) -> Finished:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"bredos-npu did not finish within {timeout} s") from None
    return Finished(process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def run(*args: object, **options: object) -> Finished:
    return finish(start(*args, **options))  # type: ignore[arg-type]


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes],
               timeout: float = DEADLINE_S) -> None:
    """Poll ``condition`` every few ms; fail if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"bredos-npu ended (exit {process.returncode}) before the moment "
                                 f"the test waited for: {err.decode(errors='replace')[-800:]}")
        if time.monotonic() > deadline:
            process.kill()
            process.communicate()
            raise AssertionError(f"the moment the test waited for did not come within {timeout} s")
        time.sleep(0.003)


def paused(process: subprocess.Popen[bytes]) -> _Paused:
    return _Paused(process)


class _Paused:
    """``with paused(p):`` stops the child (SIGSTOP) for the block, then lets it go on."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def __enter__(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def __exit__(self, *exc: object) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


def part_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.part"))


def records_in_part(folder: Path, minimum: int) -> Callable[[], bool]:
    """True once a .part file in ``folder`` holds ``minimum`` whole lines."""
    def enough() -> bool:
        for part in part_files(folder):
            try:
                if part.read_bytes().count(b"\n") >= minimum:
                    return True
            except FileNotFoundError:
                pass
        return False

    return enough


def image_folder(folder: Path, image: Path, count: int, name: str = "{:03d}{}") -> list[Path]:
    """``count`` copies of ``image`` (hard links when possible) named 000.bmp, 001.bmp, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for number in range(count):
        target = folder / name.format(number, image.suffix)
        try:
            os.link(image, target)
        except OSError:
            shutil.copy(image, target)
        made.append(target)
    return made


def without_file_permission_override() -> tuple[str, ...]:
    """A prefix that runs a command without root's power to ignore file permissions (so an
    unreadable folder is unreadable even to root); nothing when not root."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
    return (setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--")
