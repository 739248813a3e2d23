"""A loaded model on a backend: the object the Python API and every CLI command use."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bredos_npu.cstderr import capture_native_stderr
from bredos_npu.errors import BackendError, ModelError, Reason, UsageError
from bredos_npu.models import bundled, zoo
from bredos_npu.models.integrity import Progress
from bredos_npu.models.labels import (
    check_against,
    first_label_map,
    fit_labels,
    labels_from_model,
    read_label_file,
)
from bredos_npu.models.metadata import input_normalization
from bredos_npu.models.tflite_file import (
    embedded_files,
    explain_load_failure,
    first_line,
    guard_model_errors,
    read_model_bytes,
)
from bredos_npu.runtime.backends import (
    BACKENDS,
    FLOAT_MODEL_REASON,
    load_external_delegate,
    npu_hazards,
    plan_npu,
    refuse_unsafe_delegate,
    require_delegate_library,
)
from bredos_npu.runtime.litert import Runtime, find_runtime
from bredos_npu.runtime.nodes import NodeSummary, summarise, taken_nodes
from bredos_npu.runtime.pipeline import Result, run_pipeline
from bredos_npu.runtime.stream import Stream
from bredos_npu.system.cpu import CpuPlan, plan_threads
from bredos_npu.system.root import SystemRoot
from bredos_npu.tasks import registry
from bredos_npu.tasks.classify import Class, is_score_vector, to_probabilities
from bredos_npu.tasks.detect import Detection
from bredos_npu.tasks.image import ImageSource, decode, resize_for_input
from bredos_npu.tasks.pose import Keypoint
from bredos_npu.tasks.quant import (
    Quantization,
    dequantize,
    finite_normalization,
    pixels_to_input,
    takes_pixels,
)
from bredos_npu.tasks.segment import Segmentation

COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


@dataclass(frozen=True)
class BackendInfo:
    """Where a model runs and why.

    name: "npu" or "cpu". requested: what was asked ("auto", "npu", "cpu"). delegate: the
    external delegate library in use (npu only). threads/cpus: XNNPACK threads and the cores they
    are pinned to (empty: not pinned). fallback: why "auto" does not use the NPU, as the
    BackendError that ``backend="npu"`` would have raised (its ``reason`` says which case), also
    when it left the NPU while running (the delegate failed at inference; see :meth:`Model.invoke`).
    npu_node_indices: the model's operator indices that the NPU delegate took. hazards: what
    inspect predicts may differ from the CPU on the NPU ("op 3: ..."), when the NPU is used.
    """

    name: str
    requested: str
    delegate: str | None
    threads: int
    cpus: tuple[int, ...]
    fallback: BackendError | None
    nodes: NodeSummary
    npu_node_indices: tuple[int, ...] = ()
    hazards: tuple[str, ...] = ()

    @property
    def fallback_reason(self) -> str | None:
        """The fallback as one sentence (without its final full stop), or None."""
        return self.fallback.fact if self.fallback else None


class Timings(NamedTuple):
    """Milliseconds spent on one call: preprocessing (decode, resize, quantize) and invoke."""

    preprocess_ms: float
    inference_ms: float


class TensorSpec(NamedTuple):
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    quant: Quantization


def _spec(detail: dict[str, Any]) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    return TensorSpec(detail["index"], tuple(int(d) for d in detail["shape"]),
                      np.dtype(detail["dtype"]), Quantization(float(scale), int(zero_point)))


def is_float_model(ops: list[dict[str, Any]], input_dtype: np.dtype) -> bool:
    """True when the model computes in float: its convolutions/FC take float activations."""
    compute = [op for op in ops if op["op_name"] in COMPUTE_OPS]
    if compute:
        return any(np.dtype(op["operand_types"][0]).kind == "f" for op in compute)
    return input_dtype.kind == "f"


@contextmanager
def pinned(cpus: tuple[int, ...]) -> Iterator[None]:
    """Run the block on ``cpus``; threads started inside inherit them. No-op when empty."""
    if not cpus:
        yield
        return
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpus)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class Prepared(NamedTuple):
    """An input tensor made from an image, with the (width, height) of the full-size, upright
    (EXIF-rotated) original, in pixels: the frame every result is given in."""

    tensor: np.ndarray
    size: tuple[int, int]


class Model:
    """A TFLite model ready to run. Build it with :func:`load`.

    One Model may be shared by many threads: every call gives the answer for its own input,
    but the calls run one after another on the model's single interpreter (decoding and resizing
    still overlap). For N inferences at once, give each thread its own interpreter with
    ``model.workers(n)`` or ``model.clone()`` (each costs the model's memory once more).

    Task methods (``classify``, ``detect``, ``segment``, ``pose``) and their ``*_many`` forms
    for folders and streams are thin: each task is a module of :mod:`bredos_npu.tasks`, found
    through :mod:`bredos_npu.tasks.registry`; :meth:`run_task` runs any of them by name.
    """

    def __init__(self, interpreter: Any, path: Path, runtime: Runtime, backend: BackendInfo,
                 labels: list[str] | None, load_ms: float, mean: float | None = None,
                 std: float | None = None, load_options: dict[str, Any] | None = None,
                 label_map: dict[int, str] | None = None) -> None:
        self.interpreter = interpreter
        self.path = path
        self.runtime = runtime
        self.backend = backend
        self.labels = labels
        self.label_map = label_map if label_map is not None else (
            dict(enumerate(labels)) if labels else None)
        self.load_ms = load_ms
        self.inputs = [_spec(d) for d in interpreter.get_input_details()]
        self.outputs = [_spec(d) for d in interpreter.get_output_details()]
        self.output_names = [d["name"] for d in interpreter.get_output_details()]
        self.mean, self.std = mean, std
        self.last_timings = Timings(0.0, 0.0)
        self.load_options = load_options or {}
        self._workers: list[Model] = []
        # One interpreter runs one invoke at a time, and set_tensor/invoke/get_tensor must not
        # interleave between threads (another thread's input, or TFLite's RuntimeError).
        self._invoke_lock = threading.Lock()
        self._workers_lock = threading.Lock()
        # "auto" may leave a failing NPU for the CPU mid-run; "npu" may not (see invoke).
        self.may_fall_back = self.load_options.get("backend") == "auto"
        self.on_fallback: Callable[[BackendError], None] | None = None  # told once, with why

    def clone(self, **changes: Any) -> Model:
        """Another interpreter for the same model and options (one per thread for parallel runs).

        It runs on the backend this model ended on (an "auto" clone does not choose again).
        """
        pinned_backend = {"backend": self.backend.name, "delegate": self.backend.delegate}
        twin = load(self.path, **{**self.load_options, **pinned_backend, **changes})
        twin.may_fall_back, twin.on_fallback = self.may_fall_back, self.on_fallback
        return twin

    def workers(self, count: int) -> list[Model]:
        """This model and ``count - 1`` clones, kept for later calls (parallel pipelines)."""
        with self._workers_lock:
            while len(self._workers) < count - 1:
                self._workers.append(self.clone())
            return [self, *self._workers[: count - 1]]

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the first input, in pixels."""
        shape = self.inputs[0].shape
        return (shape[2], shape[1]) if len(shape) == 4 else (shape[-1], shape[-2])

    def check_image_input(self) -> None:
        """ModelError unless the first input takes an image: 1xHxWx3 or 1xHxWx1 of a type that
        pixels can be turned into."""
        spec = self.inputs[0]
        channels = spec.shape[3] if len(spec.shape) == 4 else 1
        if channels not in (1, 3) or len(spec.shape) not in (3, 4):
            shown = "x".join(map(str, spec.shape))
            raise ModelError(f"{self.path} takes an input of shape {shown}, not an image (expected "
                             "1xHxWx3 or 1xHxWx1, channels last).", reason=Reason.NOT_AN_IMAGE_MODEL,
                             path=self.path, shape=spec.shape)
        if not takes_pixels(spec.dtype, spec.quant, self.mean, self.std):
            raise ModelError(f"{self.path} takes {spec.dtype} input without quantization "
                             "parameters, not image pixels (expected uint8, int8 or float input)",
                             reason=Reason.NOT_AN_IMAGE_MODEL, path=self.path, dtype=str(spec.dtype))

    def prepare(self, image: ImageSource) -> Prepared:
        """The first input tensor for ``image`` (without the batch axis) and the (width, height)
        of the full-size upright original."""
        self.check_image_input()
        spec = self.inputs[0]
        width, height = self.input_size
        channels = spec.shape[3] if len(spec.shape) == 4 else 1
        if isinstance(image, np.ndarray) and image.shape == (height, width, channels) \
                and image.dtype == np.uint8:
            pixels, size = image, (width, height)  # a frame already at the input size: no PIL copy
        else:
            # A large JPEG decodes at a reduced scale; results are given in the original's pixels.
            picture, size = decode(image, (width, height))
            pixels = resize_for_input(picture, width, height, channels)
        return Prepared(pixels_to_input(pixels, spec.dtype, spec.quant, self.mean, self.std), size)

    def preprocess(self, image: ImageSource) -> np.ndarray:
        """The first input tensor for ``image`` (without the batch axis)."""
        return self.prepare(image).tensor

    def invoke(self, *tensors: np.ndarray) -> list[np.ndarray]:
        """Run the model on input tensors (without batch axis); raw output tensors (copies).

        Thread-safe: calls from several threads on one Model take turns (a lock around
        set_tensor, invoke and get_tensor; about a microsecond when nobody waits). Calls that
        should really run at the same time need one interpreter each: :meth:`workers` or
        :meth:`clone`.

        When the NPU delegate fails here, a model loaded with "auto" moves to the CPU for good
        (``backend.fallback`` says why, ``on_fallback`` is called with it) and the call is
        answered; with "npu" it raises BackendError (reason DELEGATE_FAILED).
        """
        with self._invoke_lock:
            try:
                return self._invoke(tensors)
            except RuntimeError as failure:
                if self.backend.name != "npu":
                    raise self._cannot_run(failure) from failure
                self._leave_npu(failure)  # raises under "npu"
            try:
                return self._invoke(tensors)
            except RuntimeError as failure:
                raise self._cannot_run(failure) from failure

    def _cannot_run(self, failure: RuntimeError) -> ModelError:
        """TFLite's own kernels failed (on the CPU): the model's business, not the backend's."""
        return ModelError(f"TFLite cannot run {self.path}: {first_line(str(failure))}",
                          "check the file, or download or export it again",
                          Reason.MODEL_LOAD_FAILED, path=self.path)

    def _invoke(self, tensors: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        for spec, tensor in zip(self.inputs, tensors, strict=True):
            self.interpreter.set_tensor(spec.index, tensor.reshape(spec.shape))
        with pinned(self.backend.cpus):
            self.interpreter.invoke()
        return [self.interpreter.get_tensor(spec.index) for spec in self.outputs]

    def _leave_npu(self, failure: RuntimeError) -> None:
        """Rebuild the interpreter without the delegate, or raise BackendError under "npu"."""
        said = next((line.strip() for line in str(failure).splitlines() if line.strip()), "")
        error = BackendError(
            f"NPU failed: the delegate {self.backend.delegate} failed during inference"
            + (f" ({said.rstrip('.')})" if said else ""),
            'load the model with backend="auto" to go on on the CPU', Reason.DELEGATE_FAILED,
            library=self.backend.delegate, path=self.path)
        if not self.may_fall_back:
            raise error from None
        cpu = CpuPlan(self.backend.threads, self.backend.cpus, "")
        debug = bool(self.load_options.get("debug"))
        interpreter = _interpreter(self.runtime, self.path, read_model_bytes(self.path), cpu, [],
                                   debug)
        _allocate(interpreter, self.path, cpu, debug)
        model_nodes = self.backend.nodes.model_nodes
        self.interpreter = interpreter
        self.backend = replace(self.backend, name="cpu", delegate=None, fallback=error,
                               nodes=summarise(interpreter._get_ops_details(), model_nodes,
                                               model_nodes),
                               npu_node_indices=(), hazards=())
        if self.on_fallback is not None:
            self.on_fallback(error)

    def run(self, tensor: np.ndarray, preprocess_ms: float = 0.0) -> list[np.ndarray]:
        """Invoke on one input tensor; outputs dequantized to real values. Sets ``last_timings``."""
        started = time.perf_counter()
        raw = self.invoke(tensor)
        self.last_timings = Timings(preprocess_ms, (time.perf_counter() - started) * 1e3)
        return [dequantize(values, spec.quant) for values, spec in zip(raw, self.outputs, strict=True)]

    def run_image(self, image: ImageSource) -> tuple[list[np.ndarray], tuple[int, int]]:
        """Prepare ``image`` and run it: (dequantized outputs, original image size)."""
        started = time.perf_counter()
        prepared = self.prepare(image)
        return self.run(prepared.tensor, (time.perf_counter() - started) * 1e3), prepared.size

    def run_many(self, images: Iterable[ImageSource] | ImageSource, task: Callable[[Model, Prepared], Any],
                 parallel: int = 1, decoders: int | None = None) -> Iterator[Result]:
        """``task(model, prepared)`` for many images, one :class:`Result` each, in input order.

        ``images`` may also be one image (a path, an array). Decoding runs in ``decoders``
        threads ahead of inference on up to ``parallel`` interpreters (this one plus clones, made
        only when an input waits for one); queues are bounded, so memory stays flat on any number
        of images. Any failure of one input gives its Result an ``error``; the others go on.
        """
        return run_pipeline(self, images, task, parallel=parallel, decoders=decoders)

    # --- tasks (see bredos_npu.tasks.registry) ------------------------------------------------

    def run_task(self, task: str, image: ImageSource, **options: Any) -> Any:
        """The result of task ``task`` ("classify", "detect", ...) for one image.

        ``options`` are the task's own (``top_k``, ``threshold``...); the result type is the
        task's (e.g. a list of :class:`Detection`). Raises ModelError when the model does not fit
        the task, UsageError for an unknown task or option value.
        """
        chosen = registry.get(task)
        values = chosen.bind(options)
        chosen.check(self)
        outputs, size = self.run_image(image)
        return chosen.postprocess(self, outputs, size, **values)

    def run_task_many(self, task: str, images: Iterable[ImageSource] | ImageSource, parallel: int = 1,
                      decoders: int | None = None, **options: Any) -> Iterator[Result]:
        """:meth:`run_task` over many images (see :meth:`run_many`), one Result each, in order.

        The model and options are checked once, before any image is read.
        """
        chosen = registry.get(task)
        values = chosen.bind(options)
        chosen.check(self)
        return self.run_many(images, lambda model, prepared: chosen.postprocess(
            model, model.run(prepared.tensor), prepared.size, **values), parallel, decoders)

    def classify(self, image: ImageSource, top_k: int = 5) -> list[Class]:
        """The ``top_k`` most likely classes of ``image``, best first, scores in 0..1."""
        return self.run_task("classify", image, top_k=top_k)

    def classify_many(self, images: Iterable[ImageSource] | ImageSource, top_k: int = 5, parallel: int = 1,
                      decoders: int | None = None) -> Iterator[Result]:
        """:meth:`classify` over many images (see :meth:`run_many`); ``Result.value`` is the list."""
        return self.run_task_many("classify", images, parallel, decoders, top_k=top_k)

    def detect(self, image: ImageSource, threshold: float = 0.5,
               max_results: int | None = None) -> list[Detection]:
        """Objects in ``image`` with score >= ``threshold`` (0..1), best first, at most
        ``max_results``; boxes in pixels of the original image (see :class:`bredos_npu.BBox`)."""
        return self.run_task("detect", image, threshold=threshold, max_results=max_results)

    def detect_many(self, images: Iterable[ImageSource] | ImageSource, threshold: float = 0.5,
                    max_results: int | None = None, parallel: int = 1) -> Iterator[Result]:
        """:meth:`detect` over many images; ``Result.value`` is the list of detections."""
        return self.run_task_many("detect", images, parallel, threshold=threshold,
                                  max_results=max_results)

    def segment(self, image: ImageSource) -> Segmentation:
        """Per-pixel class ids of ``image`` at its own size (HxW), and the share of each class."""
        return self.run_task("segment", image)

    def segment_many(self, images: Iterable[ImageSource] | ImageSource, parallel: int = 1
                     ) -> Iterator[Result]:
        """:meth:`segment` over many images; ``Result.value`` is the :class:`Segmentation`."""
        return self.run_task_many("segment", images, parallel)

    def pose(self, image: ImageSource) -> list[Keypoint]:
        """The 17 body keypoints of the person in ``image``, in pixels of the image, scores 0..1."""
        return self.run_task("pose", image)

    def pose_many(self, images: Iterable[ImageSource] | ImageSource, parallel: int = 1) -> Iterator[Result]:
        """:meth:`pose` over many images; ``Result.value`` is the list of keypoints."""
        return self.run_task_many("pose", images, parallel)

    def classify_tensor(self, tensor: np.ndarray, top_k: int = 5) -> list[Class]:
        """Like :meth:`classify` for an input tensor made by :meth:`preprocess`."""
        classify = registry.get("classify")
        options = classify.bind({"top_k": top_k})
        return classify.postprocess(self, self.run(tensor), self.input_size, **options)

    def check_classifier(self) -> None:
        """Raise ModelError unless this is one image in, one vector of class scores out."""
        registry.get("classify").check(self)

    def scores(self, image: ImageSource) -> np.ndarray:
        """Class probabilities (0..1, one per output class) of a classifier for ``image``."""
        return to_probabilities(self.run_image(image)[0][0])

    # --- video: files, cameras (RTSP, HTTP, V4L2) ------------------------------------------------

    def run_task_stream(self, task: str, source: str | os.PathLike[str], parallel: int = 1,
                        video: dict[str, Any] | None = None, **options: Any) -> Stream:
        """:meth:`run_task` on the frames of a video file, ``rtsp://``/``http(s)://`` stream or
        ``/dev/videoN`` camera; iterate the returned :class:`~bredos_npu.runtime.stream.Stream`
        for one :class:`~bredos_npu.runtime.stream.FrameResult` per kept frame.

        video: ``fps``/``every`` (frames to keep), ``live``, ``open_timeout``/``read_timeout``
        (seconds), ``retries``, ``backoff``, ``on_event``: see
        :class:`~bredos_npu.runtime.video.VideoSource`. Needs the ``[video]`` extra.
        """
        chosen = registry.get(task)
        values = chosen.bind(options)
        chosen.check(self)
        return Stream(self, source, lambda model, prepared: chosen.postprocess(
            model, model.run(prepared.tensor), prepared.size, **values), parallel, **(video or {}))

    def detect_stream(self, source: str | os.PathLike[str], threshold: float = 0.5,
                      max_results: int | None = None, parallel: int = 1, **video: Any) -> Stream:
        """:meth:`detect` on the frames of a video source (see :meth:`run_task_stream`)."""
        return self.run_task_stream("detect", source, parallel, video, threshold=threshold,
                                    max_results=max_results)

    def classify_stream(self, source: str | os.PathLike[str], top_k: int = 5, parallel: int = 1,
                        **video: Any) -> Stream:
        """:meth:`classify` on the frames of a video source (see :meth:`run_task_stream`)."""
        return self.run_task_stream("classify", source, parallel, video, top_k=top_k)

    def segment_stream(self, source: str | os.PathLike[str], parallel: int = 1, **video: Any) -> Stream:
        """:meth:`segment` on the frames of a video source (see :meth:`run_task_stream`)."""
        return self.run_task_stream("segment", source, parallel, video)

    def pose_stream(self, source: str | os.PathLike[str], parallel: int = 1, **video: Any) -> Stream:
        """:meth:`pose` on the frames of a video source (see :meth:`run_task_stream`)."""
        return self.run_task_stream("pose", source, parallel, video)


@guard_model_errors
def load(
    path: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    *,
    labels: str | os.PathLike[str] | None = None,
    delegate: str | None = None,
    threads: int | None = None,
    root: str | os.PathLike[str] | None = None,
    mean: float | None = None,
    std: float | None = None,
    debug: bool = False,
    download_progress: Progress | None = None,
) -> Model:
    """Load a .tflite model on ``backend`` ("auto", "npu" or "cpu").

    path: a .tflite file or a zoo name (fetched into the cache when needed; default: the bundled
    MobileNet V2 quant). labels: a label file (default: the zoo's, else the one embedded in the
    model). delegate: the external delegate library (default:
    $BREDOS_NPU_DELEGATE, then Mesa's libteflon.so in the usual places). threads: XNNPACK
    threads (default: one per core of the fastest CPU cluster). root: the system root to read the
    board through (default: $BREDOS_NPU_ROOT or /). mean/std: input normalisation, see
    :func:`bredos_npu.tasks.quant.pixels_to_input`. debug: let native logs through.
    download_progress: called with (bytes, total) while a zoo model downloads.
    """
    if backend not in BACKENDS:
        raise BackendError(f"Unknown backend {backend!r}", f"choose one of {', '.join(BACKENDS)}",
                           Reason.UNKNOWN_BACKEND, backend=backend)
    if not finite_normalization(mean, std):
        raise UsageError("mean must be a finite number and std a finite number other than 0, such "
                         "that (pixel - mean) / std is a finite 32-bit float for pixels 0..255, "
                         f"not {mean} and {std}", reason=Reason.BAD_VALUE, option="mean/std",
                         value=(mean, std))
    started = time.perf_counter()
    model_path = bundled.default_model()
    if path is not None:
        resolved = zoo.resolve(path, download_progress, with_labels=labels is None)
        model_path = resolved.path
        labels = labels if labels is not None else resolved.labels
    runtime = find_runtime()
    content = read_model_bytes(model_path)
    system = SystemRoot.from_env(root)
    cpu = plan_threads(system, threads)
    probe = _interpreter(runtime, model_path, content, cpu, [], debug)
    ops = probe._get_ops_details()
    float_model = is_float_model(ops, np.dtype(probe.get_input_details()[0]["dtype"]))

    interpreter, library, fallback, hazards = probe, None, None, []
    if backend != "cpu":
        try:
            library, hazards = _npu_library(system, delegate, float_model, model_path, backend)
            require_delegate_library(library)
            # In a child process first: a delegate that crashes on this graph must not take
            # this process down with it.
            refuse_unsafe_delegate(library, model_path, hashlib.sha256(content).hexdigest())
            npu = load_external_delegate(runtime, library, debug)
            interpreter = _interpreter(runtime, model_path, content, cpu, [npu], debug)
        except BackendError as why:
            if backend == "npu":
                raise
            fallback, library, hazards = why, None, []
    after_delegate = len(interpreter._get_ops_details())
    _allocate(interpreter, model_path, cpu, debug)
    live_ops = interpreter._get_ops_details()
    nodes = summarise(live_ops, len(ops), after_delegate)
    npu_nodes = taken_nodes(live_ops, range(len(ops), after_delegate), len(ops))
    if library and not npu_nodes and backend == "auto":
        fallback, library = BackendError(
            f"NPU not used: the delegate {library} took none of this model's operators",
            reason=Reason.DELEGATE_TOOK_NOTHING, library=library), None
    info = BackendInfo("npu" if library else "cpu", backend, library, cpu.threads, cpu.cpus,
                       fallback, nodes, tuple(sorted(npu_nodes)),
                       tuple(hazards) if library else ())
    names, label_map = _labels(labels, content, _classifier_classes(interpreter),
                               _segmentation_classes(interpreter))
    if mean is None and std is None and np.dtype(interpreter.get_input_details()[0]["dtype"]).kind == "f":
        # A float model's own metadata knows its normalisation better than the [-1, 1] default.
        mean, std = input_normalization(content) or (None, None)
        if not finite_normalization(mean, std):
            raise ModelError(f"{model_path} carries an input normalisation (mean {mean}, std {std}) "
                             "that gives no finite input values", "give mean and std explicitly",
                             Reason.MODEL_CORRUPT, path=model_path)
    load_ms = (time.perf_counter() - started) * 1e3
    options = {"backend": backend, "labels": labels, "delegate": delegate, "threads": threads,
               "root": root, "mean": mean, "std": std, "debug": debug}
    return Model(interpreter, model_path, runtime, info, names, load_ms, mean, std, options, label_map)


def _npu_library(system: SystemRoot, delegate: str | None, float_model: bool, model_path: Path,
                 backend: str) -> tuple[str, list[str]]:
    """The delegate library to load and the hazards to warn about, or BackendError saying why not."""
    if float_model:
        raise BackendError(f"NPU not used: {FLOAT_MODEL_REASON}", "run it on the CPU",
                           Reason.FLOAT_MODEL, path=model_path)
    plan = plan_npu(system, delegate)
    if plan.reason:
        raise plan.reason
    return str(plan.library.path), npu_hazards(model_path, backend)


def _interpreter(runtime: Runtime, path: Path, content: bytes, cpu: CpuPlan,
                 delegates: list[Any], debug: bool) -> Any:
    failure: Exception | None = None
    with capture_native_stderr(enabled=not debug) as native:
        try:
            return runtime.interpreter_class(model_content=content, num_threads=cpu.threads,
                                             experimental_delegates=delegates or None)
        except (ValueError, RuntimeError) as exc:
            failure = exc
    message = f"{failure}\n{native.text}"
    if delegates and "custom op" not in message:
        raise BackendError(f"The NPU delegate could not take the model {path}: "
                           f"{message.strip().splitlines()[0]}.", reason=Reason.DELEGATE_REFUSED_MODEL,
                           path=path)
    raise explain_load_failure(path, message)


def _allocate(interpreter: Any, path: Path, cpu: CpuPlan, debug: bool) -> None:
    # XNNPACK's worker threads start here and inherit the pinning.
    failure: Exception | None = None
    with capture_native_stderr(enabled=not debug) as native, pinned(cpu.cpus):
        try:
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            failure = exc
    if failure is not None:
        raise explain_load_failure(path, f"{failure}\n{native.text}")


def _classifier_classes(interpreter: Any) -> int | None:
    """The number of classes when the model has one output vector of scores, else None."""
    outputs = interpreter.get_output_details()
    shape = [int(d) for d in outputs[0]["shape"]] if len(outputs) == 1 else []
    return int(np.prod(shape)) if shape and is_score_vector(tuple(shape)) else None


def _segmentation_classes(interpreter: Any) -> int | None:
    """Classes of a per-pixel map: the last axis of the scores, or of what ARG_MAX reduces."""
    outputs = interpreter.get_output_details()
    if len(outputs) != 1 or len(outputs[0]["shape"]) not in (3, 4):
        return None
    shape = [int(d) for d in outputs[0]["shape"]]
    if len(shape) == 4:
        return shape[-1] if shape[-1] > 1 else None
    for op in interpreter._get_ops_details():
        if op["op_name"] == "ARG_MAX" and outputs[0]["index"] in op["outputs"]:
            scores = interpreter._get_tensor_details(int(op["inputs"][0]), 0)
            return int(scores["shape"][-1])
    return None


def _labels(labels: str | os.PathLike[str] | None, content: bytes, classes: int | None,
            map_classes: int | None = None) -> tuple[list[str] | None, dict[int, str] | None]:
    """(names for a classifier's outputs, id → label for every task), from a file or the model.

    A classifier's labels must fit its output; detection and segmentation ids are looked up.
    """
    files = embedded_files(content)
    if labels is not None:
        label_map = read_label_file(labels)
        if classes or map_classes:
            names = fit_labels(label_map, classes or map_classes, str(labels))
            return (names if classes else None), dict(enumerate(names))
        check_against(label_map, first_label_map(files), str(labels))
        return None, label_map
    if classes:
        names = labels_from_model(files, classes)
        if names:
            return names, dict(enumerate(names))
    return None, first_label_map(files)


def once(tell: Callable[[Any], None]) -> Callable[[Any], None]:
    """``tell`` wrapped to act on its first call only (models running in parallel threads share
    one ``on_fallback``)."""
    lock, told = threading.Lock(), []

    def first_only(news: Any) -> None:
        with lock:
            if told:
                return
            told.append(news)
        tell(news)

    return first_only


__all__ = ["BackendInfo", "Model", "Prepared", "Timings", "load", "once"]
