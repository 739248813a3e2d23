"""The suite's own rules: a skipped test fails the run (tests/skip_policy.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def run_pytest(folder: Path, source: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_sample.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "skip_policy", "-p", "no:cacheprovider",
               "--rootdir", str(folder), str(folder)]
    return subprocess.run(command,
                          capture_output=True, text=True, timeout=60, env=env, cwd=folder, check=False)


def test_a_skipped_test_fails_the_run(tmp_path):
    outcome = run_pytest(tmp_path, "import pytest\n\ndef test_x():\n    pytest.skip('no compiler')\n")
    assert outcome.returncode == 1, outcome.stdout
    assert "skips fail this suite (tests/skip_policy.py): Skipped: no compiler" in outcome.stdout
    assert "1 failed" in outcome.stdout


def test_a_passing_run_stays_green(tmp_path):
    outcome = run_pytest(tmp_path, "def test_x():\n    assert True\n")
    assert outcome.returncode == 0, outcome.stdout
