"""Joining an existing Ray cluster as a driver, with a deadline instead of Ray's long retries."""

from __future__ import annotations

import socket
import time
from typing import Any

from bredos_npu.cluster import import_ray
from bredos_npu.errors import BackendError, Reason

CONNECT_SECONDS = 5.0
DEFAULT_PORT = 6379


def reachable(address: str, timeout: float = CONNECT_SECONDS) -> None:
    """Raise BackendError unless a TCP connection to ``HOST:PORT`` opens within ``timeout``.

    ``auto`` (the cluster this machine is part of) and ``ray://`` client addresses are left to Ray.
    """
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        number = int(port) if host else DEFAULT_PORT
    except ValueError:
        raise BackendError(f"The cluster address {address!r} is not HOST:PORT, ray://HOST:PORT or auto",
                           reason=Reason.CLUSTER_UNREACHABLE, address=address) from None
    try:
        socket.create_connection((host or address, number), timeout=timeout).close()
    except OSError as why:
        raise BackendError(f"Cannot reach the Ray cluster at {address} within {timeout:.0f} s "
                           f"({why.strerror or why})", "check the address and that the head node is running",
                           reason=Reason.CLUSTER_UNREACHABLE, address=address) from None


def wait_until_reachable(address: str, seconds: float) -> None:
    """Wait for a head node that is starting (e.g. `cluster start --block` in another process)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            reachable(address, timeout=1.0)
            return
        except BackendError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def connect(address: str) -> Any:
    """``ray`` connected to the cluster at ``address`` (reusing an existing connection)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    reachable(address)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False,
                 configure_logging=True, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as why:
        first = str(why).strip().splitlines()[0] if str(why).strip() else type(why).__name__
        raise BackendError(f"Cannot join the Ray cluster at {address} ({first})",
                           "check the address and that `bredos-npu cluster start` ran on the head node",
                           reason=Reason.CLUSTER_UNREACHABLE, address=address) from None
    return ray
