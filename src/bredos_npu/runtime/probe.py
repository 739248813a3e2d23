"""Trying a delegate on a model in a child process before trusting it in this one.

Mesa's Teflon asserts (SIGABRT) or reads out of bounds (SIGSEGV) on some graphs, inside the
process that runs the model, where no Python code can catch it. So before a delegate runs a model
here, a child process does what the real run does (create the delegate, build an interpreter with
it, allocate, invoke once on a zero input) under a deadline. A crash or a hang there becomes a
sentence, and the caller falls back to the CPU (``auto``) or refuses (``npu``).

The verdict is cached per (library file, model sha256, TFLite runtime, kernel release) so the cost
(one Python start and one inference, about 0.4 s plus the NPU's first compilation) is paid once.
Clean failures (the library returns no delegate, the interpreter refuses it) are not cached: they
depend on the device's state, cost nothing, and the in-process path explains them anyway. A crash
or a hang is believed for a day ($BREDOS_NPU_PROBE_RETRY_AFTER seconds), then tried again: it may
have come from the device's state (firmware, a loaded module, a busy or overheated board) rather
than from the identity in the key, and an NPU refused forever for a passing reason costs far more
than one more probe.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from bredos_npu.runtime.child_process import run_child, take_stop_signals

PROBE_TIMEOUT_ENV = "BREDOS_NPU_PROBE_TIMEOUT"
PROBE_CACHE_ENV = "BREDOS_NPU_PROBE_CACHE"
RETRY_AFTER_ENV = "BREDOS_NPU_PROBE_RETRY_AFTER"
DEFAULT_RETRY_AFTER = 86400.0  # seconds a crashed or hung verdict is believed
DEFAULT_TIMEOUT = 60.0  # seconds: a Python start, a model load and the NPU's first compilation
PROBE_FOLDER = "delegate-probes"

# The steps the child takes, in order; a crash is reported with the one that was running.
CREATE = "creating the delegate"
BUILD = "handing the model's graph to the delegate"
ALLOCATE = "preparing (compiling) the delegated graph"
INVOKE = "running the first invoke on a zero input"

OK, FAILED, CRASHED, HUNG = "ok", "failed", "crashed", "hung"
CACHED_OUTCOMES = (OK, CRASHED, HUNG)
EXPIRING_OUTCOMES = (CRASHED, HUNG)


class ProbeVerdict(NamedTuple):
    """What the child process saw.

    outcome: "ok", "failed" (a clean error, see ``detail``), "crashed" or "hung". stage: the step
    that was running when it stopped (see the module's constants). detail: the signal, the error
    or the exit status. said: the last lines the library printed on stderr. seconds: what the probe
    cost when it ran. cached: True when this verdict comes from the cache (no child was started).
    log: all the child printed on stderr (e.g. Teflon's TEFLON_DEBUG account); empty when cached.
    """

    outcome: str
    stage: str
    detail: str
    said: tuple[str, ...]
    seconds: float
    cached: bool = False
    log: str = ""  # everything the child printed on stderr (not cached)

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    def reason(self, library: str | os.PathLike[str]) -> str:
        """One sentence (without a final period) saying what went wrong, for crashed/hung/failed."""
        heard = f" (it said: {'; '.join(self.said)})" if self.said else ""
        if self.outcome == CRASHED:
            return f"the delegate {library} crashed with {self.detail} while {self.stage}{heard}"
        if self.outcome == HUNG:
            return f"the delegate {library} did not finish {self.stage} within {self.detail}{heard}"
        if self.outcome == FAILED:
            return f"the delegate {library} failed while {self.stage}: {self.detail}{heard}"
        return f"the delegate {library} ran the model once in {self.seconds:.2f} s"


def probe_timeout() -> float:
    """The probe's deadline in seconds: $BREDOS_NPU_PROBE_TIMEOUT, else 60."""
    from bredos_npu.environment import env_number

    return env_number(PROBE_TIMEOUT_ENV, DEFAULT_TIMEOUT, limit=1e6)


def probe_folder() -> Path:
    """Where verdicts are cached: $BREDOS_NPU_PROBE_CACHE, else $BREDOS_NPU_CACHE/delegate-probes,
    else the XDG cache folder's bredos-npu/delegate-probes."""
    if os.environ.get(PROBE_CACHE_ENV):
        return Path(os.environ[PROBE_CACHE_ENV])
    chosen = os.environ.get("BREDOS_NPU_CACHE")
    if chosen:
        return Path(chosen) / PROBE_FOLDER
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bredos-npu")) / PROBE_FOLDER


def _key(library: Path, model_digest: str) -> str:
    """Identity of what the verdict depends on: the library file, the model, runtime and kernel."""
    from bredos_npu.runtime.litert import find_runtime

    real = library.resolve()
    stat = real.stat()
    runtime = find_runtime()
    identity = [str(real), stat.st_size, stat.st_mtime_ns, model_digest, runtime.name,
                runtime.version, platform.release()]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]


def retry_after() -> float:
    """Seconds a crashed or hung verdict is believed: $BREDOS_NPU_PROBE_RETRY_AFTER, else a day."""
    from bredos_npu.environment import env_number

    return env_number(RETRY_AFTER_ENV, DEFAULT_RETRY_AFTER, limit=1e10)


def _read_cached(path: Path, now: float | None = None) -> ProbeVerdict | None:
    """The verdict cached in ``path``; None when there is none, it is damaged, or it is a crash
    or hang written more than :func:`retry_after` seconds before ``now`` (default: the time)."""
    try:
        data = json.loads(path.read_text())
        verdict = ProbeVerdict(data["outcome"], data["stage"], data["detail"], tuple(data["said"]),
                               float(data["seconds"]), cached=True)
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: probe again
    if verdict.outcome in EXPIRING_OUTCOMES and age > retry_after():
        return None
    return verdict if verdict.outcome in CACHED_OUTCOMES else None


def _write_cached(path: Path, verdict: ProbeVerdict) -> None:
    """Best effort: a cache that cannot be written only costs another probe next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".part", delete=False) as out:
            json.dump({k: v for k, v in verdict._asdict().items() if k not in ("cached", "log")}, out)
        os.replace(out.name, path)
    except OSError:
        pass


def probe_delegate(library: str | os.PathLike[str], model: str | os.PathLike[str],
                   model_digest: str | None = None, timeout: float | None = None,
                   use_cache: bool = True) -> ProbeVerdict:
    """Run ``model`` once with the delegate ``library`` in a child process; the verdict.

    model_digest: the model's sha256 when the caller has it (else it is computed). timeout: the
    child's deadline in seconds (default: $BREDOS_NPU_PROBE_TIMEOUT or 60). use_cache: read a
    cached verdict (one is always written for ok/crashed/hung).
    """
    library, model = Path(library), Path(model)
    digest = model_digest or hashlib.sha256(model.read_bytes()).hexdigest()
    cache_file = probe_folder() / f"{_key(library, digest)}.json"
    if use_cache and (cached := _read_cached(cache_file)) is not None:
        return cached
    verdict = _run_child(library, model, timeout if timeout is not None else probe_timeout())
    if verdict.outcome in CACHED_OUTCOMES:
        _write_cached(cache_file, verdict)
    return verdict


def _run_child(library: Path, model: Path, timeout: float) -> ProbeVerdict:
    ran = run_child([sys.executable, "-m", "bredos_npu.runtime.probe", str(library), str(model)], timeout)
    lines = ran.stdout.splitlines()
    stages = [line[6:] for line in lines if line.startswith("stage ")]
    stage = stages[-1] if stages else "starting"
    said = tuple(_printable(line) for line in ran.stderr.splitlines()
                 if line.strip() and not line.startswith("INFO: "))[-2:]
    if ran.timed_out:
        return ProbeVerdict(HUNG, stage, f"{timeout:g} s", said, ran.seconds, log=ran.stderr)
    if ran.signal:
        return ProbeVerdict(CRASHED, stage, ran.signal, said, ran.seconds, log=ran.stderr)
    if lines and lines[-1] == "ok":
        return ProbeVerdict(OK, stage, "", (), ran.seconds, log=ran.stderr)
    if lines and lines[-1].startswith("failed "):
        return ProbeVerdict(FAILED, stage, lines[-1][7:], said, ran.seconds, log=ran.stderr)
    return ProbeVerdict(CRASHED, stage, f"exit status {ran.returncode}", said, ran.seconds, log=ran.stderr)


def _printable(text: str) -> str:
    """A library's line with control characters (escape sequences, NUL) made visible."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text.strip())


def _child(library: str, model: str) -> int:
    """The child's side: each step announced on stdout before it starts, then "ok" or "failed"."""
    import numpy as np

    from bredos_npu.runtime.litert import find_runtime

    def stage(name: str) -> None:
        print(f"stage {name}", flush=True)

    try:
        runtime = find_runtime()
        stage(CREATE)
        delegate = runtime.load_delegate(library)
        stage(BUILD)
        interpreter = runtime.interpreter_class(model_path=model, num_threads=1,
                                                experimental_delegates=[delegate])
        stage(ALLOCATE)
        interpreter.allocate_tensors()
        stage(INVOKE)
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
    except Exception as error:  # reported to the parent, which decides what it means
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        print(f"failed {first.strip()}", flush=True)
        return 1
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    take_stop_signals()
    sys.exit(_child(sys.argv[1], sys.argv[2]))
