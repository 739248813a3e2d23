"""The doctor: every check users run by hand before the NPU works, with the fix for each.

The board's checks are :func:`bredos_npu.system.readiness.npu_readiness`'s, the very ones the
``auto`` backend plans with, so the doctor and ``load`` judge a board alike. The doctor adds a
delegate trial (in a child process) and the Python side.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bredos_npu.errors import Reason, UsageError
from bredos_npu.runtime.litert import INSTALL_HINT, describe_runtime
from bredos_npu.system.readiness import (
    FAIL,
    OK,
    SKIP,
    WARN,
    Check,
    Readiness,
    first_failure,
    npu_readiness,
)
from bredos_npu.system.root import SystemRoot

__all__ = ["FAIL", "OK", "SKIP", "WARN", "Check", "Report", "diagnose"]


@dataclass(frozen=True)
class Report:
    """What :func:`diagnose` found: every check in the order shown (board, kernel, driver, device
    node, permissions, delegate library, runtime...); the NPU is ready when every check marked
    ``npu`` passed."""

    checks: list[Check] = field(default_factory=list)

    @property
    def npu_ready(self) -> bool:
        """True when every check the NPU needs passed (a warning does not block it)."""
        return self.first_failure is None

    @property
    def first_failure(self) -> Check | None:
        """The first check that keeps the NPU out (the one ``auto`` names too), or None."""
        return first_failure(self.checks)

    @property
    def verdict(self) -> str:
        """ "NPU ready", or "CPU only: <what the first failed NPU check found>"."""
        first = self.first_failure
        return "NPU ready" if first is None else f"CPU only: {first.found}"

    def as_dict(self) -> dict[str, object]:
        """``npu_ready``, ``verdict`` and every check, as JSON-ready values."""
        return {"npu_ready": self.npu_ready, "verdict": self.verdict,
                "checks": [c.as_dict() for c in self.checks]}


def try_teflon(library: Path) -> Check:
    """Create a delegate and run the bundled model with it once, in a child process."""
    from bredos_npu.models import bundled
    from bredos_npu.runtime import probe

    if describe_runtime() is None:
        return Check("Teflon", OK, f"{library} (not tried: no TensorFlow Lite runtime)")
    # Never from the cache: the doctor is where users check again after fixing something.
    verdict = probe.probe_delegate(library, bundled.default_model(), use_cache=False)
    if verdict.ok:
        return Check("Teflon", OK, f"{library} (delegate created, ran a test model)")
    about = {"library": str(library), "stage": verdict.stage, "detail": verdict.detail}
    if verdict.outcome == probe.FAILED and verdict.stage == probe.CREATE:
        detail = f" ({'; '.join(verdict.said)})" if verdict.said else ""
        return Check("Teflon", FAIL, f"{library} loads but returns no delegate{detail}",
                     "TEFLON_DEBUG=verbose bredos-npu classify -b npu  (shows why Teflon gives up)",
                     reason=Reason.NO_DELEGATE, data=about)
    kind = {probe.CRASHED: Reason.DELEGATE_CRASHED, probe.HUNG: Reason.DELEGATE_HUNG}
    return Check("Teflon", FAIL, verdict.reason(library),
                 "update Mesa (sudo pacman -Syu mesa) or report it to Mesa with the output of "
                 "TEFLON_DEBUG=verbose bredos-npu classify -b npu; the CPU backend works meanwhile",
                 reason=kind.get(verdict.outcome, Reason.DELEGATE_REFUSED_MODEL), data=about)


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info[:2] > (3, 14):
        return Check("Python", WARN, f"Python {version} (tested: 3.11-3.14)", npu=False)
    return Check("Python", OK, f"Python {version}", npu=False)


def check_runtime() -> Check:
    runtime = describe_runtime()
    if runtime is None:
        return Check("TFLite runtime", FAIL, "no TensorFlow Lite runtime installed", INSTALL_HINT,
                     reason=Reason.MISSING_PACKAGE, data={"package": "ai-edge-litert"})
    return Check("TFLite runtime", OK, f"{runtime.name} {runtime.version}")


def check_package(name: str, distribution: str) -> Check:
    try:
        return Check(name, OK, importlib.metadata.version(distribution), npu=False)
    except importlib.metadata.PackageNotFoundError:
        return Check(name, FAIL, "not installed", f"pip install {distribution}", npu=False,
                     reason=Reason.MISSING_PACKAGE, data={"package": distribution})


def with_trial(readiness: Readiness) -> list[Check]:
    """The readiness checks, the library's replaced by a delegate trial once the board passed.

    Creating a delegate opens the NPU: only meaningful once the board side is ready.
    """
    *board, library = readiness.checks
    if library.passed and readiness.board_ready and readiness.library.path is not None:
        library = try_teflon(readiness.library.path)
    return [*board, library]


def system_root(root: str | None) -> SystemRoot:
    """The system root to check: ``root``, else $BREDOS_NPU_ROOT, else /; UsageError when it is
    not a folder."""
    if root == "":
        raise UsageError("root needs a folder: the one that holds the system to check.",
                         reason=Reason.BAD_VALUE, option="root", value=root)
    system = SystemRoot.from_env(root)
    if not system.base.is_dir():
        problem = "is not a folder" if system.base.exists() else "does not exist"
        raise UsageError(f"The system root {system.base} {problem}", "pass the folder that holds the "
                         "system to check (default: /)", Reason.BAD_VALUE, option="root", value=root)
    return system


def diagnose(root: str | None = None, delegate: str | None = None) -> Report:
    """Run every check against the system at ``root`` (default: $BREDOS_NPU_ROOT or /).

    delegate: the library to check instead of searching for Teflon; a named library judges the
    board itself (the board checks are then advisory), as it does for :func:`bredos_npu.load`.
    """
    readiness = npu_readiness(system_root(root), delegate)
    return Report([
        *with_trial(readiness),
        check_python(),
        check_runtime(),
        check_package("numpy", "numpy"),
        check_package("Pillow", "pillow"),
    ])
