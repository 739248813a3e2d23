"""Is this board ready for the NPU? One judgement for ``doctor`` and for ``auto``'s plan.

The checks read the board through a :class:`~bredos_npu.system.root.SystemRoot`, in the order a
user fixes them: SoC, kernel, kernel config, driver, device node, Teflon library. ``doctor``
shows them all (and adds a delegate trial and the Python side); the backend planner falls back
to the CPU on the first one that fails (:attr:`Readiness.first_failure`), so both say the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from bredos_npu.errors import Reason
from bredos_npu.system import kernel, soc
from bredos_npu.system.device import ACCEL_NODE, inspect_node
from bredos_npu.system.library import TEFLON_PATHS, LibraryChoice, check_loadable, find_teflon
from bredos_npu.system.root import SystemRoot

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
MESA_FIX = "sudo pacman -Syu mesa"
MODPROBE_FIX = "sudo modprobe rocket"


class Check(NamedTuple):
    """One check: name, status (ok/warn/fail/skip), what was found, the fix when not ok.

    ``npu`` marks the checks that must pass for the NPU to be usable. ``reason`` says, for a
    check that is not ok, what kind of problem it is (the API's word), with ``data`` about it
    (None: nothing to add).
    """

    name: str
    status: str
    found: str
    fix: str = ""
    npu: bool = True
    reason: Reason | None = None
    data: Mapping[str, Any] | None = None

    @property
    def passed(self) -> bool:
        """True when the NPU can do with this check as it is (ok, or only a warning)."""
        return self.status in (OK, WARN)

    def as_dict(self) -> dict[str, Any]:
        """The check for JSON: name, status, found, fix, npu and the reason's value (or None)."""
        return {"name": self.name, "status": self.status, "found": self.found, "fix": self.fix,
                "npu": self.npu, "reason": self.reason.value if self.reason else None}


def first_failure(checks: Iterable[Check]) -> Check | None:
    """The first check that keeps the NPU out (one the NPU needs that did not pass), or None."""
    return next((c for c in checks if c.npu and not c.passed), None)


def check_soc(root: SystemRoot) -> Check:
    """The device tree names an RK3588 or RK3588S."""
    compatible = soc.read_compatible(root)
    variant = soc.rk3588_variant(compatible)
    board = soc.read_model_name(root)
    if variant:
        found = f"Rockchip {variant.upper()}" + (f" ({board})" if board else "")
        return Check("SoC", OK, found)
    fix = "use an RK3588/RK3588S board (Rock 5B, Orange Pi 5, ...); the CPU backend works anywhere"
    this = f"no device tree; this is {os.uname().machine}" if not compatible else compatible[-1]
    return Check("SoC", FAIL, f"not an RK3588 board ({this})", fix, reason=Reason.NOT_RK3588)


def check_kernel(release: str | None) -> Check:
    """The kernel is at least :data:`~bredos_npu.system.kernel.MIN_KERNEL` (it has rocket)."""
    need = ".".join(map(str, kernel.MIN_KERNEL))
    version = kernel.parse_version(release or "")
    if version is None:
        return Check("Kernel", FAIL, "kernel release unreadable (/proc/sys/kernel/osrelease)",
                     f"boot a mainline Linux kernel >= {need}", reason=Reason.NPU_NOT_READY)
    if version < kernel.MIN_KERNEL:
        return Check("Kernel", FAIL, f"Linux {release} is older than {need} (no rocket driver)",
                     f"boot a mainline Linux kernel >= {need} (vendor kernels use RKNN instead)",
                     reason=Reason.NPU_NOT_READY)
    return Check("Kernel", OK, f"Linux {release}")


def check_config(root: SystemRoot, release: str | None) -> Check:
    """The kernel was built with the rocket driver (a warning when no config can be read)."""
    config = kernel.read_config(root, release)
    option = kernel.ROCKET_OPTION
    if config is None:
        places = ", ".join(kernel.config_locations(release))
        return Check("Kernel config", WARN, f"no kernel config found ({places})",
                     "sudo modprobe configs")
    value = kernel.config_value(config.text, option)
    if value in ("y", "m"):
        return Check("Kernel config", OK, f"{option}={value} ({config.source})")
    return Check("Kernel config", FAIL, f"{option} is not set in {config.source}",
                 f"install a kernel built with {option}=m", reason=Reason.NPU_NOT_READY)


def check_driver(root: SystemRoot) -> Check:
    """The rocket module is loaded (or built in)."""
    state = kernel.module_state(root, kernel.ROCKET_MODULE)
    if state:
        return Check("Driver", OK, f"rocket module {state}")
    return Check("Driver", FAIL, "rocket module not loaded", MODPROBE_FIX, reason=Reason.NPU_NOT_READY)


def check_device(root: SystemRoot) -> Check:
    """The NPU's device node exists, is a character device and this user may read and write it."""
    node = inspect_node(root, ACCEL_NODE)
    if not node.exists:
        return Check("Device", FAIL, f"{ACCEL_NODE} does not exist", MODPROBE_FIX,
                     reason=Reason.NO_DEVICE_NODE, data={"device": ACCEL_NODE})
    if not node.is_char_device:
        return Check("Device", FAIL, f"{ACCEL_NODE} is not a character device ({node.listing})",
                     f"sudo rm {ACCEL_NODE} && {MODPROBE_FIX}", reason=Reason.NPU_NOT_READY,
                     data={"device": ACCEL_NODE})
    if not node.readable_writable:
        fix = (f"sudo usermod -aG {node.group} $USER (then log in again)" if node.gid != 0 else
               'add a udev rule: SUBSYSTEM=="accel", KERNEL=="accel*", GROUP="render", MODE="0660"')
        return Check("Device", FAIL, f"{ACCEL_NODE} is not readable and writable by this user "
                     f"({node.listing})", fix, reason=Reason.NPU_NOT_READY,
                     data={"device": ACCEL_NODE, "group": node.group})
    return Check("Device", OK, f"{ACCEL_NODE} ({node.listing})")


def check_library(choice: LibraryChoice) -> Check:
    """The delegate library exists, loads and exports the external-delegate entry points.

    Nothing is created here: creating a delegate opens the NPU (the doctor tries it in a child
    process; ``load`` does it for the model at hand).
    """
    about = {"library": choice.path, "origin": choice.origin}
    if choice.path is None or not choice.path.is_file():
        where = choice.path if choice.origin != "search" else ", ".join(TEFLON_PATHS)
        missing = Reason.NO_TEFLON if choice.origin == "search" else Reason.DELEGATE_MISSING
        return Check("Teflon", FAIL, f"libteflon.so not found ({where})", MESA_FIX, reason=missing,
                     data={**about, "searched": choice.searched})
    result = check_loadable(choice.path)
    if not result.loadable:
        return Check("Teflon", FAIL, f"{choice.path} cannot be loaded: {result.error}", MESA_FIX,
                     reason=Reason.DELEGATE_NOT_LOADABLE, data={**about, "error": result.error})
    if not result.has_entry_points:
        fix = MESA_FIX if choice.origin == "search" else f"point {choice.origin} at Mesa's libteflon.so"
        return Check("Teflon", FAIL, f"{choice.path} is not a TFLite delegate ({result.error})", fix,
                     reason=Reason.NOT_A_DELEGATE, data={**about, "error": result.error})
    return Check("Teflon", OK, f"{choice.path}")


class Readiness(NamedTuple):
    """The board's checks in order (SoC, Kernel, Kernel config, Driver, Device, Teflon) and the
    delegate library they found.

    A library named by the caller (``delegate=``, ``$BREDOS_NPU_DELEGATE``) is trusted to judge
    the board itself, as a delegate does: the board checks are then shown with ``npu=False``.
    """

    checks: tuple[Check, ...]
    library: LibraryChoice

    @property
    def first_failure(self) -> Check | None:
        """The first check that keeps the NPU out, or None when the NPU may be tried."""
        return first_failure(self.checks)

    @property
    def ready(self) -> bool:
        """True when every deciding check passed (a delegate may still refuse a model)."""
        return self.first_failure is None

    @property
    def board_ready(self) -> bool:
        """True when every deciding check but the library's passed: a delegate may be created."""
        return all(c.passed for c in self.checks[:-1] if c.npu)


# The names of check_config, check_driver and check_device, in that order.
ROCKET_CHECKS = ("Kernel config", "Driver", "Device")


def board_checks(root: SystemRoot) -> list[Check]:
    """SoC, Kernel, Kernel config, Driver and Device; the rocket checks are skipped where they
    would mislead (not an RK3588, or a kernel without rocket)."""
    release = kernel.read_release(root)
    board, kernel_check = check_soc(root), check_kernel(release)
    # Skipped checks are not run: the config check decompresses /proc/config.gz on every load.
    if not board.passed:
        # The rocket driver exists only for RK3588: its fixes would mislead on other machines.
        return [board, kernel_check, *(Check(name, SKIP, "skipped: not an RK3588 board")
                                       for name in ROCKET_CHECKS)]
    config = check_config(root, release)
    if not kernel_check.passed:
        # `modprobe rocket` cannot work on a kernel that has no rocket driver.
        return [board, kernel_check, config, *(Check(name, SKIP, "skipped: needs a kernel >= 6.18 first")
                                               for name in ROCKET_CHECKS[1:])]
    return [board, kernel_check, config, check_driver(root), check_device(root)]


def npu_readiness(root: SystemRoot, delegate: str | None = None) -> Readiness:
    """Judge, without creating a delegate, whether the NPU can be used at ``root``.

    delegate: the library the caller named (default: $BREDOS_NPU_DELEGATE, then Teflon's usual
    places); a named library makes the board checks advisory (see :class:`Readiness`).
    """
    choice = find_teflon(root, delegate)
    board = board_checks(root)
    if choice.origin != "search":
        board = [Check(c.name, c.status, c.found, c.fix, False, c.reason, c.data) for c in board]
    return Readiness((*board, check_library(choice)), choice)
