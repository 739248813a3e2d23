"""Reading the user's input files (models, labels, images) without ever hanging or crashing.

Only regular files are read: a FIFO would block ``open()`` forever, a device could stream without
end. The file is opened with ``O_NONBLOCK`` (so opening a FIFO returns at once) and checked with
``fstat`` on the open descriptor (so it cannot be swapped between the check and the read). Every
failure becomes one sentence in the caller's error class; ``Path.exists()`` is not used because it
raises for EACCES and ENAMETOOLONG instead of answering.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from bredos_npu.errors import BredosNpuError, ImageError, LabelsError, ModelError, Reason
from bredos_npu.outputs import shown  # one way to show a path in a message, for inputs too


class FileKind(NamedTuple):
    """How one kind of input file is named in sentences, and the error it raises."""

    error: type[BredosNpuError]
    what: str  # "model", "image", "label file"
    missing: str  # the fact for a file that does not exist
    missing_fix: str
    folder_fix: str
    not_found: Reason
    is_folder: Reason
    unreadable: Reason


MODEL = FileKind(ModelError, "model", "Model file not found", "check the path, or name a model of "
                 "the zoo", "pass a .tflite file", Reason.MODEL_NOT_FOUND, Reason.MODEL_IS_FOLDER,
                 Reason.MODEL_UNREADABLE)
IMAGE = FileKind(ImageError, "image", "Image not found", "check the path", "pass image files",
                 Reason.IMAGE_NOT_FOUND, Reason.IMAGE_IS_FOLDER, Reason.IMAGE_UNREADABLE)
LABELS = FileKind(LabelsError, "label file", "Label file not found", "check the path",
                  "pass a text file, one label per line", Reason.LABELS_NOT_FOUND,
                  Reason.LABELS_UNREADABLE, Reason.LABELS_UNREADABLE)


# What a folder's images are (a file named explicitly is read whatever its suffix).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".ts", ".mts", ".flv",
                            ".mpg", ".mpeg", ".wmv", ".3gp", ".h264", ".264", ".hevc", ".mjpeg",
                            ".mjpg", ".y4m", ".m3u8", ".ogv"})
DEVICE_PATTERN = re.compile(r"^/dev/video\d+$")


def source_kind(source: str | os.PathLike[str]) -> str | None:
    """"file", "rtsp", "http", "device" for a video source, None for anything else (an image).

    Here rather than with the video code so that telling images from videos costs no import of
    it (the image commands ask this of every input).
    """
    text = str(source)
    lowered = text.lower()
    if lowered.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if lowered.startswith(("http://", "https://")):
        return "http"
    if DEVICE_PATTERN.match(text):
        return "device"
    if Path(text).suffix.lower() in VIDEO_SUFFIXES:
        return "file"
    return None


def is_video_source(source: Any) -> bool:
    """Whether ``source`` names a video (a file by its suffix, a stream URL, a V4L2 device)."""
    return isinstance(source, (str, os.PathLike)) and source_kind(source) is not None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], kind: FileKind) -> BinaryIO:
    """``path`` opened for binary reading, or ``kind.error`` with one sentence saying why not."""
    name = shown(path)
    _refuse_special(path, kind, name)  # devices are not even opened (opening may act)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise kind.error(f"{kind.missing}: {name}", kind.missing_fix, kind.not_found,
                         path=path) from None
    except OSError as exc:
        raise _unreadable(exc, kind, path) from None
    except ValueError:  # a NUL byte in the path
        raise kind.error(f"Cannot read {kind.what} {name!r}: the path contains a NUL character",
                         reason=kind.unreadable, path=path) from None
    try:
        _check_mode(os.fstat(descriptor).st_mode, kind, path, name)  # what was really opened
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _refuse_special(path: str | os.PathLike[str], kind: FileKind, name: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return  # os.open says why, in the same words as for a file that vanished meanwhile
    _check_mode(mode, kind, path, name)


def _check_mode(mode: int, kind: FileKind, path: str | os.PathLike[str], name: str) -> None:
    if stat.S_ISDIR(mode):
        raise kind.error(f"{name} is a folder, not {_article(kind.what)}", kind.folder_fix,
                         kind.is_folder, path=path)
    if not stat.S_ISREG(mode):
        raise kind.error(f"{name} is {_kind(mode)}, not a regular file",
                         f"{_article(kind.what)} must be a regular file", kind.unreadable,
                         path=path)


def read_regular(path: str | os.PathLike[str], kind: FileKind) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`)."""
    with open_regular(path, kind) as file:
        try:
            return file.read()
        except OSError as exc:
            raise _unreadable(exc, kind, path) from None


def is_folder(path: str | os.PathLike[str]) -> bool:
    """``Path.is_dir()`` that answers False instead of raising (ENAMETOOLONG, EACCES...)."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def _article(what: str) -> str:
    return f"an {what}" if what[:1] in "aeiou" else f"a {what}"


def _unreadable(exc: OSError, kind: FileKind, path: str | os.PathLike[str]) -> BredosNpuError:
    reasons = {
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENAMETOOLONG: "the path is too long",
        errno.ELOOP: "too many levels of symbolic links",
        errno.ENXIO: "no such device",
    }
    reason = reasons.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    return kind.error(f"Cannot read {kind.what} {shown(path)}: {reason}", reason=kind.unreadable,
                      path=path)
