"""detect, segment and pose on real models and images, through the API and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from cli_runner import run_cli
from conftest import DEFAULT_MODEL, IMAGES, LABELS, MODELS
from PIL import Image

import bredos_npu
from bredos_npu.errors import EXIT_MODEL
from bredos_npu.tasks.detect import OutputShape, identify_outputs

SSD = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
DEEPLAB = MODELS / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
MOVENET = MODELS / "movenet_single_pose_lightning_ptq.tflite"
PETS = IMAGES / "cats_and_dogs.jpg"
BIRD, BIRD_MASK = IMAGES / "bird_segmentation.bmp", IMAGES / "bird_segmentation_mask.bmp"
SQUAT = IMAGES / "squat.bmp"


@pytest.fixture(scope="module")
def detector():
    return bredos_npu.load(SSD, backend="cpu")


# --- detection --------------------------------------------------------------------------------

def run_by_hand(model_path, image_path):
    """``model_path`` run on ai_edge_litert alone, on the image resized (bilinear) to its input:
    (its outputs, the image's (width, height))."""
    interpreter = Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    _, height, width, _ = detail["shape"]
    with Image.open(image_path) as image:
        size = image.size
        pixels = np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR))
    interpreter.set_tensor(detail["index"], pixels[np.newaxis].astype(detail["dtype"]))
    interpreter.invoke()
    return [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()], size


def reference_detections(image_path, threshold):
    """SSD run by hand: (class id, score, (xmin, ymin, xmax, ymax) in pixels)."""
    # TFLite_Detection_PostProcess: boxes (ymin, xmin, ymax, xmax in 0..1), classes, scores, count
    (boxes, classes, scores, count), size = run_by_hand(SSD, image_path)
    return [(int(classes[0, i]), float(scores[0, i]),
             (boxes[0, i, 1] * size[0], boxes[0, i, 0] * size[1], boxes[0, i, 3] * size[0],
              boxes[0, i, 2] * size[1]))
            for i in range(int(count[0])) if scores[0, i] >= threshold]


def iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    return overlap / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap)


@pytest.mark.parametrize("image", [PETS, IMAGES / "grace_hopper.jpg"], ids=lambda p: p.name)
def test_detections_match_a_bare_interpreter(detector, image):
    """Each reference detection is found with its class and score at IoU >= 0.95 (as pycoral tests)."""
    found = detector.detect(image, threshold=0.3)
    expected = reference_detections(image, threshold=0.3)
    assert expected and len(found) == len(expected)
    for class_id, score, box in expected:
        assert any(d.id == class_id and d.score == pytest.approx(score, abs=0.02)
                   and iou(box, tuple(d.bbox)) >= 0.95 for d in found), (class_id, score, box, found)
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


def test_cats_and_dogs(detector):
    found = detector.detect(PETS, threshold=0.4)
    assert sum(d.label == "cat" for d in found) >= 3 and any(d.label == "dog" for d in found)


def test_threshold_and_max(detector):
    assert all(d.score >= 0.6 for d in detector.detect(PETS, threshold=0.6))
    assert len(detector.detect(PETS, threshold=0.1, max_results=2)) == 2


def test_labels_from_a_file_skip_unknown_ids(detector):
    model = bredos_npu.load(SSD, backend="cpu", labels=LABELS / "coco_ssd_labelmap.txt")
    assert model.label_map[11] == "???"
    assert {d.label for d in model.detect(PETS, threshold=0.4)} <= {"cat", "dog"}


def test_outputs_are_identified_whatever_their_order():
    shapes = [OutputShape("scores", (1, 10)), OutputShape("boxes", (1, 10, 4)),
              OutputShape("count", (1,)), OutputShape("classes", (1, 10))]
    assert identify_outputs(shapes) == (1, 3, 0, 2)
    tf1 = [OutputShape("TFLite_Detection_PostProcess", (1, 10, 4)),
           OutputShape("TFLite_Detection_PostProcess:1", (1, 10)),
           OutputShape("TFLite_Detection_PostProcess:2", (1, 10)),
           OutputShape("TFLite_Detection_PostProcess:3", (1,))]
    assert identify_outputs(tf1) == (0, 1, 2, 3)
    anonymous = [OutputShape("a", (1, 10)), OutputShape("b", (1, 10)), OutputShape("c", (1, 10, 4)),
                 OutputShape("d", (1,))]
    values = [np.array([[0.9, 0.4]]), np.array([[17.0, 3.0]]), np.zeros((1, 2, 4)), np.array([2.0])]
    assert identify_outputs(anonymous, values) == (2, 1, 0, 3)


def test_cli_writes_the_annotated_image_at_the_input_size(capfd, tmp_path):
    target = tmp_path / "pets.png"
    outcome = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", PETS, "-o", target, "--json")
    assert outcome.code == 0, outcome.err
    data = json.loads(outcome.out)
    assert data["results"][0]["picture"] == str(target)
    assert sum(d["label"] == "cat" for d in data["results"][0]["detections"]) >= 3
    with Image.open(target) as picture, Image.open(PETS) as original:
        assert picture.format == "PNG" and picture.size == original.size
        assert np.asarray(picture.convert("RGB")).tolist() != np.asarray(original.convert("RGB")).tolist()


def test_cli_pictures_into_a_folder_for_many_images(capfd, tmp_path):
    outcome = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", PETS, IMAGES / "grace_hopper.jpg",
                      "-o", tmp_path)
    assert outcome.code == 0, outcome.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cats_and_dogs.detect.png",
                                                          "grace_hopper.detect.png"]


def test_cli_does_not_overwrite_a_picture(capfd, tmp_path):
    target = tmp_path / "pets.png"
    target.write_bytes(b"mine")
    outcome = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", PETS, "-o", target)
    assert outcome.code == 9 and "already exists: pass --force" in outcome.err
    assert target.read_bytes() == b"mine"


def test_cli_csv_one_row_per_detection(capfd, tmp_path):
    import csv

    target = tmp_path / "d.csv"
    outcome = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", "--threshold", "0.45", PETS, "--csv", target)
    assert outcome.code == 0
    rows = list(csv.DictReader(target.open()))
    assert list(rows[0]) == ["image", "id", "label", "score", "xmin", "ymin", "xmax", "ymax", "error"]
    assert [r["label"] for r in rows] == ["cat", "cat", "cat", "dog", "dog"]
    assert float(rows[0]["score"]) == pytest.approx(0.668, abs=0.01)


def test_classifier_is_not_a_detector(capfd):
    outcome = run_cli(capfd, "detect", "-m", DEFAULT_MODEL, "-b", "cpu", PETS)
    assert outcome.code == EXIT_MODEL
    assert outcome.err.strip().endswith("is not an SSD-style detector with TFLite_Detection_PostProcess "
                                        "(outputs 1x1001): it looks made for `bredos-npu classify`.")


# --- segmentation -----------------------------------------------------------------------------

def test_bird_segmentation_agrees_with_the_reference_mask():
    # The reference mask comes with the Coral test data for this model. Thresholds: the CPU result
    # agrees on 96% of pixels and reaches 0.82 IoU on the bird; 93% / 0.75 leave room for
    # resampling differences, while a wrong colour order or normalisation falls far below.
    model = bredos_npu.load(DEEPLAB, backend="cpu", labels=LABELS / "pascal_voc_segmentation_labels.txt")
    result = model.segment(BIRD)
    mask = np.asarray(Image.open(BIRD_MASK))
    assert result.classes.shape == mask.shape
    assert (result.classes == mask).mean() >= 0.93
    bird = 3
    overlap = np.logical_and(result.classes == bird, mask == bird).sum()
    union = np.logical_or(result.classes == bird, mask == bird).sum()
    assert overlap / union >= 0.75
    assert [s.label for s in result.shares[:2]] == ["background", "bird"]
    assert sum(s.share for s in result.shares) == pytest.approx(1.0)


def test_segment_cli_overlay(capfd, tmp_path):
    target = tmp_path / "bird.png"
    outcome = run_cli(capfd, "segment", "-m", DEEPLAB, "-b", "cpu", "-l",
                      LABELS / "pascal_voc_segmentation_labels.txt", BIRD, "-o", target)
    assert outcome.code == 0, outcome.err
    assert "bird" in outcome.out and "% of pixels" in outcome.out
    with Image.open(target) as picture:
        assert picture.size == Image.open(BIRD).size


def test_classifier_is_not_a_segmenter(capfd):
    outcome = run_cli(capfd, "segment", "-m", DEFAULT_MODEL, "-b", "cpu", BIRD)
    assert outcome.code == EXIT_MODEL and "is not a segmentation model" in outcome.err


# --- pose -------------------------------------------------------------------------------------

def test_squat_pose_geometry():
    points = {p.name: p for p in bredos_npu.load(MOVENET, backend="cpu").pose(SQUAT)}
    assert len(points) == 17
    body = ["left_shoulder", "right_shoulder", "left_hip", "right_hip", "right_knee", "left_ankle",
            "right_ankle"]
    assert all(points[name].score > 0.3 for name in body)
    shoulders = (points["left_shoulder"].y + points["right_shoulder"].y) / 2
    hips = (points["left_hip"].y + points["right_hip"].y) / 2
    ankles = (points["left_ankle"].y + points["right_ankle"].y) / 2
    assert shoulders < hips < ankles  # image y grows downwards


def test_keypoints_match_a_bare_interpreter():
    """MoveNet run by hand: [1,1,17,3] rows of (y, x, score) in 0..1 of the input, scaled here."""
    (keypoints,), size = run_by_hand(MOVENET, SQUAT)
    expected = keypoints.reshape(17, 3)
    found = bredos_npu.load(MOVENET, backend="cpu").pose(SQUAT)
    for point, (y, x, score) in zip(found, expected, strict=True):
        assert point.x == pytest.approx(x * size[0], abs=0.02 * size[0]), point
        assert point.y == pytest.approx(y * size[1], abs=0.02 * size[1]), point
        assert point.score == pytest.approx(score, abs=0.05), point


def test_pose_cli_json_and_skeleton(capfd, tmp_path):
    target = tmp_path / "squat.png"
    outcome = run_cli(capfd, "pose", "-m", MOVENET, "-b", "cpu", SQUAT, "-o", target, "--json")
    assert outcome.code == 0, outcome.err
    keypoints = json.loads(outcome.out)["results"][0]["keypoints"]
    assert [k["name"] for k in keypoints][:3] == ["nose", "left_eye", "right_eye"] and len(keypoints) == 17
    assert Image.open(target).size == Image.open(SQUAT).size


def test_bulk_pose_over_a_folder_with_a_broken_image(capfd, tmp_path):
    (tmp_path / "a.bmp").write_bytes(SQUAT.read_bytes())
    (tmp_path / "b.jpg").write_bytes(b"broken")
    outcome = run_cli(capfd, "pose", "-m", MOVENET, "-b", "cpu", tmp_path, "--jsonl", tmp_path / "out.jsonl")
    assert outcome.code == 5
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and "keypoints" in lines[0] and "error" in lines[1]


def test_task_commands_need_images(capfd):
    outcome = run_cli(capfd, "pose", "-m", MOVENET)
    assert outcome.code == 2 and "give one or more images or folders to pose" in outcome.err


def test_wrong_label_file_for_a_detector(capfd):
    labels = LABELS / "imagenet_labels.txt"
    outcome = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", "-l", labels, PETS)
    assert outcome.code == 6
    assert f"The label file {labels} has 1001 labels but the model's own label file has 90" in outcome.err


def test_pictures_of_same_named_inputs_do_not_overwrite_each_other(capfd, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        (tmp_path / "in" / folder / "x.jpg").write_bytes(PETS.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    outcome = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", "-r", tmp_path / "in", "-o", out)
    assert outcome.code == 0, outcome.err
    assert sorted(p.name for p in out.iterdir()) == ["x-2.detect.png", "x.detect.png"]


def test_picture_format_follows_the_file_name(capfd, tmp_path):
    target = tmp_path / "pets.jpg"
    assert run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", PETS, "-o", target).code == 0
    assert Image.open(target).format == "JPEG"
    outcome = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", PETS, "-o", tmp_path / "pets.txt")
    assert outcome.code == 9 and "use a .png or .jpg file name" in outcome.err


def test_csv_has_a_row_for_an_image_without_detections(capfd, tmp_path):
    import csv

    target = tmp_path / "d.csv"
    outcome = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", "--threshold", "0.99", PETS, "--csv", target)
    assert outcome.code == 0
    rows = list(csv.DictReader(target.open()))
    assert len(rows) == 1 and rows[0]["image"] == str(PETS) and rows[0]["label"] == ""


def test_wrong_label_file_for_a_segmenter(capfd):
    labels = LABELS / "coco_labels.txt"
    outcome = run_cli(capfd, "segment", "-m", DEEPLAB, "-b", "cpu", "-l", labels, BIRD)
    assert outcome.code == 6
    assert f"The label file {labels} has 90 labels but the model has 21 classes" in outcome.err


def test_api_rejects_unusable_arguments():
    with pytest.raises(bredos_npu.BredosNpuError, match="threads must be 1 or more"):
        bredos_npu.load(SSD, backend="cpu", threads=0)
    detector = bredos_npu.load(SSD, backend="cpu")
    with pytest.raises(bredos_npu.BredosNpuError, match="threshold must be between 0 and 1"):
        detector.detect(PETS, threshold=float("nan"))
    with pytest.raises(bredos_npu.ImageError, match="An image array must be"):
        detector.detect(np.zeros((0, 0, 3), np.uint8))


def test_missing_picture_folder_is_reported_before_any_work(capfd, tmp_path):
    outcome = run_cli(capfd, "detect", "-m", SSD, "-b", "cpu", PETS, BIRD, "-o", tmp_path / "nope")
    assert outcome.code == 9 and outcome.out == ""
    assert "it is not a folder" in outcome.err
