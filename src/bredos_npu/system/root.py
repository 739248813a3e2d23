"""One root path through which everything about the system is read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

ROOT_ENV = "BREDOS_NPU_ROOT"


class SystemRoot(NamedTuple):
    """A file-system root: ``/`` on a board, a fake tree in tests.

    ``path("/proc/modules")`` maps an absolute system path under this root.
    """

    base: Path = Path("/")

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None) -> SystemRoot:
        """The root given, else ``$BREDOS_NPU_ROOT``, else ``/``."""
        chosen = root if root is not None else os.environ.get(ROOT_ENV) or "/"
        return cls(Path(chosen))

    @property
    def is_real(self) -> bool:
        """True when this is the machine's own root, so results apply to this process."""
        return self.base.resolve() == Path("/")

    def path(self, system_path: str) -> Path:
        return self.base / system_path.lstrip("/")

    def read_text(self, system_path: str) -> str | None:
        """The file's text, or None when it is missing or unreadable."""
        try:
            return self.path(system_path).read_text(errors="replace")
        except OSError:
            return None

    def read_bytes(self, system_path: str) -> bytes | None:
        try:
            return self.path(system_path).read_bytes()
        except OSError:
            return None

    def stat(self, system_path: str) -> os.stat_result | None:
        """The file's status (type, mode, owner), following links; None when it is missing.

        The one place file types and owners of the system are read, so a test can describe a
        character device in a fake tree without ``mknod`` (which needs root).
        """
        try:
            return os.stat(self.path(system_path))
        except OSError:
            return None
