"""`models import` refuses, before writing anything, what loading the model would refuse later."""

from __future__ import annotations

import pytest
from cli_runner import run_cli
from conftest import LABELS, MODELS

import bredos_npu
from bredos_npu.errors import EXIT_LABELS, EXIT_MODEL, EXIT_USAGE, LabelsError

MOBILENET = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
SSD = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
DEEPLAB = MODELS / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
MOVENET = MODELS / "movenet_single_pose_lightning_ptq.tflite"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("BREDOS_NPU_CACHE", str(folder))
    return folder


def written(cache):
    """Every file the import left in the cache (the index lock file is not the user's)."""
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and p.name != ".lock") \
        if cache.exists() else []


def import_model(capfd, *args):
    return run_cli(capfd, "models", "import", *args)


@pytest.mark.parametrize(("model", "task", "fits"), [
    (MOBILENET, "detect", "classify"), (SSD, "classify", "detect"), (MOVENET, "segment", "pose"),
    (DEEPLAB, "pose", "segment")])
def test_a_task_the_outputs_do_not_fit_is_refused(capfd, cache, model, task, fits):
    outcome = import_model(capfd, model, "--name", "mine", "--task", task)
    assert outcome.code == EXIT_MODEL
    assert outcome.err.count("\n") == 1 and "Traceback" not in outcome.err
    assert f"does not look made for the {task} task" in outcome.err
    assert outcome.err.rstrip().endswith(f"pass --task {fits}.")
    assert written(cache) == []


def loads_with(model, labels):
    """The independent verdict: does ``load`` accept this label file for this model?"""
    try:
        bredos_npu.load(model, "cpu", labels=labels)
    except LabelsError:
        return False
    return True


@pytest.mark.parametrize(("model", "task", "labels", "fit"), [
    (MOBILENET, "classify", "imagenet_labels.txt", True), (MOBILENET, "classify", "coco_labels.txt", False),
    (SSD, "detect", "coco_ssd_labelmap.txt", True), (SSD, "detect", "imagenet_labels.txt", False),
    (DEEPLAB, "segment", "pascal_voc_segmentation_labels.txt", True),
    (DEEPLAB, "segment", "coco_labels.txt", False)])
def test_labels_are_checked_as_loading_checks_them(capfd, cache, model, task, labels, fit):
    accepted = loads_with(model, LABELS / labels)
    assert accepted == fit  # the cases cover both verdicts
    outcome = import_model(capfd, model, "--name", "mine", "--task", task, "--labels", LABELS / labels)
    if accepted:
        assert outcome.code == 0, outcome.err
        assert written(cache) == ["imported.json", "mine.labels.txt", "mine.tflite"]
    else:
        assert outcome.code == EXIT_LABELS and outcome.err.count("\n") == 1, outcome.err
        assert "labels but the model" in outcome.err
        assert written(cache) == []


def test_labels_for_a_task_without_labels_are_refused(capfd, cache):
    outcome = import_model(capfd, MOVENET, "--name", "me", "--task", "pose", "--labels",
                           LABELS / "coco_labels.txt")
    assert outcome.code == EXIT_USAGE and outcome.err.count("\n") == 1
    assert "The pose task uses no labels" in outcome.err
    assert written(cache) == []
    assert import_model(capfd, MOVENET, "--name", "me", "--task", "pose").code == 0


def test_an_unknown_task_is_a_usage_error(capfd, cache):
    outcome = import_model(capfd, MOBILENET, "--name", "mine", "--task", "colourise")
    assert outcome.code == EXIT_USAGE and outcome.err.count("\n") == 1
    assert "Unknown task 'colourise'" in outcome.err and "classify" in outcome.err
    assert written(cache) == []
