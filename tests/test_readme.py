"""The README is executable: its code blocks run here, so they cannot drift from the code.

Rules (for whoever adds a section to the README):

1. Every fenced block tagged ``sh`` or ``python`` runs, in README order, in one scratch copy of
   the repository (tracked files, no venv), so later blocks see the files earlier ones made and
   paths such as ``tests/data/images/...`` work as from a fresh clone. ``sh`` runs with
   ``bash -euo pipefail``: every command must succeed. ``python`` runs with the test's Python.
2. A ``text`` block whose first line is ``$ COMMAND`` is sample output: COMMAND runs (exit 0),
   the output is not compared (timings differ). Other ``text`` blocks are not run.
3. The environment is a new user's: HOME, the XDG folders and the model cache
   (``BREDOS_NPU_CACHE``) are empty folders; ``bredos-npu``, ``python3`` and ``pip`` are those of
   the test's venv; pip may not use the network (``PIP_NO_INDEX``), so ``pip install`` lines must
   be satisfied by what ``.[test]`` installed. Downloads go to a mirror on 127.0.0.1
   (``BREDOS_NPU_MODEL_BASE_URL``, tests/model_server.py) serving ``tests/data/models`` and
   ``tests/data/labels``: a snippet may pull a zoo model only if its file is there.
4. Each block has a deadline of ``BLOCK_DEADLINE_S``.
5. A block that must not run here carries, on the line just above its fence, the comment
   ``<!-- readme-test: skip: REASON -->`` with one of ``SKIP_REASONS`` (invisible on GitHub).
   Any other ``readme-test`` comment fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from model_server import ModelServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK_DEADLINE_S = 180
# Why a README block may stay unrun. Add one only with a reason a reviewer can check.
SKIP_REASONS = {
    "creates a venv": "the set-up commands; .ci/run runs exactly these on a fresh machine",
    "runs a server until stopped": "a server's own tests start and stop it",
    "needs a running server": "the server's tests make these requests with real clients",
    "needs root and systemd": "installs a system service",
    "needs TensorFlow": "the [convert]/[onnx] extras are not test dependencies (no CPython 3.14 "
                        "aarch64 wheels); tests/test_quantize_convert.py checks the errors without them",
}
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*readme-test:\s*(.*?)\s*-->$")
IGNORED = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build", "dist",
                                 ".pytest_cache", ".ruff_cache")


class Block(NamedTuple):
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    marker: str | None  # the readme-test comment above it, if any


def readme_blocks(text: str) -> list[Block]:
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        above = MARKER.match(lines[index - 1].strip()) if index else None
        blocks.append(Block(index + 1, opening.group(1), "\n".join(lines[index + 1:end]) + "\n",
                            above.group(1) if above else None))
        index = end + 1
    return blocks


def skipped(block: Block) -> bool:
    if block.marker is None:
        return False
    kind, _, reason = block.marker.partition(":")
    assert kind.strip() == "skip" and reason.strip() in SKIP_REASONS, (
        f"README line {block.line}: unknown marker {block.marker!r}; "
        f"use 'skip: REASON' with one of {sorted(SKIP_REASONS)}")
    return True


def test_the_rules_read_the_readme_as_written():
    sample = ("<!-- readme-test: skip: creates a venv -->\n```sh\npip install .\n```\n\n"
              "```python\nprint(1)\n```\n```text\n$ bredos-npu doctor\nok\n```\n")
    blocks = readme_blocks(sample)
    assert [(b.line, b.language, b.marker) for b in blocks] == [
        (2, "sh", "skip: creates a venv"), (6, "python", None), (9, "text", None)]
    assert skipped(blocks[0]) and not skipped(blocks[1])
    with pytest.raises(AssertionError, match="unknown marker"):
        skipped(blocks[0]._replace(marker="skip: it is slow"))


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    folder = tmp_path / "clone"
    shutil.copytree(ROOT, folder, ignore=IGNORED, symlinks=True)
    return folder


def run_block(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if block.language == "python":
        command = [sys.executable, "-"]
    elif block.language == "sh":
        command = ["bash", "-euo", "pipefail", "-s"]
    else:  # text with "$ command" on its first line
        command = ["bash", "-euo", "pipefail", "-c", block.code.splitlines()[0][2:]]
    return subprocess.run(command, input=block.code if block.language != "text" else None, cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=BLOCK_DEADLINE_S, check=False)


def test_every_readme_block_runs_as_written(clone, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items() if not key.startswith("BREDOS_NPU_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local/share"), BREDOS_NPU_CACHE=str(tmp_path / "cache"),
               PATH=bin_dir + os.pathsep + env.get("PATH", ""), PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    blocks = readme_blocks(README.read_text())
    to_run = [b for b in blocks if b.language in ("sh", "python") and not skipped(b)]
    to_run += [b for b in blocks if b.language == "text" and b.code.startswith("$ ")]
    to_run.sort(key=lambda b: b.line)
    assert len(to_run) >= 5, "the README lost its examples?"
    with ModelServer([ROOT / "tests/data/models", ROOT / "tests/data/labels"]) as mirror:
        env["BREDOS_NPU_MODEL_BASE_URL"] = mirror.url
        for block in to_run:
            started = time.monotonic()
            done = run_block(block, clone, env)
            took = time.monotonic() - started
            print(f"README line {block.line}: {took:.1f} s")
            assert done.returncode == 0, (
                f"README line {block.line} ({block.language} block) failed with exit "
                f"{done.returncode} after {took:.1f} s:\n{block.code}\n--- stdout\n{done.stdout[-3000:]}"
                f"\n--- stderr\n{done.stderr[-3000:]}")
