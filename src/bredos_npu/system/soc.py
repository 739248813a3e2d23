"""Which SoC this board has, from the device tree."""

from __future__ import annotations

from bredos_npu.system.root import SystemRoot

RK3588_COMPATIBLES = ("rockchip,rk3588", "rockchip,rk3588s")


def read_compatible(root: SystemRoot) -> list[str]:
    """The device tree's ``compatible`` strings, board first and SoC last; [] when absent."""
    raw = root.read_bytes("/proc/device-tree/compatible")
    if raw is None:
        raw = root.read_bytes("/sys/firmware/devicetree/base/compatible")
    if not raw:
        return []
    return [item.decode(errors="replace") for item in raw.split(b"\0") if item]


def rk3588_variant(compatible: list[str]) -> str | None:
    """``"rk3588"`` or ``"rk3588s"`` when the board is an RK3588 family SoC, else None."""
    for entry in compatible:
        if entry in RK3588_COMPATIBLES:
            return entry.split(",", 1)[1]
    return None


def read_model_name(root: SystemRoot) -> str | None:
    """The board's name (e.g. "Radxa ROCK 5B"), when the device tree gives one."""
    raw = root.read_bytes("/proc/device-tree/model")
    return raw.rstrip(b"\0").decode(errors="replace") if raw else None
