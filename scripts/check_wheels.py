#!/usr/bin/env python3
"""Check that the runtime dependencies install as binary wheels on the boards we target.

For each of CPython 3.11-3.14 on manylinux aarch64 (RK3588 boards: glibc 2.28 or newer), ask pip
to resolve the dependency set of pyproject.toml (with the extras of EXTRAS) as wheels only, as
`pip download` does for a board. Also resolves the oldest supported numpy (1.26) where it has
wheels (3.11, 3.12).
Exit status 0 when every combination resolves; otherwise prints pip's complaint and exits 1.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

PYTHONS = ("3.11", "3.12", "3.13", "3.14")
# ai-edge-litert is tagged manylinux_2_27, numpy/pillow manylinux_2_28, matplotlib manylinux_2_26,
# protobuf manylinux2014: a glibc-2.28+ board accepts all of them, and pip must be told each.
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_26_aarch64",
             "manylinux_2_24_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
OLDEST_NUMPY = ("numpy==1.26.*", ("3.11", "3.12"))
# The extras users install on boards (``test`` is for development machines and CI only).
# Not "convert" and "onnx": TensorFlow has no CPython 3.14 aarch64 wheels; the README says so.
EXTRAS = ("cluster", "plot", "quantize", "serve", "video")


def dependencies(pyproject: Path) -> list[str]:
    """The runtime dependencies plus the extras users install on boards (EXTRAS)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = [r for name in EXTRAS for r in project["optional-dependencies"][name]]
    return [*project["dependencies"], *extras]


def resolve(requirements: list[str], python: str) -> tuple[bool, list[str], str]:
    """(ok, wheel file names, pip's stderr) for one Python version."""
    with tempfile.TemporaryDirectory() as target:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                   "--implementation", "cp", "--python-version", python, "--dest", target]
        for platform in PLATFORMS:
            command += ["--platform", platform]
        done = subprocess.run(command + requirements, capture_output=True, text=True)
        wheels = sorted(p.name for p in Path(target).glob("*.whl"))
    errors = "\n".join(line for line in done.stderr.splitlines() if "WARNING" not in line)
    return done.returncode == 0, wheels, errors


def main() -> int:
    requirements = dependencies(Path(__file__).resolve().parent.parent / "pyproject.toml")
    cases = [(python, requirements) for python in PYTHONS]
    cases += [(python, [*requirements, OLDEST_NUMPY[0]]) for python in OLDEST_NUMPY[1]]
    failed = 0
    for python, wanted in cases:
        ok, wheels, errors = resolve(wanted, python)
        label = f"CPython {python} aarch64" + (" with numpy 1.26" if OLDEST_NUMPY[0] in wanted else "")
        if ok:
            native = [w for w in wheels if "aarch64" in w]
            print(f"ok    {label}: {len(wheels)} wheels ({', '.join(native)})")
        else:
            failed += 1
            print(f"FAIL  {label}:\n{errors}")
    print(f"wheel check: {len(cases) - failed} of {len(cases)} combinations resolve")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
