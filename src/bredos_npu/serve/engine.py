"""The serving core, free of HTTP: models with their interpreters, a bounded queue, decoding.

Each served model has ``parallel`` interpreters (the model and its clones), each run by one
inference thread at a time. Images are decoded and resized in a separate pool of threads, so an
interpreter never waits for a decode. Admission is bounded: past ``capacity`` requests being
decoded, waiting or running, :class:`Busy` is raised at once instead of queueing without limit.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from bredos_npu.errors import BackendError, BredosNpuError, ImageError, Reason
from bredos_npu.runtime.model import Model, once
from bredos_npu.serve import tasks
from bredos_npu.tasks.quant import dequantize

log = logging.getLogger("bredos_npu.serve")


class Busy(Exception):
    """Every slot of the queue is taken (HTTP 503 with Retry-After)."""


class Expired(Exception):
    """A request waited past its deadline before an interpreter took it (HTTP 503)."""


class InferenceFailed(BredosNpuError):
    """The interpreter failed on a request and no fallback was possible (HTTP 500)."""


class Decoded(NamedTuple):
    """An uploaded image ready for a model: input tensor and original, upright (width, height)."""

    tensor: np.ndarray
    size: tuple[int, int]
    decode_ms: float


class Inference(NamedTuple):
    """Raw output tensors (still quantized), interpreter milliseconds, and the backend used."""

    outputs: list[np.ndarray]
    inference_ms: float
    backend: str


def decode(model: Model, data: bytes, name: str = "upload") -> Decoded:
    """Decode an uploaded image (any format Pillow reads) into ``model``'s input tensor.

    Decoding is the CLI's (:func:`bredos_npu.tasks.image.decode`): JPEGs far larger than the input
    decode at a reduced scale, and the size returned is the original, upright one, so results map
    back onto it. ``name`` names the upload in error messages.
    """
    from PIL.Image import DecompressionBombWarning

    from bredos_npu.tasks.image import decode as decode_image

    started = time.perf_counter()
    if not data:
        raise ImageError("The image is empty", reason=Reason.NOT_AN_IMAGE)
    upload = io.BytesIO(data)
    upload.name = name
    with warnings.catch_warnings():  # a big photo is not worth a warning per request in the log
        warnings.simplefilter("ignore", DecompressionBombWarning)
        picture, (width, height) = decode_image(upload, model.input_size)
    tensor = model.prepare(picture).tensor
    return Decoded(tensor, (width, height), (time.perf_counter() - started) * 1e3)


@dataclass
class ServedModel:
    """A model under a name, for one task, with its interpreters and inference threads."""

    name: str
    task: str
    model: Model
    parallel: int
    predicted: str = "unknown"
    fallback_reason: str | None = None
    requested: str = ""
    _idle: queue.SimpleQueue[Model] = field(default_factory=queue.SimpleQueue)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _executor: ThreadPoolExecutor | None = None
    _serving: bool = False  # False while the workers are warmed up (their first run)

    def __post_init__(self) -> None:
        self.requested = self.model.backend.requested
        # Under "auto" a worker whose delegate fails inside invoke moves itself to the CPU
        # (Model.invoke); the clones made below inherit this hook.
        self.model.on_fallback = once(self._worker_left_npu)
        try:
            workers = warmed(self.model.workers(self.parallel))
        except Exception as exc:  # the delegate accepted the graph but cannot run it
            if self.model.backend.name != "npu" or self.requested != "auto":
                raise BackendError(f"{self.model.path} failed its first run on the "
                                   f"{self.model.backend.name.upper()}: {_first_line(exc)}.") from exc
            self.fallback_reason = f"the NPU delegate failed on a first run ({_first_line(exc)})"
            log.warning("%s: %s; running on the CPU", self.name, self.fallback_reason)
            self.model = self.model.clone(backend="cpu", delegate=None)
            workers = warmed(self.model.workers(self.parallel))
        self._fill(workers)
        self._serving = True
        self._executor = ThreadPoolExecutor(self.parallel, thread_name_prefix=f"infer-{self.name}")

    def _worker_left_npu(self, error: BackendError) -> None:
        if self._serving:
            self.fallback_reason = error.fact  # "... failed during inference (...)"
            log.warning("%s: %s; moving it to the CPU", self.name, error.fact)
        else:
            self.fallback_reason = f"the NPU delegate failed on a first run ({error.fact})"
            log.warning("%s: %s; running on the CPU", self.name, self.fallback_reason)

    def _fill(self, workers: list[Model]) -> None:
        self._idle = queue.SimpleQueue()
        for worker in workers:
            self._idle.put(worker)

    @property
    def backend(self) -> str:
        return self.model.backend.name

    def submit(self, tensor: np.ndarray, deadline: float) -> Future[Inference]:
        """Run ``tensor`` on the next free interpreter; expires unstarted after ``deadline``."""
        assert self._executor is not None
        return self._executor.submit(self._infer, tensor, deadline)

    def _infer(self, tensor: np.ndarray, deadline: float) -> Inference:
        if time.monotonic() > deadline:
            raise Expired(f"the request waited longer than its deadline for {self.name}")
        idle = self._idle
        worker = idle.get()
        started = time.perf_counter()
        try:
            outputs = worker.invoke(tensor)  # dequantizing waits for a decoding thread
        except Exception as exc:  # the delegate or the runtime failed inside invoke
            return self._recover(worker, tensor, exc)
        finally:
            idle.put(worker)
        return Inference(outputs, (time.perf_counter() - started) * 1e3, worker.backend.name)

    def _recover(self, failed: Model, tensor: np.ndarray, exc: Exception) -> Inference:
        """Under "auto", move this model to the CPU for good and answer on it; else fail."""
        if failed.backend.name != "npu" or self.requested != "auto":
            raise InferenceFailed(f"{self.name} failed on this image: {_first_line(exc)}") from exc
        with self._lock:
            if self.model.backend.name == "npu":  # the first thread to see the failure moves it
                reason = f"the NPU delegate failed during inference ({_first_line(exc)})"
                log.warning("%s: %s; moving it to the CPU", self.name, reason)
                cpu = self.model.clone(backend="cpu", delegate=None)
                self.model, self.fallback_reason = cpu, reason
                self._fill(warmed(cpu.workers(self.parallel)))
        idle = self._idle
        worker = idle.get()
        started = time.perf_counter()
        try:
            outputs = worker.invoke(tensor)
        finally:
            idle.put(worker)
        return Inference(outputs, (time.perf_counter() - started) * 1e3, worker.backend.name)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def _finish(served: ServedModel, raw: list[np.ndarray], size: tuple[int, int],
            options: tasks.Options) -> Any:
    model = served.model
    outputs = [dequantize(values, spec.quant) for values, spec in zip(raw, model.outputs, strict=True)]
    return tasks.postprocess(served.task, model, outputs, size, options)


def warmed(workers: list[Model]) -> list[Model]:
    """Run each interpreter once on a blank input: the first invoke sets up XNNPACK and, on the
    NPU, compiles the graph (~0.4 s), which must not land on a client's request."""
    for worker in workers:
        spec = worker.inputs[0]
        worker.invoke(np.zeros(spec.shape, dtype=spec.dtype))
    return workers


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


class Engine:
    """Every served model, the decoding threads and the admission queue."""

    def __init__(self, models: list[ServedModel], capacity: int, decoders: int = 2) -> None:
        self.models = {m.name: m for m in models}
        self.capacity = capacity
        self.depth = 0
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._decoders = ThreadPoolExecutor(decoders, thread_name_prefix="decode")

    def default_for(self, task: str) -> ServedModel | None:
        """The first model given for ``task``."""
        return next((m for m in self.models.values() if m.task == task), None)

    def acquire(self) -> Callable[[], None]:
        """Take one queue slot for a request and return the function that frees it (once).

        Raises Busy at once when every slot is taken."""
        with self._lock:
            if self.depth >= self.capacity:
                self.counters["rejected_busy"] += 1
                raise Busy(f"all {self.capacity} queue slots are taken")
            self.depth += 1
        freed = threading.Event()

        def release() -> None:
            with self._lock:
                if not freed.is_set():
                    freed.set()
                    self.depth -= 1

        return release

    def count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    def decode(self, served: ServedModel, data: bytes) -> Future[Decoded]:
        return self._decoders.submit(decode, served.model, data)

    def finish(self, served: ServedModel, inference: Inference, size: tuple[int, int],
               options: tasks.Options) -> Future[Any]:
        """Dequantize and post-process on a decoding thread: the task's result value."""
        return self._decoders.submit(_finish, served, inference.outputs, size, options)

    def close(self) -> None:
        self._decoders.shutdown(wait=False, cancel_futures=True)
        for served in self.models.values():
            served.close()
