"""quantize's optional inputs (SavedModel, Keras, ONNX) as CI sees them: without TensorFlow.

TensorFlow and onnx2tf have no CPython 3.14 aarch64 wheels, so they are not test dependencies; a
blocker package on PYTHONPATH makes sure they cannot be imported even where they are installed.
The conversion itself was verified by hand (README "Keras, SavedModel and ONNX models").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IMAGES

TIMEOUT = 60


def quantize(model: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    blockers = tmp_path / "blockers"
    for package in ("tensorflow", "onnx2tf"):
        (blockers / package).mkdir(parents=True, exist_ok=True)
        (blockers / package / "__init__.py").write_text("raise ImportError('not installed')\n")
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "bredos_npu", "quantize", str(model), "-o", str(out / "q.tflite"),
         "--calibration", str(IMAGES)],
        capture_output=True, text=True, timeout=TIMEOUT,
        env={"PYTHONPATH": str(blockers), "PATH": "/usr/bin", "HOME": str(tmp_path)})
    assert not any(out.iterdir()), "nothing is written on failure"
    return done


@pytest.mark.parametrize(("name", "extra"), [
    ("saved", "convert"), ("net.keras", "convert"), ("net.h5", "convert"), ("net.onnx", "onnx"),
])
def test_model_to_convert_without_its_extra_is_one_line_and_exit_8(tmp_path: Path, name: str,
                                                                    extra: str) -> None:
    model = tmp_path / name
    if name == "saved":
        model.mkdir()
        (model / "saved_model.pb").write_bytes(b"\x08\x01")
    else:
        model.write_bytes(b"\x08\x01")
    done = quantize(model, tmp_path)
    assert done.returncode == 8, done.stderr
    assert f"pip install 'bredos-npu[{extra}]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_folder_without_saved_model_is_one_line_and_exit_4(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "variables").mkdir()
    done = quantize(folder, tmp_path)
    assert done.returncode == 4, done.stderr
    assert "folder without saved_model.pb" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_keras_file_is_one_line_and_exit_4(tmp_path: Path) -> None:
    done = quantize(tmp_path / "absent.keras", tmp_path)
    assert done.returncode == 4, done.stderr
    assert "not found" in done.stderr and "absent.keras" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
