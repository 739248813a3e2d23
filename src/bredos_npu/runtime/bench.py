"""Benchmarking backends the way TFLite's benchmark_model does: init, first run, warm-up, steady.

Every figure comes from a run on this machine; a backend that cannot run here is reported with
the reason instead of a number.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from bredos_npu.errors import BackendError, Reason, UsageError
from bredos_npu.runtime.model import BackendInfo, Model, load
from bredos_npu.runtime.stats import LatencyStats, latency_stats
from bredos_npu.system.cpu import check_parallel, plan_threads
from bredos_npu.system.root import SystemRoot
from bredos_npu.tasks.image import ImageSource

Progress = Callable[[int], None]


@dataclass
class BackendRun:
    """What one backend did; ``error`` set (and no figures) when it is not available here."""

    backend: str
    error: BackendError | None = None
    info: BackendInfo | None = None
    init_ms: float = 0.0
    first_ms: float = 0.0
    warmup_ms: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    parallel: ParallelRun | None = None

    @property
    def stats(self) -> LatencyStats | None:
        return latency_stats(self.latencies_ms) if self.latencies_ms else None


@dataclass
class ParallelRun:
    """N interpreters on N threads: aggregate throughput and scaling against one interpreter.

    threads: XNNPACK threads of each interpreter. single_per_second: one of them running alone.
    """

    interpreters: int
    inferences: int
    seconds: float
    single_per_second: float
    threads: int = 0

    @property
    def per_second(self) -> float:
        return self.inferences / self.seconds if self.seconds > 0 else 0.0

    @property
    def efficiency(self) -> float:
        """Aggregate throughput / (N x one interpreter's), 0..1 (1: perfect scaling)."""
        ideal = self.interpreters * self.single_per_second
        return self.per_second / ideal if ideal > 0 else 0.0


def random_inputs(model: Model, seed: int = 0) -> list[np.ndarray]:
    """Random tensors of each input's dtype and shape (uint8/int8 full range, float in [-1, 1])."""
    rng = np.random.default_rng(seed)
    tensors = []
    for spec in model.inputs:
        if spec.dtype.kind == "f":
            tensors.append(rng.uniform(-1, 1, spec.shape).astype(spec.dtype))
        else:
            info = np.iinfo(spec.dtype)
            tensors.append(rng.integers(info.min, info.max, spec.shape, endpoint=True).astype(spec.dtype))
    return tensors


def timed_invoke(model: Model, tensors: list[np.ndarray]) -> float:
    started = time.perf_counter()
    model.invoke(*tensors)
    return (time.perf_counter() - started) * 1e3


def benchmark(path: str | os.PathLike[str] | None, backend: str, runs: int = 100, warmup: int = 10,
              threads: int | None = None, delegate: str | None = None, image: ImageSource | None = None,
              parallel: int = 1, progress: Progress | None = None) -> BackendRun:
    """Measure one backend; ``backend`` is "cpu" or "npu" (never falls back).

    With ``parallel`` > 1, N more interpreters run concurrently; on the CPU without ``threads``
    each gets an equal share of the fast cores, so they do not fight over them.
    """
    check_parallel(parallel)
    started = time.perf_counter()
    try:
        model = load(path, backend, delegate=delegate, threads=threads)
    except BackendError as why:
        return BackendRun(backend, error=why)
    if backend == "npu" and not model.backend.npu_node_indices:
        return BackendRun(backend, error=BackendError(
            f"the delegate {model.backend.delegate} took none of this model's operators, so nothing "
            "would run on the NPU", reason=Reason.DELEGATE_TOOK_NOTHING, library=model.backend.delegate))
    run = BackendRun(backend, info=model.backend, init_ms=(time.perf_counter() - started) * 1e3)
    if image is not None and len(model.inputs) != 1:
        raise UsageError(f"image needs a model with one image input; {model.path.name} has "
                         f"{len(model.inputs)} inputs", "leave image out to use random inputs",
                         Reason.BAD_VALUE, option="image")
    tensors = [model.preprocess(image)] if image is not None else random_inputs(model)
    run.first_ms = timed_invoke(model, tensors)
    run.warmup_ms = [timed_invoke(model, tensors) for _ in range(warmup)]
    for _ in range(runs):
        run.latencies_ms.append(timed_invoke(model, tensors))
        if progress:
            progress(1)
    if parallel > 1:
        share = threads
        if share is None:
            share = max(1, plan_threads(SystemRoot.from_env()).threads // parallel)
        run.parallel = run_parallel(model, tensors, parallel, runs, share, progress)
    return run


def run_parallel(model: Model, tensors: list[np.ndarray], interpreters: int, runs: int,
                 threads: int | None = None, progress: Progress | None = None) -> ParallelRun:
    """``interpreters`` clones of ``model`` (``threads`` each) invoking ``runs`` times concurrently.

    The scaling baseline is one such clone running alone.
    """
    models = [model.clone(threads=threads) for _ in range(interpreters)]
    for clone in models:
        timed_invoke(clone, tensors)  # first invoke (NPU graph compilation) outside the timing
    single = latency_stats([timed_invoke(models[0], tensors) for _ in range(max(10, runs // 2))])
    barrier = threading.Barrier(interpreters + 1)

    def work(worker: Model) -> int:
        barrier.wait()
        for _ in range(runs):
            worker.invoke(*tensors)
            if progress:
                progress(1)
        return runs

    with ThreadPoolExecutor(interpreters) as pool:
        futures = [pool.submit(work, m) for m in models]
        barrier.wait()
        started = time.perf_counter()
        errors = [f.exception() for f in futures if f.exception() is not None]
        seconds = time.perf_counter() - started
    if errors:
        raise BackendError(f"A parallel interpreter failed: {errors[0]}.", reason=Reason.PARALLEL_FAILED)
    return ParallelRun(interpreters, sum(f.result() for f in futures), seconds, single.per_second,
                       models[0].backend.threads)
