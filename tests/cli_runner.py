"""Running the real entry point in-process, as a user's shell would see it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import NamedTuple

import pytest

from bredos_npu.cli import main


class Outcome(NamedTuple):
    code: int
    out: str
    err: str


def run_cli(capfd: pytest.CaptureFixture[str], *args: str) -> Outcome:
    capfd.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in args])
    out, err = capfd.readouterr()
    code = stopped.value.code
    return Outcome(code if isinstance(code, int) else 0, out, err)


def run_child(*args: object, unprivileged: bool = False, timeout: float = 60
              ) -> subprocess.CompletedProcess[str]:
    """``bredos-npu ARGS`` in a child process with a deadline.

    unprivileged: as root, run it without the capabilities that let root ignore file modes, so
    that ``chmod 0`` really denies reading (as it does for any other user).
    """
    command = [sys.executable, "-m", "bredos_npu", *map(str, args)]
    if unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root's file-mode bypass"
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def run_on_terminal(*args: object, timeout: float = 60, columns: int = 160) -> tuple[int, str]:
    """``bredos-npu ARGS`` in a child whose stderr is a terminal (a pseudo-terminal of
    ``columns``), as a user sees it: progress bars are drawn. Returns the exit code and all that
    was written to the terminal; the child is killed after ``timeout`` seconds."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    child = subprocess.Popen([sys.executable, "-m", "bredos_npu", *map(str, args)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    written, deadline = bytearray(), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the child closed the terminal (EIO)
                    break
                if not chunk:
                    break
                written += chunk
            elif child.poll() is not None:
                break
        code = child.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(leader)
    return code, written.decode("utf-8", "replace")
