"""Capturing what native code writes to file descriptor 2.

TFLite prints "INFO: Created TensorFlow Lite XNNPACK delegate" and Teflon prints "Couldn't open
kernel device" straight to fd 2, past Python's sys.stderr. We capture it so that the user sees one
clear line from us, with the native text folded into it when it explains a failure.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

_lock = threading.RLock()


class Captured:
    """The captured text, available after the ``with`` block ends."""

    text: str = ""

    def lines(self) -> list[str]:
        return [line.strip() for line in self.text.splitlines() if line.strip()]


@contextmanager
def capture_native_stderr(enabled: bool = True) -> Iterator[Captured]:
    """Redirect fd 2 to a temporary file for the duration of the block.

    fd 2 is process-wide: while a capture runs, other threads' stderr is captured too (loading a
    model takes milliseconds). A re-entrant lock serialises captures and allows nesting. With
    ``enabled=False`` (``--debug``) native output goes through untouched.
    """
    captured = Captured()
    if not enabled:
        yield captured
        return
    with _lock, _sink() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")


def _sink() -> IO[bytes]:
    """A nameless file in memory (Linux's memfd: no disk, no tempfile import at start-up), else
    a temporary file."""
    try:
        return os.fdopen(os.memfd_create("bredos-npu-stderr", os.MFD_CLOEXEC), "w+b")
    except (AttributeError, OSError):  # not Linux, or refused (seccomp, an old kernel)
        pass
    import tempfile

    return tempfile.TemporaryFile()
