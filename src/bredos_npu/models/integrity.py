"""Digests that prove a downloaded file is the one the manifest pins."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

CHUNK = 256 * 1024

Progress = Callable[[int, "int | None"], None]  # (bytes just received, total or None)


class Integrity(NamedTuple):
    """Expected digest: ``kind`` is "sha256" or "git_blob" (SHA-1 of b"blob <size>\\0" + data)."""

    kind: str
    digest: str


def file_digest(path: Path, integrity: Integrity) -> str:
    import hashlib  # on demand: loading OpenSSL costs start-up time that only downloads need

    size = path.stat().st_size
    digest = hashlib.sha256() if integrity.kind == "sha256" else hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
