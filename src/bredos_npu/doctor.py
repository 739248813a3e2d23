"""The doctor: every check users run by hand before the NPU works, with the fix for each."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bredos_npu.errors import Reason, UsageError
from bredos_npu.runtime.litert import INSTALL_HINT, describe_runtime
from bredos_npu.system import kernel, soc
from bredos_npu.system.device import ACCEL_NODE, inspect_node
from bredos_npu.system.library import TEFLON_PATHS, check_loadable, find_teflon
from bredos_npu.system.root import SystemRoot

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
MESA_FIX = "sudo pacman -Syu mesa"
MODPROBE_FIX = "sudo modprobe rocket"


@dataclass(frozen=True)
class Check:
    """One check: name, status (ok/warn/fail/skip), what was found, the fix when not ok.

    ``npu`` marks the checks that must pass for the NPU to be usable.
    """

    name: str
    status: str
    found: str
    fix: str = ""
    npu: bool = True


@dataclass(frozen=True)
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def npu_ready(self) -> bool:
        return all(c.status in (OK, WARN) for c in self.checks if c.npu)

    @property
    def verdict(self) -> str:
        if self.npu_ready:
            return "NPU ready"
        first = next(c for c in self.checks if c.npu and c.status not in (OK, WARN))
        return f"CPU only: {first.found}"

    def as_dict(self) -> dict[str, object]:
        return {"npu_ready": self.npu_ready, "verdict": self.verdict,
                "checks": [asdict(c) for c in self.checks]}


def check_soc(root: SystemRoot) -> Check:
    compatible = soc.read_compatible(root)
    variant = soc.rk3588_variant(compatible)
    board = soc.read_model_name(root)
    if variant:
        found = f"Rockchip {variant.upper()}" + (f" ({board})" if board else "")
        return Check("SoC", OK, found)
    fix = "use an RK3588/RK3588S board (Rock 5B, Orange Pi 5, ...); the CPU backend works anywhere"
    if not compatible:
        return Check("SoC", FAIL, f"not an RK3588 board (no device tree; this is {platform.machine()})", fix)
    return Check("SoC", FAIL, f"not an RK3588 board ({compatible[-1]})", fix)


def check_kernel(root: SystemRoot, release: str | None) -> Check:
    need = ".".join(map(str, kernel.MIN_KERNEL))
    version = kernel.parse_version(release or "")
    if version is None:
        return Check("Kernel", FAIL, "kernel release unreadable (/proc/sys/kernel/osrelease)",
                     f"boot a mainline Linux kernel >= {need}")
    if version < kernel.MIN_KERNEL:
        return Check("Kernel", FAIL, f"Linux {release} is older than {need} (no rocket driver)",
                     f"boot a mainline Linux kernel >= {need} (vendor kernels use RKNN instead)")
    return Check("Kernel", OK, f"Linux {release}")


def check_config(root: SystemRoot, release: str | None) -> Check:
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
                 f"install a kernel built with {option}=m")


def check_driver(root: SystemRoot) -> Check:
    state = kernel.module_state(root, kernel.ROCKET_MODULE)
    if state:
        return Check("Driver", OK, f"rocket module {state}")
    return Check("Driver", FAIL, "rocket module not loaded", MODPROBE_FIX)


def check_device(root: SystemRoot) -> Check:
    node = inspect_node(root, ACCEL_NODE)
    if not node.exists:
        return Check("Device", FAIL, f"{ACCEL_NODE} does not exist", MODPROBE_FIX)
    if not node.is_char_device:
        return Check("Device", FAIL, f"{ACCEL_NODE} is not a character device ({node.listing})",
                     f"sudo rm {ACCEL_NODE} && {MODPROBE_FIX}")
    if not node.readable_writable:
        fix = (f"sudo usermod -aG {node.group} $USER (then log in again)" if node.gid != 0 else
               'add a udev rule: SUBSYSTEM=="accel", KERNEL=="accel*", GROUP="render", MODE="0660"')
        return Check("Device", FAIL, f"{ACCEL_NODE} is not readable and writable by this user "
                     f"({node.listing})", fix)
    return Check("Device", OK, f"{ACCEL_NODE} ({node.listing})")


def check_teflon(root: SystemRoot, delegate: str | None = None, try_delegate: bool = True) -> Check:
    """Found, loadable, exports the entry points and (when ``try_delegate``) runs a model.

    The delegate is tried in a child process (see :mod:`bredos_npu.runtime.probe`): Teflon opens
    the NPU device when it creates a delegate, and a crash there or on the bundled model becomes
    this check's finding instead of ending the doctor.
    """
    choice = find_teflon(root, delegate)
    if choice.path is None or not choice.path.is_file():
        where = choice.path if choice.origin != "search" else ", ".join(TEFLON_PATHS)
        return Check("Teflon", FAIL, f"libteflon.so not found ({where})", MESA_FIX)
    result = check_loadable(choice.path)
    if not result.loadable:
        return Check("Teflon", FAIL, f"{choice.path} cannot be loaded: {result.error}", MESA_FIX)
    if not result.has_entry_points:
        fix = MESA_FIX if choice.origin == "search" else f"point {choice.origin} at Mesa's libteflon.so"
        return Check("Teflon", FAIL, f"{choice.path} is not a TFLite delegate ({result.error})", fix)
    if not try_delegate:
        return Check("Teflon", OK, f"{choice.path}")
    return try_teflon(choice.path)


def try_teflon(library: Path) -> Check:
    """Create a delegate and run the bundled model with it once, in a child process."""
    from bredos_npu.models import bundled
    from bredos_npu.runtime import probe

    if describe_runtime() is None:
        return Check("Teflon", OK, f"{library} (not tried: no TensorFlow Lite runtime)")
    # Never from the cache: the doctor is where users check again after fixing something.
    verdict = probe.probe_delegate(library, bundled.default_model(), use_cache=False)
    if verdict.ok:
        return Check("Teflon", OK, f"{library} (delegate created, ran a test model)")
    if verdict.outcome == probe.FAILED and verdict.stage == probe.CREATE:
        detail = f" ({'; '.join(verdict.said)})" if verdict.said else ""
        return Check("Teflon", FAIL, f"{library} loads but returns no delegate{detail}",
                     "TEFLON_DEBUG=verbose bredos-npu classify -b npu  (shows why Teflon gives up)")
    return Check("Teflon", FAIL, verdict.reason(library),
                 "update Mesa (sudo pacman -Syu mesa) or report it to Mesa with the output of "
                 "TEFLON_DEBUG=verbose bredos-npu classify -b npu; the CPU backend works meanwhile")


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info[:2] > (3, 14):
        return Check("Python", WARN, f"Python {version} (tested: 3.11-3.14)", npu=False)
    return Check("Python", OK, f"Python {version}", npu=False)


def check_runtime() -> Check:
    runtime = describe_runtime()
    if runtime is None:
        return Check("TFLite runtime", FAIL, "no TensorFlow Lite runtime installed", INSTALL_HINT)
    return Check("TFLite runtime", OK, f"{runtime.name} {runtime.version}")


def check_package(name: str, distribution: str) -> Check:
    try:
        return Check(name, OK, importlib.metadata.version(distribution), npu=False)
    except importlib.metadata.PackageNotFoundError:
        return Check(name, FAIL, "not installed", f"pip install {distribution}", npu=False)


def diagnose(root: str | None = None, delegate: str | None = None) -> Report:
    """Run every check against the system at ``root`` (default: $BREDOS_NPU_ROOT or /)."""
    if root == "":
        raise UsageError("root needs a folder: the one that holds the system to check.",
                         reason=Reason.BAD_VALUE, option="root", value=root)
    system = SystemRoot.from_env(root)
    if not system.base.is_dir():
        problem = "is not a folder" if system.base.exists() else "does not exist"
        raise UsageError(f"The system root {system.base} {problem}", "pass the folder that holds the "
                         "system to check (default: /)", Reason.BAD_VALUE, option="root", value=root)
    release = kernel.read_release(system)
    board = check_soc(system)
    kernel_check = check_kernel(system, release)
    rocket_checks = [check_config(system, release), check_driver(system), check_device(system)]
    if board.status == FAIL:
        # The rocket driver exists only for RK3588: its fixes would mislead on other machines.
        rocket_checks = [Check(c.name, SKIP, "skipped: not an RK3588 board") for c in rocket_checks]
    elif kernel_check.status == FAIL:
        # `modprobe rocket` cannot work on a kernel that has no rocket driver.
        rocket_checks[1:] = [Check(c.name, SKIP, "skipped: needs a kernel >= 6.18 first")
                             for c in rocket_checks[1:]]
    board_ready = all(c.status in (OK, WARN) for c in (board, kernel_check, *rocket_checks))
    return Report([
        board,
        kernel_check,
        *rocket_checks,
        # Creating a delegate opens the NPU: only meaningful once the board side is ready.
        check_teflon(system, delegate, try_delegate=board_ready),
        check_python(),
        check_runtime(),
        check_package("numpy", "numpy"),
        check_package("Pillow", "pillow"),
    ])
