"""`bredos-npu serve` started by a test as a real process on 127.0.0.1, stopped by the test."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class ServeProcess:
    """``bredos-npu serve --port 0 ARGS...``; ``url`` once it listens; ``lines``: its stderr."""

    def __init__(self, *args: str | Path, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-c", "from bredos_npu.cli import main; main()", "serve",
                   "--host", "127.0.0.1", "--port", "0", *map(str, args)]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            self._lines.put(line)
        self._lines.put(None)

    def wait_listening(self) -> ServeProcess:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            found = LISTENING.search(line)
            if found:
                self.url = f"http://127.0.0.1:{found.group(1)}"
                return self
        self.stop()
        raise AssertionError("the server did not start:\n" + "\n".join(self.lines))

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        """The exit status of a server expected to stop by itself (e.g. a start-up failure)."""
        try:
            return self.process.wait(timeout)
        finally:
            self.stop()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Ask the server to stop; kill it when it does not within STOP_TIMEOUT. Its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)  # reads to the end of stderr, then it closes
        if self.process.stderr and not self._reader.is_alive():
            self.process.stderr.close()
        return self.process.returncode

    def rss_kib(self) -> int:
        """The server's resident memory now (VmRSS), in KiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))

    def __enter__(self) -> ServeProcess:
        return self.wait_listening()

    def __exit__(self, *exc: object) -> None:
        self.stop()
