"""Ctrl-C, SIGTERM and SIGHUP during a bulk run: stop between results, never in the middle of one.

A long run writes results as it goes; dying in the middle of a record (or of a picture) would
leave half a line or a ``.part`` file, and the default SIGTERM/SIGHUP actions skip all clean-up.
While :func:`interruptible` is active these signals raise :class:`Interrupted`, except inside
:meth:`Guard.hold`, where they wait until the record in hand is complete.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):  # like KeyboardInterrupt, which it generalises
    """A stop signal arrived; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(self.name)


class Guard:
    """Holds signals back while a record is written (see :meth:`hold`)."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending: int | None = None

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.depth:
            self.pending = signum
        else:
            raise Interrupted(signum)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Signals that arrive inside wait until the block is done, then raise."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)


@contextmanager
def interruptible() -> Iterator[Guard]:
    """Turn SIGINT/SIGTERM/SIGHUP into :class:`Interrupted` for the duration (main thread only:
    elsewhere, e.g. a program using the CLI from a thread, the signals keep their handlers)."""
    guard = Guard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    previous = {signum: signal.signal(signum, guard.handle) for signum in SIGNALS}
    try:
        yield guard
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
