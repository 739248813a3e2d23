"""Kernel release, kernel configuration and loaded modules."""

from __future__ import annotations

import re
from typing import NamedTuple

from bredos_npu.system.root import SystemRoot

ROCKET_OPTION = "CONFIG_DRM_ACCEL_ROCKET"
ROCKET_MODULE = "rocket"
MIN_KERNEL = (6, 18)


def read_release(root: SystemRoot) -> str | None:
    """The running kernel's release string, e.g. ``"6.18.2-1-ARCH"``."""
    text = root.read_text("/proc/sys/kernel/osrelease")
    return text.strip() if text else None


def parse_version(release: str) -> tuple[int, int] | None:
    """(major, minor) from a release string, or None when it has no leading ``N.N``."""
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else None


class KernelConfig(NamedTuple):
    """Where the config was read from and its text."""

    source: str
    text: str


def config_locations(release: str | None) -> list[str]:
    places = ["/proc/config.gz"]
    if release:
        places += [f"/boot/config-{release}", f"/lib/modules/{release}/config"]
    return places


def read_config(root: SystemRoot, release: str | None) -> KernelConfig | None:
    """The kernel config from the first place that has it, or None."""
    for place in config_locations(release):
        raw = root.read_bytes(place)
        if raw is None:
            continue
        if place.endswith(".gz"):
            try:
                import gzip  # only for /proc/config.gz, which few checks read

                raw = gzip.decompress(raw)
            except (OSError, EOFError):
                continue
        return KernelConfig(place, raw.decode(errors="replace"))
    return None


def config_value(config_text: str, option: str) -> str | None:
    """``"y"``, ``"m"`` (or another value) for a set option; None when unset or absent."""
    match = re.search(rf"^{re.escape(option)}=(\S+)", config_text, re.MULTILINE)
    return match.group(1) if match else None


def module_state(root: SystemRoot, module: str) -> str | None:
    """``"loaded"`` (in /proc/modules), ``"built-in"`` (only /sys/module), or None."""
    modules = root.read_text("/proc/modules") or ""
    if any(line.split(" ", 1)[0] == module for line in modules.splitlines()):
        return "loaded"
    if root.path(f"/sys/module/{module}").is_dir():
        return "built-in"
    return None
