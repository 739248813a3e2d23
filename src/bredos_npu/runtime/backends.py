"""Choosing and preparing a backend: ``npu`` (Mesa Teflon delegate), ``cpu`` (XNNPACK), ``auto``."""

from __future__ import annotations

from typing import Any, NamedTuple

from bredos_npu.errors import BackendError
from bredos_npu.runtime.cstderr import capture_native_stderr
from bredos_npu.runtime.litert import Runtime
from bredos_npu.system.device import ACCEL_NODE, accel_nodes
from bredos_npu.system.library import TEFLON_PATHS, LibraryChoice, find_teflon
from bredos_npu.system.root import SystemRoot

BACKENDS = ("auto", "npu", "cpu")
DOCTOR_HINT = "run `bredos-npu doctor` for details"
FLOAT_MODEL_REASON = (
    "the model is float (not quantized): Teflon is meant for quantized uint8 models and its "
    "rocket driver does not reject float convolutions, so running them on the NPU is unsafe"
)


class NpuPlan(NamedTuple):
    """The delegate library to load, or why the NPU cannot be used (``reason``)."""

    library: LibraryChoice
    reason: str | None


def plan_npu(root: SystemRoot, delegate: str | None = None) -> NpuPlan:
    """Check, without loading anything, whether the NPU backend can be tried.

    A library named by ``--delegate`` or ``$BREDOS_NPU_DELEGATE`` is trusted to find its own
    device (a delegate is the judge of that); the searched Teflon library needs a device node.
    """
    choice = find_teflon(root, delegate)
    if choice.origin != "search":
        if choice.path is None or not choice.path.is_file():
            missing = f"the delegate library {choice.path} (from {choice.origin}) does not exist"
            return NpuPlan(choice, missing)
        return NpuPlan(choice, None)
    if not accel_nodes(root):
        return NpuPlan(choice, f"no NPU device node {ACCEL_NODE} (load the driver with "
                               f"`sudo modprobe rocket`; {DOCTOR_HINT})")
    if choice.path is None:
        return NpuPlan(
            choice,
            f"Mesa's Teflon delegate was not found (looked in {', '.join(TEFLON_PATHS)}): install "
            "it with `sudo pacman -Syu mesa` or pass --delegate PATH",
        )
    return NpuPlan(choice, None)


def load_external_delegate(runtime: Runtime, library: str, debug: bool = False) -> Any:
    """Load a TFLite external delegate, or raise BackendError saying why it failed."""
    failure: Exception | None = None
    with capture_native_stderr(enabled=not debug) as native:
        try:
            return runtime.load_delegate(library)
        except (OSError, AttributeError, ValueError) as exc:
            failure = exc
    if isinstance(failure, OSError):
        raise BackendError(f"Cannot load the delegate library {library}: {failure}.")
    if isinstance(failure, AttributeError):
        raise BackendError(
            f"{library} is not a TFLite external delegate (it has no "
            "tflite_plugin_create_delegate): pass Mesa's libteflon.so."
        )
    # The runtime says "Failed to load delegate from X" then what the delegate reported; Teflon
    # itself prints "Couldn't open kernel device" on fd 2, which we captured.
    said = [line for line in str(failure).splitlines()[1:] if line.strip()] + native.lines()
    detail = f" (it said: {'; '.join(said)})" if said else ""
    raise BackendError(f"The delegate {library} returned no delegate{detail}: {DOCTOR_HINT}.")
