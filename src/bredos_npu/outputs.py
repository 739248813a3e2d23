"""Writing result files safely: never over a user's file unless asked, never half-written.

Rules (see docs/faults.md):
- Only regular files are ever created or replaced; a device, FIFO or socket at the output path is
  refused even with ``--force`` (use ``-`` for standard output instead).
- A symbolic link at the output path is followed: the file it points to is written (atomically,
  in that file's folder) and the link itself stays as it is.
- Results go to a temporary file beside the target and get the target's name only at the end,
  with an atomic no-replace rename: a file that appeared at that name during the run is left
  alone and the results are kept beside it under a numbered name (``out.1.jsonl``).
- When the target's folder vanished or became unwritable during the run, the finished results are
  copied to the current folder (else the temporary folder) instead of being lost.
- The temporary file (``.NAME.XXXX.part``) is locked (``flock``) while it is written: one left by
  a process that was killed (SIGKILL, power loss) is unlocked, and :func:`leftovers` finds it. It
  gets its ``.part`` name only once locked, so an unlocked empty one holds nothing anyone is
  writing (a run killed before its first record): :func:`leftovers` removes it without a word.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import IO

from bredos_npu.errors import OutputError, Reason

STDOUT = "-"
# Failures of writing itself (a full disk, a read-only file system), not of the caller's work.
WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO,
                          errno.EACCES, errno.EPERM, errno.EXDEV})
SPECIAL_FILES = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                 (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


class OutputConflict(OutputError):
    """The output name was taken during the run; the results were kept under ``kept``."""

    def __init__(self, target: Path, kept: Path) -> None:
        super().__init__(f"{shown(target)} was created by someone else during the run and was left as "
                         f"it is; the results were kept in {shown(kept)}", None, Reason.OUTPUT_CONFLICT,
                         path=target, kept=kept)
        self.kept = kept


def printable(text: str) -> str:
    """``text`` as valid UTF-8: bytes of a non-UTF-8 file name (which Python carries as lone
    surrogates) become ``\\xNN`` escapes, so CSV, JSON and terminals never choke on them."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def shown(path: str | os.PathLike[str], limit: int = 160) -> str:
    """A path for a message: printable, and shortened in the middle when very long."""
    text = printable(os.fspath(path))
    return text if len(text) <= limit else f"{text[:40]}...{text[-(limit - 43):]}"


def _kind(mode: int) -> str | None:
    return next((name for test, name in SPECIAL_FILES if test(mode)), None)


def _stat(path: Path, shown_as: Path) -> os.stat_result | None:
    """os.stat, None when nothing is there; other failures (EACCES, ENAMETOOLONG) are OutputErrors."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise OutputError(f"Cannot write {shown(shown_as)}: {error.strerror or error}",
                          reason=Reason.OUTPUT_WRITE_FAILED, path=shown_as) from None
    except ValueError:  # an embedded NUL byte
        raise OutputError(f"Cannot write {shown(shown_as)}: the name contains a NUL byte",
                          reason=Reason.OUTPUT_WRITE_FAILED, path=shown_as) from None


def resolve(path: str | os.PathLike[str]) -> Path:
    """The file that writing ``path`` creates or replaces: symbolic links followed, even dangling."""
    return Path(os.path.realpath(path))


def check_output(path: str | os.PathLike[str], force: bool = False) -> Path:
    """The path, after checking its folder exists and that it is new (or ``force`` is set).

    ``-`` stands for standard output and always passes. A symbolic link is judged by the file it
    points to; devices, FIFOs and sockets are refused whatever ``force`` says.
    """
    target = Path(path)
    if str(path) == STDOUT:
        return target
    real = resolve(target)
    found = _stat(real, target)
    if found is not None:
        if stat.S_ISDIR(found.st_mode):
            raise OutputError(f"{shown(target)} is a folder", "give a file name for the output",
                              Reason.OUTPUT_IS_FOLDER, path=target)
        kind = _kind(found.st_mode)
        if kind:
            raise OutputError(f"{shown(target)} is {kind}, not a regular file, and only regular files are "
                              "written", "use - for standard output", Reason.OUTPUT_NOT_REGULAR,
                              path=target, kind=kind)
        if not force:
            raise OutputError(f"{shown(target)} already exists", "pass force=True to overwrite it, or "
                              "choose another name", Reason.OUTPUT_EXISTS, path=target)
    folder = _stat(real.parent, target)
    if folder is None or not stat.S_ISDIR(folder.st_mode):
        raise OutputError(f"Cannot write {shown(target)}: the folder {shown(target.parent)} does not exist",
                          reason=Reason.OUTPUT_FOLDER_MISSING, path=target, folder=target.parent)
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise OutputError(f"Cannot write {shown(target)}: permission denied in {shown(real.parent)}",
                          reason=Reason.OUTPUT_WRITE_FAILED, path=target)
    return target


@cache
def new_file_mode() -> int:
    """The mode a plainly created file gets: 0o666 less the umask (read once: reading it means
    setting it, for the whole process)."""
    current = os.umask(0o022)
    os.umask(current)
    return 0o666 & ~current


def _final_mode(target: Path) -> int:
    """The mode a plainly created file would get, or the mode of the file being replaced."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return new_file_mode()


def numbered(target: Path, number: int) -> Path:
    """``out.jsonl`` -> ``out.1.jsonl``: where results go when ``target`` is taken."""
    return target.with_name(f"{target.stem}.{number}{target.suffix}")


@cache
def _renameat2() -> object | None:
    import ctypes

    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


RENAME_NOREPLACE = 1
AT_FDCWD = -100


def rename_new(source: Path, target: Path) -> bool:
    """Rename ``source`` to ``target`` unless ``target`` exists, atomically; False when it exists.

    renameat2(RENAME_NOREPLACE) where the kernel and file system have it, else a hard link and an
    unlink (both atomic no-replace), else (file systems without hard links) check and rename.
    """
    function = _renameat2()
    if function is not None:
        import ctypes

        if function(AT_FDCWD, os.fsencode(source), AT_FDCWD, os.fsencode(target), RENAME_NOREPLACE) == 0:
            return True
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            return False
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), str(target))
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        if os.path.lexists(target):
            return False
        os.rename(source, target)
        return True
    os.unlink(source)
    return True


def keep_new(source: Path, wanted: Path) -> Path:
    """Give ``source`` the name ``wanted``, or the first free ``numbered`` name beside it."""
    for number in range(0, 10_000):
        candidate = numbered(wanted, number) if number else wanted
        if rename_new(source, candidate):
            return candidate
    raise OutputError(f"Cannot find a free name beside {shown(wanted)}", reason=Reason.OUTPUT_WRITE_FAILED,
                      path=wanted)


def _locked_part(real: Path) -> tuple[int, Path]:
    """A new ``.NAME.XXXX.part`` beside ``real``, locked ("being written", see :func:`leftovers`)
    before it takes that name: created as ``.new``, it is empty and unlocked for a moment, when
    :func:`leftovers` would take it for a dead run's."""
    import tempfile  # here: a run that writes no file does without it (start-up time)

    while True:
        handle, name = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".new", dir=real.parent)
        fresh = Path(name)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            part = fresh.with_suffix(".part")
            if rename_new(fresh, part):  # never over a killed run's .part of the same name
                return handle, part
        except BaseException:
            os.close(handle)
            fresh.unlink(missing_ok=True)
            raise
        os.close(handle)
        fresh.unlink(missing_ok=True)


class AtomicFile:
    """A result file written beside its target and published under the target's name at the end.

    ``checkpoint()`` marks the end of whole records: if writing fails later (a full disk), the
    records up to there are what :meth:`rescue` keeps.
    """

    def __init__(self, path: str | os.PathLike[str], mode: str = "w", replace: bool = False,
                 replaces: os.stat_result | None = None) -> None:
        """``replace``: publish over an existing file. ``replaces``: the stat of the file this one
        continues; it is replaced only if it is still that file (else a conflict)."""
        self.target = Path(path)
        self.real = resolve(self.target)
        self.replace = replace
        self.replaces = replaces
        self.good_bytes = 0
        text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        try:
            handle, self.temporary = _locked_part(self.real)
        except OSError as error:
            raise OutputError(f"Cannot write {shown(self.target)}: {error.strerror or error}",
                              reason=Reason.OUTPUT_WRITE_FAILED, path=self.target) from None
        self._reader = os.dup(handle)  # to copy the results out if the folder disappears
        self.handle: IO = os.fdopen(handle, mode, **text)

    def checkpoint(self) -> None:
        self.handle.flush()
        self.good_bytes = os.lseek(self._reader, 0, os.SEEK_END)

    def discard(self) -> None:
        with suppress(OSError):
            self.handle.close()
        with suppress(OSError):
            self.temporary.unlink(missing_ok=True)
        self._close_reader()

    def _close_reader(self) -> None:
        if self._reader >= 0:
            os.close(self._reader)
            self._reader = -1

    def publish(self) -> Path:
        """Close and give the file its name; OutputConflict / OutputError say where it went else."""
        try:
            self.handle.close()
            self.good_bytes = os.lseek(self._reader, 0, os.SEEK_END)
            os.chmod(self.temporary, _final_mode(self.real))  # mkstemp makes 0600 files
            if self.replaces is not None and same_file(self.real, self.replaces):
                os.replace(self.temporary, self.real)
                return self.target
            if self.replace and self.replaces is None and not _special_or_folder(self.real):
                os.replace(self.temporary, self.real)
                return self.target
            if rename_new(self.temporary, self.real):
                return self.target
            kept = keep_new(self.temporary, self.real)
        except OSError as error:
            kept = self.rescue()
            raise OutputError(f"Cannot write {shown(self.target)}: {_why(error, self.real)}; "
                              + (f"the results were kept in {shown(kept)}" if kept else
                                 "the results could not be kept anywhere else either"),
                              reason=Reason.OUTPUT_WRITE_FAILED, path=self.target, kept=kept) from None
        finally:
            self._close_reader()
        raise OutputConflict(self.target, kept)

    def rescue(self) -> Path | None:
        """Copy the whole records written so far to the current folder (else the temporary
        folder), since the target's folder cannot take them; where they went, or None."""
        with suppress(OSError):
            self.handle.close()
        with suppress(OSError):
            self.temporary.unlink(missing_ok=True)
        if self._reader < 0:
            return None
        import tempfile

        try:
            for folder in (Path.cwd(), Path(tempfile.gettempdir())):
                with suppress(OSError):
                    return self._copy_into(folder)
            return None
        finally:
            self._close_reader()

    def _copy_into(self, folder: Path) -> Path:
        import tempfile

        handle, name = tempfile.mkstemp(prefix=f".{self.real.name}.", suffix=".part", dir=folder)
        copy = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                os.lseek(self._reader, 0, os.SEEK_SET)
                left = self.good_bytes
                while left > 0:
                    chunk = os.read(self._reader, min(left, 1 << 20))
                    if not chunk:
                        break
                    out.write(chunk)
                    left -= len(chunk)
            os.chmod(copy, new_file_mode())
            return keep_new(copy, folder / self.real.name)
        except BaseException:
            copy.unlink(missing_ok=True)
            raise


def leftovers(folder: Path, name: str) -> list[Path]:
    """The temporary files of writers of ``folder``/``name`` (a glob) that died before publishing.

    A live writer holds the lock on its temporary file; the kernel drops it when the writer dies,
    however it dies. Files still locked (another run writing now) are not returned. Empty ones (a
    run killed before its first record) hold nothing to report or take in: they are removed.
    """
    found = []
    for candidate in sorted(folder.glob(f".{name}.*.part")):
        handle = _lock_if_abandoned(candidate)
        if handle is None:
            continue
        try:
            if os.fstat(handle).st_size:
                found.append(candidate)
            else:
                candidate.unlink(missing_ok=True)  # under our lock: no writer can have taken it
        except OSError:
            pass  # a folder we may not change: the file holds nothing either way
        finally:
            os.close(handle)
    return found


def remove_leftover(path: Path) -> None:
    """Delete a file :func:`leftovers` returned, unless a writer has taken it meanwhile."""
    handle = _lock_if_abandoned(path)
    if handle is None:
        return
    try:
        path.unlink(missing_ok=True)
    finally:
        os.close(handle)


def _lock_if_abandoned(path: Path) -> int | None:
    """A descriptor of ``path`` holding its lock; None when it is not a regular file or a writer
    holds the lock."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(handle).st_mode):
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
    except OSError:
        pass
    os.close(handle)
    return None


def results_leftovers(path: str | os.PathLike[str]) -> list[Path]:
    """:func:`leftovers` of the result file ``path`` (symbolic links followed, as writing does)."""
    import glob

    real = resolve(path)
    return leftovers(real.parent, glob.escape(real.name))


def same_file(path: Path, before: os.stat_result) -> bool:
    """Whether ``path`` is still the file ``before`` described (same inode, size and time)."""
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) == \
        (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns)


def _special_or_folder(path: Path) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(mode)


def _why(error: OSError, target: Path) -> str:
    if error.errno in (errno.ENOENT, errno.ENOTDIR) and not os.path.isdir(target.parent):
        return f"its folder {shown(target.parent)} was removed during the run"
    return error.strerror or str(error)


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", replace: bool = False) -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and give it that name only on success.

    A failure or an interruption leaves ``path`` as it was (absent or the old file). Without
    ``replace`` a file that appeared at ``path`` meanwhile is kept and the new one is published
    beside it (:class:`OutputConflict`). ``-`` writes to standard output instead.
    """
    if str(path) == STDOUT:
        yield sys.stdout.buffer if "b" in mode else sys.stdout
        return
    result = AtomicFile(path, mode, replace)
    try:
        yield result.handle
    except OSError as error:
        result.discard()
        if error.errno not in WRITE_ERRORS:
            raise
        raise OutputError(f"Cannot write {shown(path)}: {error.strerror or error}",
                          reason=Reason.OUTPUT_WRITE_FAILED, path=Path(path)) from None
    except BaseException:
        result.discard()
        raise
    result.publish()
