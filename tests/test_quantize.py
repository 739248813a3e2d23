"""bredos-npu quantize: real models through ai-edge-quantizer, checked against bare interpreters.

One real CLI run on the old-style float MobileNetV1 is shared (it is the slow part); the other
tests use the pipeline's steps directly on small inputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from cli_runner import run_cli
from conftest import CAT, DEFAULT_MODEL, IMAGES, LABELS, MODELS
from PIL import Image

from bredos_npu.models.inspection.analysis import inspect_model
from bredos_npu.models.inspection.graph import parse
from bredos_npu.models.quantize import (
    bias_correction,
    calibrate,
    dequantize,
    equalize,
    flatbuffer,
    normalise,
    rounding,
    uint8,
)
from bredos_npu.models.quantize.statistics import channel_stats
from bredos_npu.models.tflite_file import embedded_files

OLD_FLOAT = MODELS / "mobilenet_v1_0.25_224_float.tflite"
PER_CHANNEL = MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
CALIBRATION_PHOTOS = (CAT, IMAGES / "grace_hopper.jpg", IMAGES / "sunflower.bmp", IMAGES / "squat.bmp")
EVALUATION_PHOTOS = (IMAGES / "cats_and_dogs.jpg", IMAGES / "bird_segmentation.bmp")
TIMEOUT = 240


def write_crops(photos: tuple[Path, ...], folder: Path, per_photo: int = 4) -> list[Path]:
    """Centre and corner crops, as 224x224 PNGs (what a camera would give, not the same pixels)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for photo in photos:
        with Image.open(photo) as image:
            rgb = image.convert("RGB")
        w, h = rgb.size
        side = int(min(w, h) * 0.8)
        corners = [((w - side) // 2, (h - side) // 2), (0, 0), (w - side, h - side), (0, h - side)]
        for number, (x, y) in enumerate(corners[:per_photo]):
            path = folder / f"{photo.stem}_{number}.png"
            rgb.crop((x, y, x + side, y + side)).resize((224, 224)).save(path)
            written.append(path)
    return written


def pixels(path: Path, size: int = 224) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


def run(content: bytes, tensor: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


@pytest.fixture(scope="session")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("quantize-images")
    write_crops(CALIBRATION_PHOTOS, base / "calibration")
    write_crops(EVALUATION_PHOTOS, base / "evaluation")
    return base / "calibration", base / "evaluation"


@pytest.fixture(scope="session")
def quantized(tmp_path_factory: pytest.TempPathFactory, folders: tuple[Path, Path]) -> dict:
    """One real `bredos-npu quantize` run (a child process) on the old-style float model."""
    out = tmp_path_factory.mktemp("quantize-out")
    model, report = out / "mnv1_uint8.tflite", out / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "bredos_npu", "quantize", str(OLD_FLOAT), "-o", str(model),
         "--calibration", str(folders[0]), "--evaluation", str(folders[1]),
         "--labels", str(LABELS / "imagenet_labels.txt"), "--report", str(report)],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return {"model": model, "report": json.loads(report.read_text()), "stdout": done.stdout}


def test_old_float_model_is_normalised_and_quantized(quantized: dict) -> None:
    report = quantized["report"]
    assert "operator codes set from deprecated_builtin_code" in report["changes"]
    assert "'serving_default' signature added" in report["changes"]
    content = quantized["model"].read_bytes()
    interpreter = Interpreter(model_content=content)
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert interpreter.get_output_details()[0]["dtype"] == np.uint8
    # The label file given is packed into the model, where `classify` finds it.
    assert "imagenet_labels.txt" in embedded_files(content)
    import bredos_npu

    loaded = bredos_npu.load(quantized["model"], backend="cpu")
    assert loaded.labels is not None and loaded.labels[286] == "Egyptian cat"


def test_every_convolution_is_per_tensor_uint8_and_on_the_npu(quantized: dict) -> None:
    graph = parse(quantized["model"].read_bytes())
    convolutions = [op for op in graph.ops if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(convolutions) == 28
    for op in convolutions:
        for index in op.inputs[:2] + op.outputs:
            tensor = graph.tensors[index]
            assert tensor.dtype == "uint8" and len(tensor.scales) == 1, (op.index, tensor)
    inspection = inspect_model(quantized["model"])
    assert inspection.npu_mac_share == 1.0 and inspection.hazards == []
    assert quantized["report"]["npu_mac_share_before"] < 0.01
    assert quantized["report"]["npu_mac_share_after"] == 1.0


def test_summary_and_report_give_each_method_and_the_choice(quantized: dict) -> None:
    report, out = quantized["report"], quantized["stdout"]
    methods = [m["method"] for m in report["methods"]]
    assert methods == ["plain", "equalized", "equalized+bias-corrected",
                       "equalized+adaptive-rounding", "equalized+adaptive-rounding+empirical"]
    # The choice is made on the calibration images, never on the held-out ones.
    best = max(report["methods"], key=lambda m: (m["calibration_top1_agreement"],
                                                 -m["calibration_mean_abs_score_diff"]))
    assert report["chosen"] == best["method"]
    assert report["chosen"] in methods
    for line in methods:
        assert any(row.startswith(line + " ") for row in out.splitlines())
    assert "<- chosen" in out and "0.6% before, 100.0% after" in out


def test_agreement_is_measured_on_held_out_images_only(quantized: dict,
                                                       folders: tuple[Path, Path]) -> None:
    report = quantized["report"]
    held_out = [Path(p) for p in report["held_out_files"]]
    assert {p.parent for p in held_out} == {folders[1]} and report["held_out_images"] == 8
    # The chosen method's figure, recomputed with bare interpreters on the held-out images.
    source, result = OLD_FLOAT.read_bytes(), quantized["model"].read_bytes()
    same = 0
    for path in held_out:
        image = pixels(path)
        expected = run(source, ((image.astype(np.float32) - 127.5) / 127.5)[np.newaxis])
        got = run(result, image[np.newaxis])
        same += int(expected.argmax() == got.argmax())
    chosen = next(m for m in report["methods"] if m["method"] == report["chosen"])
    assert chosen["top1_agreement"] == same / len(held_out)
    assert report["float_top1_agreement"] == 1.0  # the normalised float model is the source


@pytest.fixture(scope="session")
def float_tree() -> object:
    tree = flatbuffer.read(OLD_FLOAT.read_bytes())
    normalise.normalise(tree)
    return tree


def test_int8_to_uint8_rewrite_is_bit_exact_on_the_cpu(float_tree: object,
                                                       folders: tuple[Path, Path]) -> None:
    images = sorted(folders[0].glob("*.png"))
    inputs = [((pixels(p).astype(np.float32) - 127.5) / 127.5)[np.newaxis] for p in images[:8]]
    int8_model = calibrate.quantize_int8(flatbuffer.to_bytes(float_tree), "serving_default",
                                         "input", "input", inputs, (-1.0, 1.0))
    tree = flatbuffer.read(int8_model)
    assert uint8.to_uint8(tree) > 50
    uint8_model = flatbuffer.to_bytes(tree)
    for path in sorted(folders[1].glob("*.png")):
        image = pixels(path)
        signed = run(int8_model, (image.astype(np.int16) - 128).astype(np.int8)[np.newaxis])
        unsigned = run(uint8_model, image[np.newaxis])
        assert np.array_equal(signed.astype(np.int16) + 128, unsigned.astype(np.int16))


def test_equalization_leaves_a_float_model_unchanged(float_tree: object) -> None:
    import copy

    images = [((pixels(p).astype(np.float32) - 127.5) / 127.5)[np.newaxis]
              for p in (CAT, IMAGES / "grace_hopper.jpg", IMAGES / "sunflower.bmp")]
    original = flatbuffer.to_bytes(float_tree)
    tree = copy.deepcopy(float_tree)
    pairs = equalize.pairs(tree)
    assert len(pairs) == 26  # conv → depthwise → conv ... down MobileNetV1
    equalize.drop_dead_channels(tree, pairs)
    graph = flatbuffer.subgraph(tree)
    outputs = {p.first: graph.operators[p.first].outputs[0] for p in pairs}
    stats = channel_stats(flatbuffer.to_bytes(tree), outputs.values(), images)
    before_weights = flatbuffer.tensor_data(tree, graph.tensors[graph.operators[1].inputs[1]]).copy()
    equalize.equalize(tree, pairs, {op: stats[t].maximum for op, t in outputs.items()})
    after_weights = flatbuffer.tensor_data(tree, graph.tensors[graph.operators[1].inputs[1]])
    assert not np.allclose(before_weights, after_weights)  # it did rescale
    equalized = flatbuffer.to_bytes(tree)
    for tensor in images:
        a, b = run(original, tensor), run(equalized, tensor)
        assert np.abs(a - b).max() < 1e-4
    # The ReLU form (the paper's) is exactly scale-equivariant on any input.
    relu = copy.deepcopy(float_tree)
    equalize.unclip(relu, equalize.pairs(relu))
    unclipped = flatbuffer.to_bytes(relu)
    equalize.equalize(relu, equalize.pairs(relu))
    random = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    assert np.abs(run(unclipped, random) - run(flatbuffer.to_bytes(relu), random)).max() < 1e-4


def test_per_channel_int8_dequantizes_to_the_float_model_it_encodes() -> None:
    source = PER_CHANNEL.read_bytes()
    tree = flatbuffer.read(source)
    assert dequantize.is_integer_model(tree)
    dequantize.dequantize(tree)
    floating = flatbuffer.to_bytes(tree)
    graph = parse(floating)
    assert all(graph.tensors[op.inputs[1]].dtype == "float32" for op in graph.ops
               if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    assert not any(op.name in ("QUANTIZE", "DEQUANTIZE") for op in graph.ops)
    image = pixels(CAT)
    expected = run(source, image[np.newaxis]).astype(np.float32) / 256  # uint8 softmax, scale 1/256
    got = run(floating, ((image.astype(np.float32) - 127) / 127.5)[np.newaxis])
    assert expected.argmax() == got.argmax() == 286
    assert np.abs(expected - got).max() < 0.1


def _no_file_written(folder: Path) -> bool:
    return not any(folder.iterdir())


@pytest.mark.parametrize(("model", "setup", "code", "words"), [
    (OLD_FLOAT, "text", 5, "holds no images"),
    (OLD_FLOAT, "few", 5, "Too few images"),
    (MODELS / "keras_lstm_mnist_ptq.tflite", "photos", 4, "no single image input"),
    (DEFAULT_MODEL, "photos", 4, "already quantized per tensor to uint8"),
])
def test_bad_inputs_get_one_line(capfd: pytest.CaptureFixture[str], tmp_path: Path, model: Path,
                                 setup: str, code: int, words: str) -> None:
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    if setup == "text":
        for number in range(12):
            (calibration / f"notes_{number}.txt").write_text("not a picture")
    elif setup == "few":
        write_crops((CAT,), calibration, per_photo=3)
    else:
        write_crops(CALIBRATION_PHOTOS, calibration)
    out = tmp_path / "out"
    out.mkdir()
    outcome = run_cli(capfd, "quantize", model, "-o", out / "q.tflite", "--calibration", calibration)
    assert outcome.code == code, outcome.err
    assert words in outcome.err and len(outcome.err.strip().splitlines()) == 1
    assert _no_file_written(out)


def test_existing_output_is_never_replaced(capfd: pytest.CaptureFixture[str], tmp_path: Path,
                                           folders: tuple[Path, Path]) -> None:
    target = tmp_path / "q.tflite"
    target.write_bytes(b"mine")
    outcome = run_cli(capfd, "quantize", OLD_FLOAT, "-o", target, "--calibration", folders[0])
    assert outcome.code == 9 and "already exists" in outcome.err
    assert len(outcome.err.strip().splitlines()) == 1 and target.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.tflite"]


def test_missing_extra_is_one_line_and_exit_8(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    blocker = tmp_path / "ai_edge_quantizer"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    done = subprocess.run(
        [sys.executable, "-m", "bredos_npu", "quantize", str(OLD_FLOAT), "-o", str(tmp_path / "q.tflite"),
         "--calibration", str(folders[0])],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin"})
    assert done.returncode == 8, done.stderr
    assert "pip install 'bredos-npu[quantize]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _inputs(paths: list[Path]) -> list[np.ndarray]:
    return [((pixels(p).astype(np.float32) - 127.5) / 127.5)[np.newaxis] for p in paths]


def _output_error(model: bytes, reference: bytes, paths: list[Path]) -> float:
    """Mean absolute difference of the dequantized scores of ``model`` (int8 input) and the
    float ``reference`` on the images at ``paths``."""
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    out = interpreter.get_output_details()[0]
    scale, zero_point = out["quantization"]
    errors = []
    for path in paths:
        image = pixels(path)
        got = run(model, (image.astype(np.int16) - 128).astype(np.int8)[np.newaxis])
        expected = run(reference, ((image.astype(np.float32) - 127.5) / 127.5)[np.newaxis])
        errors.append(np.abs(scale * (got.astype(np.float32) - zero_point) - expected).mean())
    return float(np.mean(errors))


@pytest.fixture(scope="session")
def nearest(float_tree: object, folders: tuple[Path, Path]) -> bytes:
    """The plain tensor-wise int8 model of the float MobileNetV1 (weights rounded to nearest)."""
    inputs = _inputs(sorted(folders[0].glob("*.png")))
    return calibrate.quantize_int8(flatbuffer.to_bytes(float_tree), "serving_default", "input",
                                   "input", inputs, (-1.0, 1.0))


def test_mean_output_from_mean_input_taps_is_exact(float_tree: object) -> None:
    import copy

    tree = copy.deepcopy(float_tree)
    graph = flatbuffer.subgraph(tree)
    checked = 0
    for index in (0, 1, 2, 3):  # strided 3x3 convolution, depthwise, 1x1, strided depthwise
        op = graph.operators[index]
        op.builtinOptions.fusedActivationFunction = 0  # NONE: the output is the linear part
        content = flatbuffer.to_bytes(tree)
        maps = bias_correction.mean_maps(content, [op.inputs[0], op.outputs[0]],
                                         _inputs([CAT, IMAGES / "grace_hopper.jpg"]))
        weights = flatbuffer.tensor_data(tree, graph.tensors[op.inputs[1]]).astype(np.float64)
        bias = flatbuffer.tensor_data(tree, graph.tensors[op.inputs[2]])
        taps = bias_correction.tap_means(maps[op.inputs[0]], weights.shape[1:3],
                                         bias_correction.geometry(tree, op))
        predicted = bias_correction.mean_output(flatbuffer.opcode_name(tree, op), weights, taps) + bias
        measured = maps[op.outputs[0]].mean(axis=(0, 1))
        assert np.abs(predicted - measured).max() < 1e-4 * max(1.0, np.abs(measured).max())
        checked += 1
    assert checked == 4


def test_adaptive_rounding_lowers_the_output_error(float_tree: object, nearest: bytes,
                                                   folders: tuple[Path, Path]) -> None:
    import copy

    calibration = sorted(folders[0].glob("*.png"))
    tree = copy.deepcopy(float_tree)
    convolutions = bias_correction.correctable(tree)
    moments = rounding.input_moments(tree, flatbuffer.to_bytes(tree), convolutions,
                                     _inputs(calibration[:8]))
    assert rounding.adaptive_round(tree, moments) == len(convolutions) == 28
    rounded = calibrate.quantize_int8(flatbuffer.to_bytes(tree), "serving_default", "input",
                                      "input", _inputs(calibration), (-1.0, 1.0))
    # The quantizer kept the grid points chosen: its weights are the rounded float weights.
    int_tree = flatbuffer.read(rounded)
    int_graph, graph = flatbuffer.subgraph(int_tree), flatbuffer.subgraph(tree)
    for index in convolutions:
        ours = flatbuffer.tensor_data(tree, graph.tensors[graph.operators[index].inputs[1]])
        theirs = bias_correction._real_weights(int_tree, int_graph.tensors[
            int_graph.operators[index].inputs[1]])
        assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(ours).max()
    source = flatbuffer.to_bytes(float_tree)
    held_out = sorted(folders[1].glob("*.png"))
    before, after = _output_error(nearest, source, held_out), _output_error(rounded, source, held_out)
    assert after < 0.8 * before, (before, after)


def test_empirical_bias_correction_lowers_the_output_error(float_tree: object, nearest: bytes,
                                                           folders: tuple[Path, Path]) -> None:
    source = flatbuffer.to_bytes(float_tree)
    calibration = _inputs(sorted(folders[0].glob("*.png"))[:8])
    corrected = bias_correction.empirical_correct(source, nearest, calibration)
    held_out = sorted(folders[1].glob("*.png"))
    before, after = _output_error(nearest, source, held_out), _output_error(corrected, source, held_out)
    assert after < 0.9 * before, (before, after)
