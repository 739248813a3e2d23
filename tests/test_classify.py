"""`bredos-npu classify` and `bredos_npu.load(...).classify(...)` on real models and images."""

from __future__ import annotations

import json
import re

import pytest
from cli_runner import run_child, run_cli
from conftest import CAT, DEFAULT_MODEL, IMAGES, LABELS, MODELS
from PIL import Image

import bredos_npu
from bredos_npu.errors import EXIT_IMAGE, EXIT_LABELS, EXIT_MODEL


@pytest.fixture(scope="module")
def mobilenet_v2():
    return bredos_npu.load(DEFAULT_MODEL, backend="cpu")


def test_cat_is_egyptian_cat(mobilenet_v2):
    best = mobilenet_v2.classify(CAT, top_k=3)
    assert best[0].index == 286 and best[0].label == "Egyptian cat"
    assert 0.7 <= best[0].score <= 0.85
    assert [c.score for c in best] == sorted((c.score for c in best), reverse=True)


def test_grace_hopper_wears_a_military_uniform(mobilenet_v2):
    best = mobilenet_v2.classify(IMAGES / "grace_hopper.bmp", top_k=1)[0]
    assert (best.index, best.label) == (653, "military uniform")


def test_jpeg_input(mobilenet_v2):
    assert mobilenet_v2.classify(IMAGES / "grace_hopper.jpg", top_k=1)[0].index == 653


def test_sunflower_is_daisy_on_mobilenet_v1():
    model = bredos_npu.load(MODELS / "mobilenet_v1_0.5_160_quant.tflite", backend="cpu")
    assert model.input_size == (160, 160)
    best = model.classify(IMAGES / "sunflower.bmp", top_k=1)[0]
    assert (best.index, best.label) == (986, "daisy")


def test_scores_are_dequantized_with_the_output_scale(mobilenet_v2):
    scores = mobilenet_v2.scores(CAT)
    raw = mobilenet_v2.invoke(mobilenet_v2.preprocess(CAT))[0].reshape(-1)
    # output scale 1/256, zero point 0: 286 is raw/256, not the circulating script's raw/255
    assert mobilenet_v2.outputs[0].quant == (1 / 256, 0)
    assert scores[286] == raw[286] / 256
    assert scores.min() >= 0 and scores.max() <= 1


def test_exif_orientation_is_applied(mobilenet_v2, tmp_path):
    # Store the cat rotated 90° with an EXIF tag that says "rotate back": same answer.
    rotated = Image.open(CAT).convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    path = tmp_path / "sideways.jpg"
    rotated.save(path, exif=exif, quality=95)
    upright = mobilenet_v2.classify(path, top_k=1)[0]
    assert upright.index == 286


def test_grey_and_rgba_images_are_converted(mobilenet_v2, tmp_path):
    Image.open(CAT).convert("RGBA").save(tmp_path / "cat.png")
    assert mobilenet_v2.classify(tmp_path / "cat.png", top_k=1)[0].index == 286


def test_array_and_pil_inputs_match_path_input(mobilenet_v2):
    import numpy as np

    from_path = mobilenet_v2.scores(CAT)
    from_pil = mobilenet_v2.scores(Image.open(CAT))
    from_array = mobilenet_v2.scores(np.asarray(Image.open(CAT).convert("RGB")))
    assert np.array_equal(from_path, from_pil) and np.array_equal(from_path, from_array)


def test_float_model_runs_on_cpu_with_inputs_in_minus_one_to_one():
    model = bredos_npu.load(MODELS / "mobilenet_v1_0.25_224_float.tflite", backend="cpu",
                            labels=LABELS / "imagenet_labels.txt")
    assert model.inputs[0].dtype.kind == "f"
    best = model.classify(CAT, top_k=1)[0]
    assert (best.index, best.label) == (286, "Egyptian cat")
    assert 0.4 <= best.score <= 0.6


def test_model_without_labels_names_classes_by_index():
    model = bredos_npu.load(MODELS / "mobilenet_v1_0.25_224_float.tflite", backend="cpu")
    assert model.labels is None
    assert model.classify(CAT, top_k=1)[0].label == "286"


def test_labels_file_with_1001_lines_maps_index_to_line(tmp_path):
    model = bredos_npu.load(DEFAULT_MODEL, backend="cpu", labels=LABELS / "imagenet_labels.txt")
    assert model.classify(CAT, top_k=1)[0].label == "Egyptian cat"


def test_labels_file_without_background_line_is_shifted(tmp_path):
    lines = (LABELS / "imagenet_labels.txt").read_text().splitlines()[1:]
    (tmp_path / "1000.txt").write_text("\n".join(lines) + "\n")
    model = bredos_npu.load(DEFAULT_MODEL, backend="cpu", labels=tmp_path / "1000.txt")
    assert model.classify(CAT, top_k=1)[0].label == "Egyptian cat"


# --- the command line -------------------------------------------------------------------------

def test_default_job_classifies_the_bundled_cat(capfd):
    outcome = run_cli(capfd, "classify", "--backend", "cpu")
    assert outcome.code == 0, outcome.err
    assert "mobilenet_v2_1.0_224_quant.tflite (bundled default)" in outcome.out
    assert "1. Egyptian cat" in outcome.out
    assert "load " in outcome.out and "preprocess " in outcome.out and "inference " in outcome.out


def test_auto_without_npu_says_why_once_on_stderr(capfd, fake_system, monkeypatch):
    fake_system.soc("radxa,rock-5b", "rockchip,rk3588")
    fake_system.kernel("6.12.0")
    monkeypatch.setenv("BREDOS_NPU_ROOT", str(fake_system.base))
    outcome = run_cli(capfd, "classify", CAT)
    assert outcome.code == 0
    assert outcome.err.count("\n") == 1
    # the doctor's first failed check: a kernel without rocket (not the missing node it implies)
    assert "Linux 6.12.0 is older than 6.18" in outcome.err and "running on the CPU" in outcome.err


def test_json_output(capfd):
    outcome = run_cli(capfd, "classify", CAT, IMAGES / "grace_hopper.bmp", "--json", "-k", "2",
                      "-b", "cpu")
    assert outcome.code == 0
    data = json.loads(outcome.out)
    assert [r["classes"][0]["index"] for r in data["results"]] == [286, 653]
    assert len(data["results"][0]["classes"]) == 2
    assert data["backend"]["name"] == "cpu" and data["backend"]["nodes"]["model_nodes"] == 66
    assert data["results"][0]["inference_ms"] > 0


def test_scores_print_as_percentages(capfd):
    outcome = run_cli(capfd, "classify", CAT, "-b", "cpu", "-k", "1")
    line = next(ln for ln in outcome.out.splitlines() if "Egyptian cat" in ln)
    percent = float(line.split()[-2].rstrip("%"))
    assert 70 <= percent <= 85


def expect_error(capfd, code: int, message: str, *args: str) -> None:
    outcome = run_cli(capfd, *args)
    assert outcome.code == code, (outcome.out, outcome.err)
    assert "Traceback" not in outcome.err
    assert message in outcome.err
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1, lines


def test_missing_model(capfd, tmp_path):
    expect_error(capfd, EXIT_MODEL, f"Model file not found: {tmp_path / 'nope.tflite'}: check the "
                 "path, or name a model from `bredos-npu models list`.",
                 "classify", "-m", tmp_path / "nope.tflite", CAT)


def test_not_a_tflite_file(capfd):
    expect_error(capfd, EXIT_MODEL, f"{CAT} is not a TensorFlow Lite model (no 'TFL3' identifier)",
                 "classify", "-m", CAT, CAT)


def test_truncated_model(capfd, tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(DEFAULT_MODEL.read_bytes()[:200_000])
    expect_error(capfd, EXIT_MODEL, f"{cut} is truncated or corrupt", "classify", "-m", cut, CAT)


def test_unresolvable_custom_op(capfd):
    model = MODELS / "model_invoking_error.tflite"
    expect_error(capfd, EXIT_MODEL,
                 f"{model} uses the custom operator 'fake-op-double', which this TFLite runtime "
                 "does not provide", "classify", "-m", model, "-b", "cpu", CAT)


def test_missing_image(capfd, tmp_path):
    expect_error(capfd, EXIT_IMAGE, f"Image not found: {tmp_path / 'x.jpg'}: check the path.",
                 "classify", "-b", "cpu", tmp_path / "x.jpg")


def test_corrupt_image(capfd, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a picture")
    expect_error(capfd, EXIT_IMAGE, f"{bad} is not an image Pillow can read", "classify", "-b", "cpu", bad)


def test_truncated_image(capfd, tmp_path):
    cut = tmp_path / "cut.jpg"
    cut.write_bytes((IMAGES / "grace_hopper.jpg").read_bytes()[:5000])
    expect_error(capfd, EXIT_IMAGE, f"Image {cut} is truncated or corrupt", "classify", "-b", "cpu", cut)


def test_unreadable_image(tmp_path):
    # Root reads any file: the child runs without that privilege (see run_child).
    locked = tmp_path / "locked.bmp"
    locked.write_bytes(CAT.read_bytes())
    locked.chmod(0)
    tmp_path.chmod(0o755)
    done = run_child("classify", "-b", "cpu", locked, unprivileged=True)
    assert done.returncode == EXIT_IMAGE
    assert done.stderr == f"bredos-npu: error: Cannot read image {locked}: permission denied.\n"


def test_one_bad_image_among_good_ones_still_classifies_the_rest(capfd, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    outcome = run_cli(capfd, "classify", "-b", "cpu", CAT, bad, IMAGES / "grace_hopper.bmp")
    assert outcome.code == EXIT_IMAGE
    assert "Egyptian cat" in outcome.out and "military uniform" in outcome.out
    assert re.search(r"^bredos-npu: 2 of 3 images classified, 1 failed in [\d.]+ s \([\d.]+ images/s\)\.$",
                     outcome.err, re.MULTILINE)


def test_label_file_that_does_not_fit(capfd):
    labels = LABELS / "coco_labels.txt"
    expect_error(capfd, EXIT_LABELS,
                 f"The label file {labels} has 90 labels but the model has 1001 classes: "
                 "pass the label file that belongs to this model.",
                 "classify", "-b", "cpu", "-l", labels, CAT)


def test_missing_label_file(capfd, tmp_path):
    expect_error(capfd, EXIT_LABELS, "Label file not found", "classify", "-b", "cpu",
                 "-l", tmp_path / "labels.txt", CAT)


def test_debug_shows_the_traceback_and_keeps_the_exit_code(capfd, tmp_path):
    outcome = run_cli(capfd, "classify", "--debug", "-m", tmp_path / "nope.tflite")
    assert outcome.code == EXIT_MODEL
    assert "Traceback (most recent call last)" in outcome.err
    assert outcome.err.rstrip().splitlines()[-1].startswith("bredos-npu: error: Model file not found")


def test_detection_model_is_not_a_classifier(capfd):
    model = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
    expect_error(capfd, EXIT_MODEL,
                 f"{model} is not an image classifier with one score per class (outputs 1x10x4, "
                 "1x10, 1x10, 1): it looks made for `bredos-npu detect`.", "classify", "-m", model)


def test_model_with_several_inputs_is_not_a_classifier(capfd):
    model = MODELS / "split_concat.tflite"
    expect_error(capfd, EXIT_MODEL,
                 f"{model} has 3 inputs: classify needs a model with one image input.",
                 "classify", "-b", "cpu", "-m", model)


def test_model_whose_input_is_not_an_image(tmp_path):
    from tflite_builder import ModelBuilder

    m = ModelBuilder()
    x = m.tensor((1, 3, 8, 8), "uint8", (1 / 128,), (128,))  # channels first
    path = tmp_path / "nchw.tflite"
    path.write_bytes(m.build([x], [m.unary("RELU", x)]))
    model = bredos_npu.load(path, backend="cpu")
    with pytest.raises(bredos_npu.ModelError, match=r"takes an input of shape 1x3x8x8, not an image"):
        model.prepare(CAT)


def test_16_bit_images_are_scaled_not_clipped(mobilenet_v2, tmp_path):
    import numpy as np

    grey = np.asarray(Image.open(CAT).convert("L"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "cat16.png")
    assert Image.open(tmp_path / "cat16.png").mode == "I;16"
    assert mobilenet_v2.classify(tmp_path / "cat16.png", top_k=1) == \
        mobilenet_v2.classify(Image.fromarray(grey), top_k=1)


def test_not_an_image_object(mobilenet_v2):
    with pytest.raises(bredos_npu.ImageError,
                       match=r"must be a path, a PIL image, a uint8 array or a binary file, not int"):
        mobilenet_v2.classify(42)


@pytest.mark.parametrize("value", ["0", "nan", "inf"])
def test_input_std_must_be_usable(capfd, value):
    outcome = run_cli(capfd, "classify", "-b", "cpu", "--input-std", value, CAT)
    assert outcome.code == 2
    assert "--input-std a finite number other than 0" in outcome.err


def test_missing_labels_are_pointed_out(capfd):
    model = MODELS / "mobilenet_v1_0.25_224_float.tflite"
    outcome = run_cli(capfd, "classify", "-b", "cpu", "-m", model, CAT)
    assert "labels:  none in the model (pass --labels FILE to name the classes)" in outcome.out
