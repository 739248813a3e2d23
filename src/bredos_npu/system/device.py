"""The NPU's device node (``/dev/accel/accel0``) and whether this user may open it."""

from __future__ import annotations

import os
import stat
from typing import NamedTuple

from bredos_npu.system.root import SystemRoot

ACCEL_NODE = "/dev/accel/accel0"


class Identity(NamedTuple):
    """Effective user and all groups of the process, as the kernel checks them."""

    uid: int
    gids: frozenset[int]


class DeviceNode(NamedTuple):
    """What ``ls -l`` shows of a node, plus what this identity may do with it."""

    path: str
    exists: bool
    is_char_device: bool = False
    mode: int = 0
    owner: str = ""
    group: str = ""
    gid: int = -1
    readable_writable: bool = False

    @property
    def listing(self) -> str:
        """Like ``ls -l``: ``crw-rw---- root render``."""
        return f"{stat.filemode(self.mode)} {self.owner} {self.group}"


def read_identity(root: SystemRoot) -> Identity:
    """The process identity from ``/proc/self/status`` (a fake tree can set it)."""
    fields: dict[str, list[str]] = {}
    for line in (root.read_text("/proc/self/status") or "").splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    if "Uid" not in fields:
        return Identity(os.geteuid(), frozenset([os.getegid(), *os.getgroups()]))
    uid = int(fields["Uid"][1])
    gids = {int(fields.get("Gid", ["0", "0"])[1])} | {int(g) for g in fields.get("Groups", [])}
    return Identity(uid, frozenset(gids))


def _names(root: SystemRoot, table: str) -> dict[int, str]:
    names = {}
    for line in (root.read_text(table) or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            names.setdefault(int(parts[2]), parts[0])
    return names


def may_read_write(st: os.stat_result, who: Identity) -> bool:
    """The kernel's rw permission check from the mode bits (root may always)."""
    if who.uid == 0:
        return True
    if st.st_uid == who.uid:
        need = stat.S_IRUSR | stat.S_IWUSR
    elif st.st_gid in who.gids:
        need = stat.S_IRGRP | stat.S_IWGRP
    else:
        need = stat.S_IROTH | stat.S_IWOTH
    return st.st_mode & need == need


def inspect_node(root: SystemRoot, system_path: str = ACCEL_NODE) -> DeviceNode:
    """Stat the node (following links) and judge access for the process identity."""
    st = root.stat(system_path)
    if st is None:
        return DeviceNode(system_path, exists=False)
    users, groups = _names(root, "/etc/passwd"), _names(root, "/etc/group")
    return DeviceNode(
        path=system_path,
        exists=True,
        is_char_device=stat.S_ISCHR(st.st_mode),
        mode=st.st_mode,
        owner=users.get(st.st_uid, str(st.st_uid)),
        group=groups.get(st.st_gid, str(st.st_gid)),
        gid=st.st_gid,
        readable_writable=may_read_write(st, read_identity(root)),
    )


def accel_nodes(root: SystemRoot) -> list[str]:
    """Every ``/dev/accel/accel*`` node present, sorted."""
    folder = root.path("/dev/accel")
    if not folder.is_dir():
        return []
    return sorted(f"/dev/accel/{p.name}" for p in folder.iterdir() if p.name.startswith("accel"))
