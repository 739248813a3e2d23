"""Keeping a report free of what identifies a person or a machine.

Reports are pasted into public issues. Before one is written, every string in it is scrubbed of:
the host name, the user's names, the home folder (shown as ``~``), serial numbers, IPv4/IPv6 and
MAC addresses.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import re
import socket
from pathlib import Path
from typing import Any

from bredos_npu.system.root import SystemRoot

HIDDEN = "<hidden>"
# Names too common to be private, whose removal would only garble the report.
NOT_PRIVATE = frozenset({"root", "nobody", "localhost", "user", "alarm", "admin", "debian", "ubuntu"})
ADDRESSES = (
    re.compile(r"\b(?:[0-9a-f]{2}[:-]){5}[0-9a-f]{2}\b", re.IGNORECASE),  # MAC
    re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"),  # IPv4
    re.compile(r"\b(?:[0-9a-f]{1,4}:){3,7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:)+:(?:[0-9a-f]{1,4})?\b",
               re.IGNORECASE),  # IPv6
)


def private_words(root: SystemRoot) -> list[str]:
    """Host names, user names and serial numbers of this machine (and of the root's tree)."""
    words = {socket.gethostname(), os.environ.get("USER", ""), os.environ.get("LOGNAME", "")}
    for place in ("/etc/hostname", "/proc/sys/kernel/hostname", "/proc/device-tree/serial-number"):
        words.add((root.read_text(place) or "").strip("\0\n "))
    serial = re.search(r"^Serial\s*:\s*(\S+)", root.read_text("/proc/cpuinfo") or "", re.MULTILINE)
    words.add(serial.group(1) if serial else "")
    with contextlib.suppress(KeyError, OSError):  # a uid without a passwd entry (containers)
        words |= {getpass.getuser(), pwd.getpwuid(os.getuid()).pw_name}
    words.add(Path.home().name)
    return sorted((w for w in words if len(w) >= 3 and w.lower() not in NOT_PRIVATE), key=len, reverse=True)


def scrub(value: Any, words: list[str], home: str | None = None) -> Any:
    """``value`` (JSON-like) with private words, home paths and addresses replaced."""
    home = home if home is not None else str(Path.home())
    if isinstance(value, dict):
        return {scrub(k, words, home): scrub(v, words, home) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, words, home) for v in value]
    if not isinstance(value, str):
        return value
    if home not in ("", "/"):
        value = value.replace(home, "~")
    for word in words:
        value = re.sub(re.escape(word), HIDDEN, value, flags=re.IGNORECASE)
    for pattern in ADDRESSES:
        value = pattern.sub(HIDDEN, value)
    return value
