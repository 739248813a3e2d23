"""Finding Mesa's Teflon delegate library and checking that it can be loaded."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import NamedTuple

from bredos_npu.system.root import SystemRoot

DELEGATE_ENV = "BREDOS_NPU_DELEGATE"
CREATE_SYMBOL = "tflite_plugin_create_delegate"
DESTROY_SYMBOL = "tflite_plugin_destroy_delegate"

# BredOS/Arch first, then Debian/Ubuntu's mesa-teflon-delegate, Fedora-style lib64, multiarch, local.
TEFLON_PATHS = (
    "/usr/lib/libteflon.so",
    "/usr/lib/teflon/libteflon.so",
    "/usr/lib64/libteflon.so",
    "/usr/lib/aarch64-linux-gnu/libteflon.so",
    "/usr/local/lib/libteflon.so",
)


class LibraryChoice(NamedTuple):
    """Where the delegate library was looked for and what was found.

    ``path`` is a real file-system path (under the root for searched locations), ``origin`` says
    how it was chosen: ``"explicit"`` (given by the caller), ``"$BREDOS_NPU_DELEGATE"`` or ``"search"``.
    """

    path: Path | None
    origin: str
    searched: tuple[str, ...]


def find_teflon(root: SystemRoot, explicit: str | os.PathLike[str] | None = None) -> LibraryChoice:
    """The library to use: ``explicit``, else ``$BREDOS_NPU_DELEGATE``, else the first that exists.

    An explicit or environment path is returned even when missing, so the caller can say so.
    """
    # Absolute, because dlopen searches the library path for a bare "lib.so" (even "./lib.so"
    # once pathlib has normalised it away).
    if explicit:
        return LibraryChoice(Path(explicit).absolute(), "explicit", (str(explicit),))
    from_env = os.environ.get(DELEGATE_ENV)
    if from_env:
        return LibraryChoice(Path(from_env).absolute(), f"${DELEGATE_ENV}", (from_env,))
    for candidate in TEFLON_PATHS:
        if root.path(candidate).is_file():
            return LibraryChoice(root.path(candidate), "search", TEFLON_PATHS)
    return LibraryChoice(None, "search", TEFLON_PATHS)


class LibraryCheck(NamedTuple):
    """Whether dlopen accepts the library, whether it exports both entry points, and why not."""

    loadable: bool
    has_entry_points: bool
    error: str


def check_loadable(path: Path) -> LibraryCheck:
    """dlopen the library and look for the external-delegate entry points."""
    try:
        library = ctypes.CDLL(str(path))
    except OSError as exc:
        return LibraryCheck(False, False, str(exc))
    missing = [s for s in (CREATE_SYMBOL, DESTROY_SYMBOL) if not hasattr(library, s)]
    if missing:
        return LibraryCheck(True, False, f"missing symbol {', '.join(missing)}")
    return LibraryCheck(True, True, "")
