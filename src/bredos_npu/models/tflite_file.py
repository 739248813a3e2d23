"""Reading a .tflite file with checks that turn every failure into one clear sentence."""

from __future__ import annotations

import functools
import os
import re
import zipfile
from collections.abc import Callable
from io import BytesIO
from typing import Any, TypeVar

from bredos_npu.errors import BredosNpuError, ModelError, Reason
from bredos_npu.inputs import MODEL, read_regular, shown

FILE_IDENTIFIER = b"TFL3"
Loader = TypeVar("Loader", bound=Callable[..., Any])


def first_line(text: str) -> str:
    """The first non-empty line of a library's message, without its final full stop."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "unknown error")
    return line.rstrip(".")


def guard_model_errors(function: Loader) -> Loader:
    """``function(path, ...)`` with any unexpected failure turned into a ModelError about ``path``.

    The runtime's readers (tensor names, op details) and the flatbuffers reader do not verify
    what they read: a damaged model makes them raise UnicodeDecodeError, IndexError, struct.error
    and more. Those are the model's fault and get its exit code; the cause stays chained.
    """
    @functools.wraps(function)
    def guarded(path: Any = None, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(path, *args, **kwargs)
        except BredosNpuError:
            raise
        except Exception as error:  # see the docstring: whatever a damaged file makes them raise
            given_bytes = isinstance(path, bytes | bytearray | memoryview)
            if given_bytes:
                name = "the model bytes"
            else:
                name = shown(path) if path is not None else "the bundled model"
            raise ModelError(f"Cannot read {name} ({type(error).__name__}: "
                             f"{first_line(str(error))}); it is probably damaged",
                             "download or export it again", Reason.MODEL_CORRUPT,
                             path=None if given_bytes else path) from error
    return guarded  # type: ignore[return-value]


def read_model_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes after checking it is a regular file that carries the TFLite identifier."""
    return check_model_content(read_regular(path, MODEL), path)


def check_model_content(content: bytes, source: str | os.PathLike[str]) -> bytes:
    """``content`` when it is a complete TFLite flatbuffer; ModelError about ``source`` if not."""
    if content[4:8] != FILE_IDENTIFIER:
        raise ModelError(f"{shown(source)} is not a TensorFlow Lite model (no 'TFL3' identifier)",
                         "pass a .tflite file", Reason.NOT_TFLITE, path=source)
    check_complete(content, source)
    return content


ZIP_ENTRY = b"PK\x03\x04"
METADATA_NAME = b"TFLITE_METADATA"


def check_complete(content: bytes, path: str | os.PathLike[str]) -> None:
    """ModelError when the file was cut short or damaged where the runtime would not notice.

    Every buffer must lie inside the file, and files packed after the flatbuffer (the label files
    of a model with metadata, stored as a zip) must still be readable: a few KB cut off the end
    only damage that zip, and TFLite loads such a model happily without its labels.
    """
    try:
        data_end, has_metadata = _buffers_end(content)
    except Exception as error:  # the flatbuffers reader has no checks: any failure means damage
        raise _corrupt(path, "its TFLite flatbuffer cannot be read") from error
    if data_end > len(content):
        raise _corrupt(path, f"a weight buffer ends at byte {data_end}, after the end of the "
                             f"{len(content)}-byte file")
    if has_metadata and content.find(ZIP_ENTRY, data_end) >= 0 and not _zip_readable(content):
        raise _corrupt(path, "the label files packed at its end are cut off")


def _zip_readable(content: bytes) -> bool:
    try:
        with zipfile.ZipFile(BytesIO(content)) as archive:
            return bool(archive.namelist())
    except Exception:  # BadZipFile, or anything a damaged directory makes zipfile raise
        return False


def _corrupt(path: str | os.PathLike[str], why: str) -> ModelError:
    return ModelError(f"{shown(path)} is truncated or corrupt ({why})", "download or export it "
                      "again", Reason.MODEL_CORRUPT, path=path)


def _buffers_end(content: bytes) -> tuple[int, bool]:
    """(the byte after the last buffer's data, whether the model names a metadata buffer)."""
    from bredos_npu.models import flatbuf

    model = flatbuf.root(content)
    end = 0
    for buffer in flatbuf.tables(model, flatbuf.MODEL_BUFFERS):
        span = flatbuf.data_span(buffer)
        end = max(end, span[1] if span else 0, flatbuf.external_end(buffer))
    return end, METADATA_NAME in flatbuf.metadata_entries(model)


def explain_load_failure(path: str | os.PathLike[str], message: str) -> ModelError:
    """A ModelError for an interpreter that refused the model, from the runtime's message."""
    custom = re.search(r"unresolved custom op: ([^.\s]+)", message)
    if custom:
        return ModelError(
            f"{path} uses the custom operator '{custom.group(1)}', which this TFLite runtime does "
            "not provide", "use a model made of builtin operators", Reason.CUSTOM_OP, path=path,
            op=custom.group(1))
    if "Flatbuffer" in message or "flatbuffer" in message:
        return ModelError(f"{path} is truncated or corrupt (its TFLite flatbuffer does not verify)",
                          "download or export it again", Reason.MODEL_CORRUPT, path=path)
    first_line = message.strip().splitlines()[0].rstrip(".") if message.strip() else "unknown error"
    return ModelError(f"TFLite cannot load {path}: {first_line}.", reason=Reason.MODEL_LOAD_FAILED, path=path)


def embedded_files(content: bytes) -> dict[str, bytes]:
    """Files packed into the model's metadata (a .tflite with metadata is also a zip)."""
    try:
        with zipfile.ZipFile(BytesIO(content)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError, ValueError):
        return {}
