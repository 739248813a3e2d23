"""A loaded model on a backend: the object the Python API and every CLI command use."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from bredos_npu.errors import BackendError, ModelError, Reason, UsageError
from bredos_npu.models import bundled
from bredos_npu.models.integrity import Progress
from bredos_npu.models.labels import LabelSet, choose_labels
from bredos_npu.models.tflite_file import (
    check_model_content,
    embedded_files,
    first_line,
    guard_model_errors,
    read_model_bytes,
)
from bredos_npu.runtime.backends import (
    BackendPlan,
    check_backend_name,
    load_external_delegate,
    plan_backend,
)
from bredos_npu.runtime.interpreter import (
    COMPUTE_OPS,
    allocate,
    build_interpreter,
    interpreter_classes,
    is_float_model,
    takes_float_input,
)
from bredos_npu.runtime.litert import Runtime, find_runtime
from bredos_npu.runtime.nodes import NodeSummary, node_ops, summarise, taken_nodes
from bredos_npu.runtime.pipeline import Result, run_pipeline
from bredos_npu.system.cpu import CpuPlan, pinned, plan_threads
from bredos_npu.system.root import SystemRoot
from bredos_npu.tasks import registry
from bredos_npu.tasks.classify import Class, to_probabilities
from bredos_npu.tasks.image import ImageSource, decode, resize_for_input
from bredos_npu.tasks.quant import (
    Quantization,
    dequantize,
    finite_normalization,
    pixels_to_input,
    takes_pixels,
)

if TYPE_CHECKING:  # named by annotations only: classifying images needs none of these modules
    from bredos_npu.runtime.stream import Stream
    from bredos_npu.tasks.detect import Detection
    from bredos_npu.tasks.pose import Keypoint
    from bredos_npu.tasks.segment import Segmentation


class BackendInfo(NamedTuple):
    """Where a model runs and why: its :class:`~bredos_npu.runtime.backends.BackendPlan` as built.

    name: "npu" or "cpu". requested: what was asked ("auto", "npu", "cpu"). delegate: the
    external delegate library in use (npu only). threads/cpus: XNNPACK threads and the cores they
    are pinned to (empty: not pinned). fallback: why "auto" does not use the NPU, as the
    BackendError that ``backend="npu"`` would have raised (its ``reason`` says which case), also
    when it left the NPU while running (the delegate failed at inference; see :meth:`Model.invoke`).
    nodes: where the model's operators run, counted after the interpreter was built.
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

    @classmethod
    def from_plan(cls, plan: BackendPlan, nodes: NodeSummary,
                  npu_node_indices: tuple[int, ...] = ()) -> BackendInfo:
        """The plan as it was carried out: ``nodes`` counted on the built interpreter."""
        return cls(plan.backend, plan.requested, plan.delegate_library, plan.cpu.threads,
                   plan.cpu.cpus, plan.reason, nodes, npu_node_indices, plan.hazards)

    @property
    def fallback_reason(self) -> str | None:
        """The fallback as one sentence (without its final full stop), or None."""
        return self.fallback.fact if self.fallback else None


class LoadRequest(NamedTuple):
    """What :func:`load` was asked, with the model resolved to a file: a clone asks it again.

    path: the model file. labels: the label file (the caller's, else the zoo's; None: the ones
    the model carries). mean/std: the input normalisation (the model's own when it has one).
    The other fields are :func:`load`'s arguments of the same names.
    """

    path: Path
    backend: str = "auto"
    labels: str | os.PathLike[str] | None = None
    delegate: str | None = None
    threads: int | None = None
    root: str | os.PathLike[str] | None = None
    mean: float | None = None
    std: float | None = None
    debug: bool = False

    def options(self) -> dict[str, Any]:
        """:func:`load`'s keyword arguments for this request (all but the path)."""
        return {name: value for name, value in self._asdict().items() if name != "path"}


class TensorSpec(NamedTuple):
    """A model input or output: tensor ``index`` in the interpreter, ``shape`` (batch first,
    channels last for images: 1xHxWxC), numpy ``dtype`` and per-tensor ``quant``."""

    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    quant: Quantization


def _spec(detail: dict[str, Any]) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    return TensorSpec(detail["index"], tuple(int(d) for d in detail["shape"]),
                      np.dtype(detail["dtype"]), Quantization(float(scale), int(zero_point)))


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

    def __init__(self, interpreter: Any, request: LoadRequest, backend: BackendInfo,
                 labels: LabelSet, load_ms: float = 0.0) -> None:
        """An allocated ``interpreter`` for ``request``, placed as ``backend`` says.

        load_ms: what loading cost, in milliseconds. Build Models with :func:`load`.
        """
        self.interpreter = interpreter
        self.request = request
        self.path = request.path
        self.runtime: Runtime = find_runtime()
        self.backend = backend
        self.labels, self.label_map = labels
        self.load_ms = load_ms
        self.inputs = [_spec(d) for d in interpreter.get_input_details()]
        self.outputs = [_spec(d) for d in interpreter.get_output_details()]
        self.output_names = [d["name"] for d in interpreter.get_output_details()]
        self.mean, self.std = request.mean, request.std
        self._workers: list[Model] = []
        # One interpreter runs one invoke at a time, and set_tensor/invoke/get_tensor must not
        # interleave between threads (another thread's input, or TFLite's RuntimeError).
        self._invoke_lock = threading.Lock()
        self._workers_lock = threading.Lock()
        # "auto" may leave a failing NPU for the CPU mid-run; "npu" may not (see invoke).
        self.may_fall_back = request.backend == "auto"
        self.on_fallback: Callable[[BackendError], None] | None = None  # told once, with why
        self.file_owner: Any = None  # keeps the temporary file of a model given as bytes

    def clone(self, **changes: Any) -> Model:
        """Another interpreter for the same model and options (one per thread for parallel runs).

        It runs on the backend this model ended on (an "auto" clone does not choose again).
        """
        pinned_backend = {"backend": self.backend.name, "delegate": self.backend.delegate}
        twin = load(self.path, **{**self.request.options(), **pinned_backend, **changes})
        twin.may_fall_back, twin.on_fallback = self.may_fall_back, self.on_fallback
        twin.file_owner = self.file_owner
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
        debug = self.request.debug
        interpreter = build_interpreter(self.runtime, self.path, read_model_bytes(self.path), cpu,
                                        [], debug)
        allocate(interpreter, self.path, cpu, debug)
        model_nodes = self.backend.nodes.model_nodes
        self.interpreter = interpreter
        self.backend = self.backend._replace(
            name="cpu", delegate=None, fallback=error, npu_node_indices=(), hazards=(),
            nodes=summarise(node_ops(interpreter), model_nodes, model_nodes))
        if self.on_fallback is not None:
            self.on_fallback(error)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Invoke on one input tensor (without batch axis); outputs dequantized to real values."""
        raw = self.invoke(tensor)
        return [dequantize(values, spec.quant) for values, spec in zip(raw, self.outputs, strict=True)]

    def run_image(self, image: ImageSource) -> tuple[list[np.ndarray], tuple[int, int]]:
        """Prepare ``image`` and run it: (dequantized outputs, original image size)."""
        prepared = self.prepare(image)
        return self.run(prepared.tensor), prepared.size

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
        from bredos_npu.runtime.stream import Stream

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


class ModelSource(NamedTuple):
    """A model resolved to a local file: its path, its bytes and the label file that goes with
    it (the caller's, else the zoo's; None: the labels the model carries, if any). ``owner``
    keeps a temporary file (a model given as bytes) alive while a Model uses it."""

    path: Path
    content: bytes
    labels: str | os.PathLike[str] | None
    owner: Any = None


def resolve_model(path: str | os.PathLike[str] | bytes | None,
                  labels: str | os.PathLike[str] | None = None,
                  download_progress: Progress | None = None) -> ModelSource:
    """The model file for ``path`` (a .tflite file, a zoo name, the model's bytes, None for the
    bundled model).

    The only step of :func:`load` that may use the network: a zoo model (and its label file,
    unless ``labels`` is given) missing from the cache is downloaded, reporting (bytes, total)
    to ``download_progress``.
    """
    if isinstance(path, bytes | bytearray | memoryview):
        return _from_bytes(bytes(path), labels)
    if path is None:
        model_path = bundled.default_model()
    else:
        from bredos_npu.models import zoo  # on demand: the bundled model needs no zoo

        resolved = zoo.resolve(path, download_progress, with_labels=labels is None)
        model_path, labels = resolved.path, labels if labels is not None else resolved.labels
    return ModelSource(model_path, read_model_bytes(model_path), labels)


def _from_bytes(content: bytes, labels: str | os.PathLike[str] | None) -> ModelSource:
    """Model bytes in a private temporary file, removed with the last Model that uses it: the
    delegate probe (a child process), clones and a move to the CPU read the model from a file."""
    check_model_content(content, "the model bytes")
    import tempfile  # only for models given as bytes

    owner = tempfile.TemporaryDirectory(prefix="bredos-npu-model-")
    path = Path(owner.name) / "model.tflite"
    path.write_bytes(content)
    return ModelSource(path, content, labels, owner)


@guard_model_errors
def load(
    path: str | os.PathLike[str] | bytes | None = None,
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

    path: a .tflite file, a zoo name (fetched into the cache when needed) or the model's bytes
    (default: the bundled MobileNet V2 quant). labels: a label file (default: the zoo's, else
    the one embedded in the model). delegate: the external delegate library (default:
    $BREDOS_NPU_DELEGATE, then Mesa's libteflon.so in the usual places). threads: XNNPACK
    threads (default: one per core of the fastest CPU cluster). root: the system root to read the
    board through (default: $BREDOS_NPU_ROOT or /). mean/std: input normalisation, see
    :func:`bredos_npu.tasks.quant.pixels_to_input`. debug: let native logs through.
    download_progress: called with (bytes, total) while a zoo model downloads.

    The steps: resolve the model (:func:`resolve_model`), plan the backend
    (:func:`~bredos_npu.runtime.backends.plan_backend`), build the interpreter, attach labels.
    """
    started = time.perf_counter()
    _check_arguments(backend, mean, std)
    source = resolve_model(path, labels, download_progress)
    request = LoadRequest(source.path, backend, source.labels, delegate, threads, root, mean, std,
                          debug)
    runtime = find_runtime()
    system = SystemRoot.from_env(root)
    cpu = plan_threads(system, threads)
    on_cpu = build_interpreter(runtime, source.path, source.content, cpu, [], debug)
    plan = _plan(request, source, system, cpu, on_cpu)
    interpreter, plan = _build(plan, runtime, source, on_cpu, debug)
    info = _place(plan, interpreter, source.path, len(node_ops(on_cpu)), debug)
    classes = interpreter_classes(interpreter)
    names = choose_labels(source.labels, embedded_files(source.content), classes.scores,
                          classes.per_pixel)
    request = _with_normalization(request, interpreter, source.content)
    model = Model(interpreter, request, info, names, (time.perf_counter() - started) * 1e3)
    model.file_owner = source.owner
    return model


def _check_arguments(backend: str, mean: float | None, std: float | None) -> None:
    """BackendError for an unknown backend, UsageError for a normalisation that cannot work."""
    check_backend_name(backend)
    if not finite_normalization(mean, std):
        raise UsageError("mean must be a finite number and std a finite number other than 0, such "
                         "that (pixel - mean) / std is a finite 32-bit float for pixels 0..255, "
                         f"not {mean} and {std}", reason=Reason.BAD_VALUE, option="mean/std",
                         value=(mean, std))


def _plan(request: LoadRequest, source: ModelSource, system: SystemRoot, cpu: CpuPlan,
          on_cpu: Any) -> BackendPlan:
    """The backend plan for ``source``; ``on_cpu`` is its interpreter without delegates."""
    float_model = is_float_model(node_ops(on_cpu, typed=COMPUTE_OPS),
                                 np.dtype(on_cpu.get_input_details()[0]["dtype"]))
    return plan_backend(request.backend, cpu, system, model_path=source.path,
                        float_model=float_model, delegate=request.delegate,
                        model_content=source.content)


def _build(plan: BackendPlan, runtime: Runtime, source: ModelSource, on_cpu: Any,
           debug: bool) -> tuple[Any, BackendPlan]:
    """The interpreter the plan asks for, and the plan (moved to the CPU when "auto" finds here
    that the delegate returns none or refuses the graph)."""
    if plan.backend == "cpu" or plan.delegate_library is None:
        return on_cpu, plan
    try:
        npu = load_external_delegate(runtime, plan.delegate_library, debug)
        return build_interpreter(runtime, source.path, source.content, plan.cpu, [npu], debug), plan
    except BackendError as why:
        return on_cpu, plan.fall_back(why)


def _place(plan: BackendPlan, interpreter: Any, model_path: Path, model_nodes: int,
           debug: bool) -> BackendInfo:
    """Allocate ``interpreter`` and count where its nodes run: the plan as carried out.

    "auto" gives up a delegate that took none of the model's ``model_nodes`` operators.
    """
    after_delegate = len(node_ops(interpreter))
    allocate(interpreter, model_path, plan.cpu, debug)
    live_ops = node_ops(interpreter)
    nodes = summarise(live_ops, model_nodes, after_delegate)
    npu_nodes = taken_nodes(live_ops, range(model_nodes, after_delegate), model_nodes)
    if plan.backend == "npu" and not npu_nodes and plan.requested == "auto":
        plan = plan.fall_back(BackendError(
            f"NPU not used: the delegate {plan.delegate_library} took none of this model's operators",
            reason=Reason.DELEGATE_TOOK_NOTHING, library=plan.delegate_library))
    return BackendInfo.from_plan(plan, nodes, tuple(sorted(npu_nodes)))


def _with_normalization(request: LoadRequest, interpreter: Any, content: bytes) -> LoadRequest:
    """The request with a float model's own input normalisation when the caller gave none."""
    if request.mean is not None or request.std is not None or not takes_float_input(interpreter):
        return request
    # A float model's own metadata knows its normalisation better than the [-1, 1] default.
    from bredos_npu.models.metadata import input_normalization  # float models only

    mean, std = input_normalization(content) or (None, None)
    if not finite_normalization(mean, std):
        raise ModelError(f"{request.path} carries an input normalisation (mean {mean}, std {std}) "
                         "that gives no finite input values", "give mean and std explicitly",
                         Reason.MODEL_CORRUPT, path=request.path)
    return request._replace(mean=mean, std=std)


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


__all__ = ["BackendInfo", "LoadRequest", "Model", "ModelSource", "Prepared", "load", "once",
           "resolve_model"]
