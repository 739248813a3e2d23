"""Reading a .tflite file with checks that turn every failure into one clear sentence."""

from __future__ import annotations

import os
import re
import zipfile
from io import BytesIO

from bredos_npu.errors import ModelError, Reason
from bredos_npu.inputs import MODEL, read_regular, shown

FILE_IDENTIFIER = b"TFL3"


def read_model_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes after checking it is a regular file that carries the TFLite identifier."""
    content = read_regular(path, MODEL)
    if content[4:8] != FILE_IDENTIFIER:
        raise ModelError(f"{shown(path)} is not a TensorFlow Lite model (no 'TFL3' identifier)",
                         "pass a .tflite file", Reason.NOT_TFLITE, path=path)
    return content


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
