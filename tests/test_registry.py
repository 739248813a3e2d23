"""The task registry: tasks are modules, and the API, the CLI and the zoo all come from it."""

from __future__ import annotations

import csv
import json
import sys
import textwrap

import pytest
from cli_runner import run_cli
from conftest import CAT, DEFAULT_MODEL, IMAGES, MODELS

import bredos_npu
from bredos_npu.errors import EXIT_USAGE, Reason
from bredos_npu.tasks import registry

SSD = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
DEEPLAB = MODELS / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
MOVENET = MODELS / "movenet_single_pose_lightning_ptq.tflite"
BIRD = IMAGES / "bird_segmentation.bmp"


def test_the_four_tasks_are_found_by_module():
    assert registry.names() == ("classify", "detect", "pose", "segment")
    assert registry.get("detect").default_model == "ssd-mobilenet-v1"
    assert [o.name for o in registry.get("detect").options] == ["threshold", "max_results"]


def test_run_task_is_what_the_named_methods_return():
    model = bredos_npu.load(DEFAULT_MODEL, "cpu")
    assert model.run_task("classify", CAT, top_k=3) == model.classify(CAT, top_k=3)
    assert model.run_task("classify", CAT)[0].label == "Egyptian cat"  # top_k defaults to 5
    many = list(model.run_task_many("classify", [CAT, CAT], top_k=2))
    assert [r.value for r in many] == [model.classify(CAT, top_k=2)] * 2


def test_unknown_tasks_and_options_are_usage_errors():
    model = bredos_npu.load(DEFAULT_MODEL, "cpu")
    with pytest.raises(bredos_npu.BredosNpuError) as unknown:
        model.run_task("caption", CAT)
    assert unknown.value.reason is Reason.UNKNOWN_TASK and unknown.value.exit_code == EXIT_USAGE
    assert "choose one of classify, detect, pose, segment" in str(unknown.value)
    with pytest.raises(bredos_npu.BredosNpuError) as option:
        model.run_task("classify", CAT, threshold=0.5)
    assert option.value.reason is Reason.BAD_VALUE and option.value.data["option"] == "threshold"
    with pytest.raises(bredos_npu.BredosNpuError, match="top_k must be 1 or more, not 0"):
        model.classify(CAT, top_k=0)


def test_wrong_model_for_a_task_names_the_task_that_fits():
    detector = bredos_npu.load(SSD, "cpu")
    with pytest.raises(bredos_npu.ModelError) as error:
        detector.classify(CAT)
    assert error.value.reason is Reason.WRONG_TASK
    assert error.value.data["fits"] == "detect" and error.value.data["task"] == "classify"
    assert str(error.value).endswith("it looks made for the detect task.")


def test_segment_and_pose_write_csv(capfd, tmp_path):
    shares = tmp_path / "shares.csv"
    outcome = run_cli(capfd, "segment", "-m", DEEPLAB, "-b", "cpu", BIRD, "--csv", shares)
    assert outcome.code == 0, outcome.err
    rows = list(csv.DictReader(shares.open()))
    assert list(rows[0]) == ["image", "id", "label", "share", "error"]
    reference = bredos_npu.load(DEEPLAB, "cpu").segment(BIRD).shares
    assert [(int(r["id"]), float(r["share"])) for r in rows] == [(s.id, round(s.share, 6)) for s in reference]

    points = tmp_path / "points.csv"
    outcome = run_cli(capfd, "pose", "-m", MOVENET, "-b", "cpu", CAT, "--csv", points)
    assert outcome.code == 0, outcome.err
    rows = list(csv.DictReader(points.open()))
    assert [r["name"] for r in rows][:2] == ["nose", "left_eye"] and len(rows) == 17


def test_pose_takes_no_labels(capfd):
    outcome = run_cli(capfd, "pose", "-m", MOVENET, "--labels", "labels.txt", CAT)
    assert outcome.code == EXIT_USAGE
    assert outcome.err == "bredos-npu pose: no such option '--labels' (see bredos-npu pose --help)\n"


def test_json_per_image_is_the_task_document(capfd):
    outcome = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", IMAGES / "cats_and_dogs.jpg", "--json")
    assert outcome.code == 0, outcome.err
    result = json.loads(outcome.out)["results"][0]
    found = bredos_npu.load(SSD, "cpu").detect(IMAGES / "cats_and_dogs.jpg")
    expected = registry.get("detect").document(found)
    assert result["detections"] == expected["detections"]


ARGMAX_TASK = '''
from bredos_npu.tasks.classify import check
from bredos_npu.tasks.registry import Task


def postprocess(model, outputs, size):
    return int(outputs[0].argmax())


TASK = Task(name="argmax", summary="The index of the highest output.", check=check,
            fits=lambda outputs: False, postprocess=postprocess, result=int,
            document=lambda index: {"index": index}, csv_fields=("index",),
            csv_rows=lambda index: [{"index": index}], text=lambda index: f"  index {index}")
'''


@pytest.fixture
def argmax_task(tmp_path, monkeypatch):
    """A new task added the way the registry promises: one module in the tasks package."""
    import bredos_npu.tasks as package

    (tmp_path / "argmax.py").write_text(textwrap.dedent(ARGMAX_TASK))
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path)])
    registry._load.cache_clear()
    yield
    registry._load.cache_clear()
    sys.modules.pop("bredos_npu.tasks.argmax", None)


def test_a_task_is_one_module(argmax_task, capfd):
    assert "argmax" in registry.names()
    model = bredos_npu.load(DEFAULT_MODEL, "cpu")
    assert model.run_task("argmax", CAT) == model.classify(CAT, top_k=1)[0].index == 286
    outcome = run_cli(capfd, "argmax", "-b", "cpu", CAT, "--json")
    assert outcome.code == 0, outcome.err
    assert json.loads(outcome.out)["results"][0]["index"] == 286
