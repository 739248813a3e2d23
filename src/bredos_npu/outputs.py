"""Writing result files safely: never over a user's file unless asked, never half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from bredos_npu.errors import BredosNpuError


class OutputError(BredosNpuError):
    """An output file cannot or may not be written."""


def check_output(path: str | os.PathLike[str], force: bool = False) -> Path:
    """The path, after checking its folder exists and that it is new (or ``force`` is set)."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{target} is a folder: give a file name for the output.")
    if target.exists() and not force:
        raise OutputError(f"{target} already exists: pass --force to overwrite it, or choose "
                          "another name.")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"Cannot write {target}: the folder {folder} does not exist.")
    return target


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and rename it into place only on success.

    A failure or an interruption leaves ``path`` as it was (absent or the old file).
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as out:
            yield out
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
