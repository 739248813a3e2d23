"""``bredos_npu.quantize``: a float or per-channel int8 model in, a Teflon-ready uint8 model out.

Steps (one module each): normalise old files, dequantize integer models, then for each method
(plain; equalized; equalized + bias-corrected; equalized + adaptive rounding; that + empirical
bias correction) quantize tensor-wise int8 with ai-edge-quantizer, rewrite to uint8 exactly, and
measure agreement with the source model on the calibration images (which choose the method) and
on held-out images (which only report it). The chosen model is checked (loads, every convolution
on the NPU per ``inspect``, no hazard) and written atomically, never over an existing file.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bredos_npu.errors import ModelError, OutputError, Reason
from bredos_npu.models.inspection import rules
from bredos_npu.models.inspection.analysis import inspect_model
from bredos_npu.models.inspection.graph import Graph, parse
from bredos_npu.models.labels import read_label_file
from bredos_npu.models.metadata import input_normalization
from bredos_npu.models.quantize import (
    bias_correction,
    calibrate,
    check,
    convert,
    dequantize,
    equalize,
    flatbuffer,
    images,
    normalise,
    rounding,
    uint8,
)
from bredos_npu.models.quantize.evaluate import Runner, agreement
from bredos_npu.models.quantize.statistics import channel_stats
from bredos_npu.models.tflite_file import embedded_files, read_model_bytes
from bredos_npu.outputs import check_output, new_file_mode
from bredos_npu.tasks.quant import DEFAULT_MEAN, DEFAULT_STD

PLAIN, EQUALIZED, CORRECTED = "plain", "equalized", "equalized+bias-corrected"
ROUNDED, EMPIRICAL = "equalized+adaptive-rounding", "equalized+adaptive-rounding+empirical"
METHODS = (PLAIN, EQUALIZED, CORRECTED, ROUNDED, EMPIRICAL)
# Calibration images whose statistics drive adaptive rounding and empirical bias correction:
# their cost grows with each image, their benefit levels off (MobileNetV2, 2 cores: ~1 s each).
ROUNDING_IMAGES = 64
EMPIRICAL_IMAGES = 32
Progress = Callable[[str], None]


@dataclass(frozen=True)
class MethodResult:
    """Agreement of one method's uint8 model with the source: on the held-out images (the
    figures to trust) and on the calibration images (the ones that choose the method).

    ``top1_agreement``: share (0..1) of images whose best class is the source's.
    ``mean_abs_score_diff``: mean absolute difference of the class probabilities (0..1 scale).
    The ``calibration_`` fields are the same figures on the calibration images.
    """

    method: str
    top1_agreement: float
    mean_abs_score_diff: float
    calibration_top1_agreement: float
    calibration_mean_abs_score_diff: float


@dataclass
class QuantizeResult:
    """What :func:`quantize` did and measured. Shares and agreements are 0..1; ``seconds`` is
    the wall-clock time it took; ``source``/``output`` are file paths."""

    source: str
    output: str
    chosen: str
    methods: list[MethodResult]
    float_top1_agreement: float  # the dequantized/normalised float model vs the source: a ceiling
    npu_mac_share_before: float
    npu_mac_share_after: float
    npu_summary_after: str
    calibration_images: int
    held_out_images: int
    held_out_files: list[str]
    changes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Every field, nested results included, as JSON-ready dicts and lists."""
        return asdict(self)


def _image_input(graph: Graph, path: Path) -> tuple[tuple[int, int], int]:
    """((width, height), channels) of the model's single image input."""
    shapes = [graph.tensors[i].shape for i in graph.inputs]
    if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][3] not in (1, 3):
        shown = ", ".join("x".join(map(str, s)) for s in shapes) or "none"
        raise ModelError(f"{path} has no single image input (inputs: {shown}): quantize takes "
                         "models with one NHWC image input.")
    _, height, width, channels = shapes[0]
    return (width, height), channels


def _refuse_ready(graph: Graph, path: Path) -> None:
    convolutions = [op for op in graph.ops if op.name in rules.CONVOLUTIONS]
    if not convolutions:
        raise ModelError(f"{path} has no convolutions: the NPU runs convolutions only, so there is "
                         "nothing to quantize for it.")
    ready = all(graph.tensors[op.inputs[1]].dtype == "uint8" and not graph.tensors[op.inputs[1]].per_axis
                for op in convolutions)
    if ready:
        raise ModelError(f"{path} is already quantized per tensor to uint8: it is ready for the NPU "
                         "as it is", "check it with bredos_npu.inspect()", Reason.ALREADY_NPU_READY,
                         path=path)


def _normalisation(content: bytes) -> tuple[Any, Any, tuple[float, float]]:
    """(mean, std, real input range of pixels 0..255) for the model's float input."""
    found = input_normalization(content)
    mean, std = (found.mean, found.std) if found else (DEFAULT_MEAN, DEFAULT_STD)
    m, s = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    low, high = (0 - m) / s, (255 - m) / s
    return mean, std, (float(np.min(low)), float(np.max(high)))


def _variants(tree: Any, inputs: list[np.ndarray], progress: Progress) -> dict[str, Any]:
    """The float model of each method quantized by ai-edge-quantizer as it is."""
    variants = {PLAIN: tree}
    equalized = copy.deepcopy(tree)
    pairs = equalize.pairs(equalized)
    graph = flatbuffer.subgraph(equalized)
    if pairs:
        equalize.drop_dead_channels(equalized, pairs)
        progress(f"equalizing {len(pairs)} convolution pairs")
        outputs = {p.first: graph.operators[p.first].outputs[0] for p in pairs}
        stats = channel_stats(flatbuffer.to_bytes(equalized), outputs.values(), inputs)
        equalize.equalize(equalized, pairs, {op: stats[t].maximum for op, t in outputs.items()})
    variants[EQUALIZED] = equalized
    corrected = copy.deepcopy(equalized)
    convolutions = bias_correction.correctable(corrected)
    progress(f"bias correction of {len(convolutions)} convolutions")
    tensors = {op: graph.operators[op].inputs[0] for op in convolutions}
    stats = channel_stats(flatbuffer.to_bytes(corrected), tensors.values(), inputs)
    bias_correction.correct(corrected, {op: stats[t].mean for op, t in tensors.items()})
    variants[CORRECTED] = corrected
    rounded = copy.deepcopy(equalized)
    progress(f"adaptive rounding of {len(convolutions)} convolutions")
    moments = rounding.input_moments(rounded, flatbuffer.to_bytes(rounded), convolutions,
                                     inputs[:ROUNDING_IMAGES])
    rounding.adaptive_round(rounded, moments)
    variants[ROUNDED] = rounded
    return variants


def _to_uint8(int8_model: bytes, packed: dict[str, bytes]) -> bytes:
    tree = flatbuffer.read(int8_model)
    uint8.to_uint8(tree)
    return flatbuffer.to_bytes(tree, packed)


def quantize(model: str | os.PathLike[str], output: str | os.PathLike[str],
             calibration: str | os.PathLike[str], *, count: int = 200,
             labels: str | os.PathLike[str] | None = None,
             evaluation: str | os.PathLike[str] | None = None,
             progress: Progress | None = None) -> QuantizeResult:
    """Quantize ``model`` (float, or per-channel int8 .tflite) to per-tensor uint8 for the NPU.

    ``model`` may also be a SavedModel folder or a ``.keras``/``.h5`` file (with the ``convert``
    extra: TensorFlow) or an ``.onnx`` file (with the ``onnx`` extra: onnx2tf), converted to a
    float .tflite first (:mod:`.convert`).

    ``calibration``: a folder of images like those the model will see; up to ``count`` of them
    calibrate, and every fourth is held out to measure agreement (or all of ``evaluation``'s
    images when that folder is given). ``labels``: a label file to pack into the output (the
    source's packed labels and metadata are kept anyway). Raises OutputError when ``output``
    exists, ModelError for a model that cannot or need not be quantized, ImageError for unusable
    images, RuntimeMissingError without the ``quantize`` extra.
    """
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    calibrate.require()
    target = check_output(output, force=True)  # the folder must exist; the file must not:
    if target.exists() or target.is_symlink():
        raise OutputError(f"{target} already exists: choose another name (quantize never replaces "
                          "a file).")
    path = Path(model)
    converted = convert.needs_conversion(path)
    content = convert.to_float_tflite(path, say) if converted else read_model_bytes(path)
    graph = parse(content, path)
    size, channels = _image_input(graph, path)
    _refuse_ready(graph, path)
    packed = embedded_files(content)
    if labels is not None:
        read_label_file(labels)  # one clear sentence for a bad file
        packed[Path(labels).name] = Path(labels).read_bytes()
    before = inspect_model(content)

    tree = flatbuffer.read(content)
    changes = ["converted to a float .tflite"] if converted else []
    if dequantize.is_integer_model(tree):
        dequantize.dequantize(tree)
        changes.append("dequantized to float")
    changes += normalise.normalise(tree)
    float_content = flatbuffer.to_bytes(tree)
    mean, std, input_range = _normalisation(content)
    sets = images.image_sets(calibration, count, size, channels, evaluation)
    say(f"{len(sets.calibration)} calibration images, {len(sets.held_out)} held out")
    float_runner = Runner(float_content, mean, std)
    inputs = [float_runner.input_tensor(p) for p in sets.calibration]
    source = Runner(content, mean, std)
    source_held_out = [source.scores(p) for p in sets.held_out]
    source_calibration = [source.scores(p) for p in sets.calibration]
    ceiling = agreement(source_held_out, float_runner, sets.held_out)

    signature = tree.signatureDefs[0]
    key = _text(signature.signatureKey)
    input_name = normalise.signature_input_name(tree)
    input_tensor = _text(flatbuffer.subgraph(tree).tensors[signature.inputs[0].tensorIndex].name)

    results: list[tuple[MethodResult, bytes]] = []
    variants = _variants(tree, inputs, say)
    reference = flatbuffer.to_bytes(variants[EQUALIZED])
    for method, variant in variants.items():
        say(f"quantizing: {method}")
        int8_model = calibrate.quantize_int8(flatbuffer.to_bytes(variant), key, input_name,
                                             input_tensor, inputs, input_range)
        models = [(method, int8_model)]
        if method == ROUNDED:
            say(f"quantizing: {EMPIRICAL}")
            models.append((EMPIRICAL, bias_correction.empirical_correct(
                reference, int8_model, inputs[:EMPIRICAL_IMAGES])))
        for name, model_bytes in models:
            candidate = _to_uint8(model_bytes, packed)
            check.loads(candidate)
            results.append((_measure(name, Runner(candidate), sets, source_held_out,
                                     source_calibration), candidate))
    # Chosen on the calibration images only: the held-out figures stay an honest estimate.
    best, best_content = max(results, key=lambda r: (r[0].calibration_top1_agreement,
                                                     -r[0].calibration_mean_abs_score_diff))
    after = _write_checked(best_content, target)
    return QuantizeResult(
        source=str(path), output=str(target), chosen=best.method, methods=[r for r, _ in results],
        float_top1_agreement=ceiling.top1, npu_mac_share_before=before.npu_mac_share,
        npu_mac_share_after=after.npu_mac_share, npu_summary_after=after.summary,
        calibration_images=len(sets.calibration), held_out_images=len(sets.held_out),
        held_out_files=[str(f) for f in sets.held_out_files], changes=changes,
        seconds=time.perf_counter() - started)


def _measure(method: str, candidate: Runner, sets: images.ImageSets, held_out: list[np.ndarray],
             calibration: list[np.ndarray]) -> MethodResult:
    """Agreement of ``candidate`` with the source's scores on both image sets."""
    test = agreement(held_out, candidate, sets.held_out)
    fit = agreement(calibration, candidate, sets.calibration)
    return MethodResult(method, test.top1, test.mean_abs_diff, fit.top1, fit.mean_abs_diff)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _write_checked(content: bytes, target: Path) -> Any:
    """Write beside ``target``, inspect the written file, then link it into place (never over an
    existing file); nothing is left behind on failure."""
    folder = target.parent if str(target.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tflite", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.chmod(temporary, new_file_mode())
        inspection = check.inspect_file(temporary)
        try:
            os.link(temporary, target)
        except FileExistsError:
            raise OutputError(f"{target} already exists: choose another name.") from None
        except OSError as error:
            raise OutputError(f"Cannot write {target}: {error.strerror or error}.") from None
        return inspection
    finally:
        Path(temporary).unlink(missing_ok=True)
