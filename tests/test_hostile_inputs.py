"""Special files, unreadable and over-long paths: one line on stderr and the documented exit code.

FIFOs are real (``mkfifo``) and every command runs in a child process with a deadline, so a
regression hangs the child, not the suite. Permission tests need a user that file modes stop:
as root, the child runs without the capabilities that bypass file modes (``setpriv``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_runner import run_child, run_cli
from conftest import CAT, DEFAULT_MODEL, IMAGES, LABELS

import bredos_npu
from bredos_npu.errors import EXIT_IMAGE, EXIT_LABELS, EXIT_MODEL, ImageError, LabelsError, ModelError

TOO_LONG = "x" * 300  # one path component longer than NAME_MAX (255)


def one_error_line(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert done.returncode == code, done.stderr
    lines = done.stderr.splitlines()
    errors = [line for line in lines if line.startswith("bredos-npu: error: ")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture
def fifo(tmp_path: Path):
    def make(name: str) -> Path:
        path = tmp_path / name
        os.mkfifo(path)
        return path
    return make


def test_fifo_as_model_labels_or_image_never_hangs(fifo, tmp_path):
    model, labels = fifo("model.tflite"), fifo("labels.txt")
    one_error_line(run_child("classify", "-b", "cpu", "-m", model, CAT), EXIT_MODEL,
                   f"{model} is a named pipe (FIFO), not a regular file")
    one_error_line(run_child("inspect", model), EXIT_MODEL, "named pipe (FIFO)")
    one_error_line(run_child("classify", "-b", "cpu", "-l", labels, CAT), EXIT_LABELS,
                   f"{labels} is a named pipe (FIFO)")
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(IMAGES / "grace_hopper.jpg", folder / "a.jpg")
    os.mkfifo(folder / "b.jpg")
    done = run_child("classify", "-b", "cpu", "-k", "1", folder)
    one_error_line(done, EXIT_IMAGE, f"{folder / 'b.jpg'} is a named pipe (FIFO)")
    assert "military uniform" in done.stdout  # the good image is still classified


def test_devices_are_refused_without_reading_them(capfd):
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-l", "/dev/zero", CAT)
    assert outcome.code == EXIT_LABELS
    assert outcome.err == ("bredos-npu: error: /dev/zero is a device, not a regular file: a label "
                           "file must be a regular file.\n")
    with pytest.raises(ModelError, match="is a device"):
        bredos_npu.load("/dev/zero", backend="cpu")
    with pytest.raises(ImageError, match="is a device"):
        bredos_npu.load(DEFAULT_MODEL, backend="cpu").classify("/dev/urandom")


def test_unreadable_files_have_their_own_exit_codes(tmp_path):
    tmp_path.chmod(0o755)
    locked_model, locked_image = tmp_path / "m.tflite", tmp_path / "i.jpg"
    locked_labels = tmp_path / "l.txt"
    shutil.copy(DEFAULT_MODEL, locked_model)
    shutil.copy(IMAGES / "grace_hopper.jpg", locked_image)
    shutil.copy(LABELS / "imagenet_labels.txt", locked_labels)
    for path in (locked_model, locked_image, locked_labels):
        path.chmod(0)
    one_error_line(run_child("classify", "-b", "cpu", "-m", locked_model, CAT, unprivileged=True),
                   EXIT_MODEL, f"Cannot read model {locked_model}: permission denied.")
    one_error_line(run_child("classify", "-b", "cpu", locked_image, unprivileged=True),
                   EXIT_IMAGE, f"Cannot read image {locked_image}: permission denied.")
    one_error_line(run_child("classify", "-b", "cpu", "-l", locked_labels, CAT, unprivileged=True),
                   EXIT_LABELS, f"Cannot read label file {locked_labels}: permission denied.")
    # a folder that may not be searched: Path.exists() raises there instead of answering
    closed = tmp_path / "closed"
    closed.mkdir()
    shutil.copy(IMAGES / "grace_hopper.jpg", closed / "a.jpg")
    closed.chmod(0o600)
    done = run_child("classify", "-b", "cpu", "-k", "1", closed / "a.jpg", CAT, unprivileged=True)
    one_error_line(done, EXIT_IMAGE, f"Cannot read image {closed / 'a.jpg'}: permission denied.")
    assert "Egyptian cat" in done.stdout
    one_error_line(run_child("inspect", closed / "a.tflite", unprivileged=True), EXIT_MODEL,
                   "permission denied")


def test_paths_too_long(capfd, tmp_path):
    long_path = tmp_path / TOO_LONG
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-m", long_path, CAT)
    assert outcome.code == EXIT_MODEL and "the path is too long" in outcome.err
    assert len(outcome.err.splitlines()) == 1
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-l", long_path, CAT)
    assert outcome.code == EXIT_LABELS and "the path is too long" in outcome.err
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-k", "1", CAT, long_path)
    assert outcome.code == EXIT_IMAGE and "Egyptian cat" in outcome.out
    assert "the path is too long" in outcome.err
    with pytest.raises(LabelsError, match="too long"):
        bredos_npu.load(DEFAULT_MODEL, backend="cpu", labels=long_path)
