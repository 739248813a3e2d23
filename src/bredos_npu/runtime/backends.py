"""Choosing and preparing a backend: ``npu`` (Mesa Teflon delegate), ``cpu`` (XNNPACK), ``auto``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from bredos_npu.cstderr import capture_native_stderr
from bredos_npu.errors import BackendError, Reason
from bredos_npu.runtime.litert import Runtime
from bredos_npu.system.cpu import CpuPlan
from bredos_npu.system.device import ACCEL_NODE
from bredos_npu.system.kernel import MIN_KERNEL, ROCKET_OPTION
from bredos_npu.system.library import TEFLON_PATHS, check_loadable
from bredos_npu.system.readiness import Check, npu_readiness
from bredos_npu.system.root import SystemRoot

BACKENDS = ("auto", "npu", "cpu")
FLOAT_MODEL_REASON = (
    "the model is float (not quantized): Teflon is meant for quantized uint8 models and its "
    "rocket driver does not reject float convolutions, so running them on the NPU is unsafe"
)


def check_backend_name(backend: str) -> None:
    """BackendError (UNKNOWN_BACKEND) unless ``backend`` is one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise BackendError(f"Unknown backend {backend!r}", f"choose one of {', '.join(BACKENDS)}",
                           Reason.UNKNOWN_BACKEND, backend=backend)


class BackendPlan(NamedTuple):
    """Where a model will run and why: the one decision :func:`bredos_npu.load` makes before it
    builds the interpreter.

    backend: "npu" or "cpu". requested: what was asked ("auto", "npu" or "cpu"). cpu: the
    XNNPACK threads and the CPU numbers they are pinned to (the CPU runs what the NPU does not
    take). reason: why the NPU is not used, as the BackendError that ``backend="npu"`` would have
    raised (None when the NPU is used or "cpu" was asked). hazards: what inspect predicts may
    differ from the CPU on the NPU ("op 3: ..."), NPU only. delegate_library: the external
    delegate library to load, NPU only.
    """

    backend: str
    requested: str
    cpu: CpuPlan
    reason: BackendError | None = None
    hazards: tuple[str, ...] = ()
    delegate_library: str | None = None

    def fall_back(self, why: BackendError) -> BackendPlan:
        """This plan moved to the CPU because of ``why``; raises ``why`` when "npu" was asked."""
        if self.requested == "npu":
            raise why
        return self._replace(backend="cpu", reason=why, hazards=(), delegate_library=None)


def plan_backend(requested: str, cpu: CpuPlan, system: SystemRoot, *, model_path: Path,
                 float_model: bool, delegate: str | None = None,
                 model_content: bytes | None = None) -> BackendPlan:
    """Decide where the model at ``model_path`` runs, without loading a delegate in this process.

    requested: "auto", "npu" or "cpu". float_model: the model computes in float (Teflon must not
    take it). delegate: the library the caller named (default: $BREDOS_NPU_DELEGATE, then Teflon's
    usual places). model_content: the model's bytes when the caller has read them (inspection and
    the delegate probe's cache key then use them instead of reading the file again).
    Under "npu" any reason not to use the NPU is raised as BackendError; under "auto" it becomes
    the plan's ``reason`` and the plan says "cpu".
    """
    check_backend_name(requested)
    on_cpu = BackendPlan("cpu", requested, cpu)
    if requested == "cpu":
        return on_cpu
    try:
        if float_model:
            raise BackendError(f"NPU not used: {FLOAT_MODEL_REASON}", "run it on the CPU",
                               Reason.FLOAT_MODEL, path=model_path)
        readiness = npu_readiness(system, delegate)
        if readiness.first_failure is not None:
            raise npu_unavailable(readiness.first_failure)
        library = str(readiness.library.path)
        hazards = npu_hazards(model_path, requested, model_content)
        # In a child process first: a delegate that crashes on this graph must not take this
        # process down with it.
        refuse_unsafe_delegate(library, model_path, model_content)
    except BackendError as why:
        return on_cpu.fall_back(why)
    return BackendPlan("npu", requested, cpu, None, tuple(hazards), library)


def npu_hazards(model_path: Path, backend: str, content: bytes | None = None) -> list[str]:
    """What inspect predicts would go wrong on the NPU; raises BackendError when it must not run.

    A crash (Mesa asserts or reads out of bounds inside the process, where no fallback can catch
    it) blocks both "npu" and "auto"; predicted wrong results block "auto" only. The rest (e.g.
    int8 data, unverified on rocket) is returned so callers can warn. content: the model's
    bytes, when already read (else the file at ``model_path`` is inspected).
    """
    from bredos_npu.models.inspection.analysis import inspect_model
    from bredos_npu.models.inspection.rules import CRASH, UNVERIFIED, WRONG

    inspection = inspect_model(model_path if content is None else content)
    blocking = (CRASH,) if backend == "npu" else (CRASH, WRONG)
    blockers = inspection.hazards_at(*blocking)
    if blockers:
        index, hazard = blockers[0]
        others = f" (+{len(blockers) - 1} more)" if len(blockers) > 1 else ""
        verb = "would crash" if hazard.level == CRASH else "would compute wrong results"
        raise BackendError(f"NPU not used: Mesa's rocket driver {verb} on this model (op {index}: "
                           f"{hazard}{others})", "run it on the CPU",
                           Reason.WOULD_CRASH if hazard.level == CRASH else Reason.WRONG_RESULTS,
                           op=index, hazard=str(hazard), path=model_path)
    return [f"op {i}: {h}" for i, h in inspection.hazards_at(WRONG, UNVERIFIED)]


def refuse_unsafe_delegate(library: str, model_path: Path, content: bytes | None = None) -> None:
    """Raise BackendError when the delegate crashes or hangs on this model in a child process.

    Clean failures (no delegate, a refused graph) are left to the in-process path, which explains
    them; the verdict is cached (see :mod:`bredos_npu.runtime.probe`). content: the model's bytes,
    when already read (they key the cache; else the file is read).
    """
    import hashlib  # here, not at the top: the CPU path does without OpenSSL

    from bredos_npu.runtime.probe import CRASHED, HUNG, probe_delegate

    digest = hashlib.sha256(content).hexdigest() if content is not None else None
    verdict = probe_delegate(library, model_path, digest)
    if verdict.outcome in (CRASHED, HUNG):
        kind = Reason.DELEGATE_CRASHED if verdict.outcome == CRASHED else Reason.DELEGATE_HUNG
        raise BackendError(f"NPU not used: {verdict.reason(library)}", "run it on the CPU", kind,
                           library=library, path=model_path, stage=verdict.stage,
                           detail=verdict.detail, log=verdict.log)


# What the API says when a readiness check keeps the NPU out: {fields} come from the check's data.
UNAVAILABLE = {
    Reason.NOT_RK3588: ("NPU not available: this is not an RK3588 board, which has the NPU this "
                        "tool drives", None),
    Reason.NO_DEVICE_NODE: ("NPU not available: no NPU device node {device}",
                            "load the driver with `sudo modprobe rocket`"),
    Reason.NO_TEFLON: ("NPU not available: Mesa's Teflon delegate was not found (looked in {looked})",
                       "install it with `sudo pacman -Syu mesa` or pass the path of a delegate library"),
    Reason.DELEGATE_MISSING: ("NPU not available: the delegate library {library} does not exist",
                              "pass the path of Mesa's libteflon.so"),
    Reason.DELEGATE_NOT_LOADABLE: ("Cannot load the delegate library {library} ({error})",
                                   "pass Mesa's libteflon.so"),
    Reason.NOT_A_DELEGATE: ("{library} is not a TFLite external delegate ({error})",
                            "pass Mesa's libteflon.so"),
}
# The fixes of the other board checks (reason NPU_NOT_READY), in the API's words.
NOT_READY_FIXES = {
    "Kernel": f"boot a mainline Linux kernel >= {'.'.join(map(str, MIN_KERNEL))}",
    "Kernel config": f"use a kernel built with {ROCKET_OPTION}=m",
    "Driver": "load the driver with `sudo modprobe rocket`",
    "Device": f"give this user read and write access to {ACCEL_NODE}",
}


def npu_unavailable(check: Check) -> BackendError:
    """The BackendError saying, in the API's words, why the failed readiness ``check`` keeps the
    NPU out; its data names the check (``check``: "SoC", "Driver"...), as the doctor shows it."""
    data = {**(check.data or {}), "check": check.name}
    reason = check.reason or Reason.NPU_NOT_READY
    if reason in UNAVAILABLE:
        fact, fix = UNAVAILABLE[reason]
        return BackendError(fact.format(looked=", ".join(TEFLON_PATHS), **data), fix, reason, **data)
    return BackendError(f"NPU not available: {check.found}", NOT_READY_FIXES.get(check.name),
                        reason, **data)


def require_delegate_library(library: str) -> None:
    """Raise BackendError unless ``library`` loads and exports the external-delegate entry points."""
    loadable = check_loadable(Path(library))
    if not loadable.loadable:
        raise BackendError(f"Cannot load the delegate library {library} ({loadable.error})",
                           "pass Mesa's libteflon.so", Reason.DELEGATE_NOT_LOADABLE, library=library)
    if not loadable.has_entry_points:
        raise BackendError(f"{library} is not a TFLite external delegate ({loadable.error})",
                           "pass Mesa's libteflon.so", Reason.NOT_A_DELEGATE, library=library)


def load_external_delegate(runtime: Runtime, library: str, debug: bool = False) -> Any:
    """Load a TFLite external delegate, or raise BackendError saying why it failed."""
    # Checked first: the runtime's half-built Delegate object raises again from __del__ otherwise.
    require_delegate_library(library)
    message = ""
    with capture_native_stderr(enabled=not debug) as native:
        try:
            return runtime.load_delegate(library)
        except ValueError as exc:
            message = str(exc)
        # Leaving the except block frees the failed Delegate; its destructor calls the library's
        # destroy function, whose output is still captured here.
    # The runtime says "Failed to load delegate from X" then what the delegate reported; Teflon
    # itself prints "Couldn't open kernel device" on fd 2, which we captured.
    said = [line for line in message.splitlines()[1:] if line.strip()] + native.lines()
    detail = f" (it said: {'; '.join(said)})" if said else ""
    raise BackendError(f"NPU not available: the delegate {library} returned no delegate{detail}",
                       reason=Reason.NO_DELEGATE, library=library, said=said)
