"""What a report says about the board: hardware, kernel, NPU driver, Mesa, Python stack.

Everything is read through :class:`~bredos_npu.system.root.SystemRoot` (a fake tree in tests);
package managers are asked with a deadline and only on the real root.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import re
import shutil
import stat
import subprocess
from typing import Any

from bredos_npu.runtime.litert import describe_runtime
from bredos_npu.system import kernel, soc
from bredos_npu.system.cpu import cpu_speeds, list_cpus, read_int
from bredos_npu.system.device import ACCEL_NODE, inspect_node
from bredos_npu.system.library import find_teflon
from bredos_npu.system.root import SystemRoot

PACKAGE_QUERY_SECONDS = 5.0
# Rockchip's own NPU stack: the vendor kernel's rknpu driver and its traces.
VENDOR_NPU_PATHS = ("/sys/kernel/debug/rknpu", "/dev/rknpu", "/sys/module/rknpu", "/proc/rknpu")
VENDOR_RELEASE = re.compile(r"-(rockchip|rkr\d*|rk3588|legacy)\b", re.IGNORECASE)
VENDOR_NOTE = (
    "This is Rockchip's vendor kernel (rknpu driver): the open rocket driver and Mesa's Teflon do "
    "not run on it, and its NPU stack is RKNN (librknnrt). For the mainline path install a mainline "
    "kernel >= 6.18 with CONFIG_DRM_ACCEL_ROCKET (on BredOS: a mainline `linux` package instead of "
    "`linux-rockchip-rkr3`) and Mesa >= 25.3, then run this report again."
)


def system_facts(root: SystemRoot, delegate: str | None = None) -> dict[str, Any]:
    """The board, kernel, driver, device node, Teflon library, Python stack, CPUs and memory."""
    release = kernel.read_release(root)
    return {
        "soc": soc.rk3588_variant(soc.read_compatible(root)),
        "board": soc.read_model_name(root),
        "architecture": platform.machine(),
        "kernel": kernel_facts(root, release),
        "rocket": {"module": kernel.module_state(root, kernel.ROCKET_MODULE),
                   "device": device_facts(root)},
        "teflon": teflon_facts(root, delegate),
        "python": platform.python_version(),
        "runtime": _runtime(),
        "numpy": _version("numpy"),
        "cpu": cpu_facts(root),
        "memory_mb": memory_mb(root),
    }


def kernel_facts(root: SystemRoot, release: str | None) -> dict[str, Any]:
    config = kernel.read_config(root, release)
    vendor = vendor_kernel(root, release)
    return {
        "release": release,
        "rocket_config": kernel.config_value(config.text, kernel.ROCKET_OPTION) if config else None,
        "config_source": config.source if config else None,
        "vendor": vendor is not None,
        "vendor_evidence": vendor,
        "vendor_note": VENDOR_NOTE if vendor else None,
    }


def vendor_kernel(root: SystemRoot, release: str | None) -> str | None:
    """Why this looks like Rockchip's vendor kernel (rknpu), or None."""
    for place in VENDOR_NPU_PATHS:
        if root.path(place).exists():
            return f"{place} exists"
    if kernel.module_state(root, "rknpu"):
        return "the rknpu module is loaded"
    if release and VENDOR_RELEASE.search(release):
        return f"kernel release {release}"
    return None


def device_facts(root: SystemRoot) -> dict[str, Any]:
    node = inspect_node(root, ACCEL_NODE)
    if not node.exists:
        return {"path": ACCEL_NODE, "exists": False}
    return {"path": ACCEL_NODE, "exists": True, "char_device": node.is_char_device,
            "owner": node.owner, "group": node.group, "mode": f"{stat.S_IMODE(node.mode):04o}",
            "accessible": node.readable_writable}


def teflon_facts(root: SystemRoot, delegate: str | None) -> dict[str, Any]:
    """The delegate library's identity (size, sha256) and Mesa's package version when known."""
    choice = find_teflon(root, delegate)
    facts: dict[str, Any] = {"path": None, "origin": choice.origin, "package": None}
    if choice.path is None or not choice.path.is_file():
        return facts
    data = choice.path.read_bytes()
    shown = "/" + str(choice.path.relative_to(root.base)) if choice.path.is_relative_to(root.base) \
        else str(choice.path)
    facts.update(path=shown, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    if root.is_real:
        facts["package"] = mesa_package(shown)
    return facts


def mesa_package(library: str) -> str | None:
    """``"mesa 1:25.3.1-1"`` from pacman or dpkg (whichever owns the library), else None."""
    queries = (
        ("pacman", ["pacman", "-Qo", library]),
        ("dpkg-query", ["dpkg-query", "-S", library]),
        ("rpm", ["rpm", "-qf", library]),
    )
    for tool, command in queries:
        if shutil.which(tool) is None:
            continue
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PACKAGE_QUERY_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip():
            return _package_version(tool, done.stdout.strip())
    return None


def _package_version(tool: str, answer: str) -> str | None:
    if tool == "pacman":  # "/usr/lib/libteflon.so is owned by mesa 1:25.3.1-1"
        match = re.search(r"is owned by (\S+) (\S+)", answer)
        return f"{match.group(1)} {match.group(2)}" if match else answer
    if tool == "dpkg-query":  # "mesa-teflon-delegate:arm64: /usr/lib/teflon/libteflon.so"
        package = answer.split(":", 1)[0]
        try:
            version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                                     text=True, timeout=PACKAGE_QUERY_SECONDS).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            version = ""
        return f"{package} {version}".strip()
    return answer.splitlines()[0]


def cpu_facts(root: SystemRoot) -> dict[str, Any]:
    """CPUs grouped into clusters of equal speed, with each cluster's governor and max frequency."""
    speeds, source = cpu_speeds(root)
    clusters: dict[int, list[int]] = {}
    for cpu, speed in speeds.items():
        clusters.setdefault(speed, []).append(cpu)
    described = []
    for speed, cpus in sorted(clusters.items()):
        first = f"/sys/devices/system/cpu/cpu{cpus[0]}/cpufreq"
        described.append({"cpus": sorted(cpus), "speed": speed,
                          "governor": _strip(root.read_text(f"{first}/scaling_governor")),
                          "max_khz": read_int(root, f"{first}/cpuinfo_max_freq")})
    return {"count": len(list_cpus(root)), "speed_source": source or None, "clusters": described}


def memory_mb(root: SystemRoot) -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+) kB", root.read_text("/proc/meminfo") or "", re.MULTILINE)
    return int(match.group(1)) // 1024 if match else None


def _runtime() -> dict[str, str] | None:
    runtime = describe_runtime()
    return {"name": runtime.name, "version": runtime.version} if runtime else None


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _strip(text: str | None) -> str | None:
    return text.strip() if text else None
