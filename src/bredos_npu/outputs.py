"""Writing result files safely: never over a user's file unless asked, never half-written."""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import IO

from bredos_npu.errors import OutputError, Reason

STDOUT = "-"
# Failures of writing itself (a full disk, a read-only file system), not of the caller's work.
WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO,
                          errno.EACCES, errno.EPERM, errno.EXDEV})


def check_output(path: str | os.PathLike[str], force: bool = False) -> Path:
    """The path, after checking its folder exists and that it is new (or ``force`` is set).

    ``-`` stands for standard output and always passes.
    """
    target = Path(path)
    if str(path) == STDOUT:
        return target
    if target.is_dir():
        raise OutputError(f"{target} is a folder", "give a file name for the output",
                          Reason.OUTPUT_IS_FOLDER, path=target)
    if target.exists() and not force:
        raise OutputError(f"{target} already exists", "pass force=True to overwrite it, or choose "
                          "another name", Reason.OUTPUT_EXISTS, path=target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"Cannot write {target}: the folder {folder} does not exist.",
                          reason=Reason.OUTPUT_FOLDER_MISSING, path=target, folder=folder)
    return target


@cache
def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _final_mode(target: Path) -> int:
    """The mode a plainly created file would get, or the mode of the file being replaced."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and rename it into place only on success.

    A failure or an interruption leaves ``path`` as it was (absent or the old file). ``-``
    writes to standard output instead.
    """
    text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    if str(path) == STDOUT:
        yield sys.stdout.buffer if "b" in mode else sys.stdout
        return
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as error:
        raise OutputError(f"Cannot write {target}: {error.strerror or error}.",
                          reason=Reason.OUTPUT_WRITE_FAILED, path=target) from None
    try:
        with os.fdopen(handle, mode, **text) as out:
            yield out
        os.chmod(temporary, _final_mode(target))  # mkstemp makes 0600 files
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        if error.errno not in WRITE_ERRORS:
            raise
        raise OutputError(f"Cannot write {target}: {error.strerror or error}.",
                          reason=Reason.OUTPUT_WRITE_FAILED, path=target) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
