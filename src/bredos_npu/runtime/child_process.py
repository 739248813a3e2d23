"""Running a Python child process that may crash or hang, under a deadline.

The delegate probe (:mod:`bredos_npu.runtime.probe`) and the report's measurements
(:mod:`bredos_npu.report.child`) both run a delegate where its crash (Mesa asserts, SIGSEGV) or
hang cannot take this process down. This is the part they share: start, wait at most a deadline,
kill what is left, say how it ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import NamedTuple

# The signals that stop this process (the CLI's handlers raise from them, cli/interrupts.py):
# held while a child starts, so that a stop cannot land between the fork and the moment the
# child is ours to kill.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


class ChildRun(NamedTuple):
    """How a child ended.

    returncode: its exit status, negative for the signal that ended it, None when the deadline
    killed it. stdout, stderr: what it wrote (decoded, undecodable bytes replaced). seconds: how
    long it ran.
    """

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def signal(self) -> str | None:
        """The name of the signal that ended it ("SIGSEGV"), None when it exited or timed out."""
        return signal_name(-self.returncode) if self.returncode is not None and self.returncode < 0 else None

    def ending(self) -> str:
        """How it ended, for a sentence: "crashed with SIGABRT", "exited with status 3",
        "did not finish in time" or "exited normally"."""
        if self.timed_out:
            return "did not finish in time"
        if self.signal:
            return f"crashed with {self.signal}"
        return f"exited with status {self.returncode}" if self.returncode else "exited normally"


def signal_name(number: int) -> str:
    """"SIGSEGV" for 11; "signal 99" for a number Python does not name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_child(command: Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> ChildRun:
    """Run ``command`` with stdin closed and its output captured; never raises for its ending.

    timeout: seconds; past it the child and everything it started are killed (it runs in its own
    session, so nothing else is). env: variables added to this process's environment. Python's
    faulthandler is turned off in the child: its traceback of a crash would drown what the
    library printed, which is what the caller reports.
    """
    import subprocess  # here: the CLI imports this module for STOP_SIGNALS at every start

    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    child_env.update(env or {})
    started = time.perf_counter()
    with _stops_held() as release:
        child = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, start_new_session=True, env=child_env)
        try:
            release()  # a stop that came while the child started is raised here, where it is killed
            out, err = child.communicate(timeout=timeout)
            returncode: int | None = child.returncode
        except subprocess.TimeoutExpired:
            _kill_group(child.pid)
            out, err = child.communicate()
            returncode = None
        except BaseException:  # Ctrl-C or SIGTERM while waiting: leave no child behind
            _kill_group(child.pid)
            child.wait()
            raise
    return ChildRun(returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                    time.perf_counter() - started)


@contextmanager
def _stops_held() -> Iterator[Callable[[], None]]:
    """Block STOP_SIGNALS in this thread until the ``release`` it yields is called (or the block
    ends). The child inherits the blocked mask: it calls :func:`take_stop_signals` first."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def release() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)

    try:
        yield release
    finally:
        release()


def take_stop_signals() -> None:
    """First thing in a child started by :func:`run_child`: receive the stop signals its parent
    held while starting it (one that came meanwhile is delivered now)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.killpg(pid, signal.SIGKILL)
