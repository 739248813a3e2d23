"""Ctrl-C, SIGTERM and SIGHUP: stop cleanly, and during a bulk run between results, never in the
middle of one.

A long run writes results as it goes; dying in the middle of a record (or of a picture) would
leave half a line or a ``.part`` file, and the default SIGTERM/SIGHUP actions skip all clean-up
(the delegate probe's child process would be orphaned, a download's partial file left unlocked
mid-write). While :func:`interruptible` is active these signals raise :class:`Interrupted`, except
inside :meth:`Guard.hold`, where they wait until the record in hand is complete. A task command is
interruptible from start to end; :func:`doing` names the step for the line it ends with.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from bredos_npu.runtime.child_process import STOP_SIGNALS


class Interrupted(BaseException):  # like KeyboardInterrupt, which it generalises
    """A stop signal arrived; ``exit_code`` is the shell's 128 + signal number. ``doing``: the
    step it stopped ("loading the model"), None when no step was named."""

    def __init__(self, signum: int, doing: str | None = None) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        self.doing = doing
        super().__init__(self.name)

    def line(self) -> str:
        """The one line a command stopped outside a batch ends with."""
        return f"bredos-npu: stopped by {self.name}" + (f" while {self.doing}." if self.doing else ".")


_steps: list[str] = []  # what the command is doing, innermost last (see doing())


@contextmanager
def doing(step: str) -> Iterator[None]:
    """Name the step in progress ("loading the model") for the line a stop signal ends it with."""
    _steps.append(step)
    try:
        yield
    finally:
        _steps.pop()


def _stopped(signum: int) -> Interrupted:
    return Interrupted(signum, _steps[-1] if _steps else None)


class Guard:
    """Holds signals back while a record is written (see :meth:`hold`)."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending: int | None = None

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.depth:
            self.pending = signum
        else:
            raise _stopped(signum)

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
            raise _stopped(signum)


@contextmanager
def handling(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """``handler`` for SIGINT/SIGTERM/SIGHUP for the duration, their previous handlers after.
    Main thread only (Python sets handlers nowhere else): elsewhere, e.g. a program using the
    CLI from a thread, the signals keep their handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def interruptible() -> Iterator[Guard]:
    """Turn SIGINT/SIGTERM/SIGHUP into :class:`Interrupted` for the duration (see :func:`handling`)."""
    guard = Guard()
    with handling(guard.handle):
        yield guard
