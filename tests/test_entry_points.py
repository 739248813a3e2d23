"""The installed console script and `python -m bredos_npu`, as real processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import IMAGES


def test_python_m_runs_the_default_job():
    done = subprocess.run([sys.executable, "-m", "bredos_npu", "classify", "-b", "cpu", "-k", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1. Egyptian cat" in done.stdout
    assert done.stderr == ""  # no native INFO lines leak through


def test_console_script_reports_errors_without_traceback(tmp_path):
    script = str(Path(sys.executable).with_name("bredos-npu"))
    if not Path(script).exists():
        script = shutil.which("bredos-npu") or script
    done = subprocess.run([script, "classify", "-b", "cpu", str(tmp_path / "missing.jpg")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 5
    assert done.stderr == f"bredos-npu: error: Image not found: {tmp_path / 'missing.jpg'}: check the path.\n"


def test_version_and_help():
    done = subprocess.run([sys.executable, "-m", "bredos_npu", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("bredos-npu, version ")
    help_text = subprocess.run([sys.executable, "-m", "bredos_npu", "--help"], capture_output=True,
                               text=True, timeout=60).stdout
    assert "classify" in help_text and "doctor" in help_text


def test_usage_error_exit_code():
    done = subprocess.run([sys.executable, "-m", "bredos_npu", "classify", "--top-k", "0",
                           str(IMAGES / "sunflower.bmp")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == ("bredos-npu classify: invalid value for '-k' / '--top-k': 0 is not in the range "
                           "x>=1 (see bredos-npu classify --help)\n")
