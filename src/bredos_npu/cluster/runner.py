"""The driver of a cluster run: actors, bounded work in flight, input order, retries.

At most ``window`` batches are in flight per actor and results are yielded in input order as soon
as the next one is in, so the driver's memory stays flat on any number of images. A batch whose
actor dies (a node lost, a process killed) goes back to the queue for the surviving actors, and a
new actor is started in the dead one's place (at most as many as the run began with): it joins
once Ray finds room for it (the dead actor's resources, freed; or a node that joins), and until
then the others carry on. An image that fails is a per-image error like in a local run, never
retried.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bredos_npu.cluster import NPU_RESOURCE
from bredos_npu.cluster.connect import connect
from bredos_npu.cluster.worker import Item, ModelWorker
from bredos_npu.errors import BackendError, Reason, UsageError
from bredos_npu.runtime.pipeline import Result

BATCH_SECONDS = 600.0  # a batch that takes longer is taken as a hung actor and given to another
START_SECONDS = 60.0  # how long a run whose workers all died waits for a replacement to start


@dataclass
class ClusterRun:
    """A run in progress: iterate it for Results; counters fill in as it goes.

    workers: each actor's node, backend and pid when it started (replacements appended). retried:
    images sent again after their actor died. lost_actors: actors that died during the run.
    replaced: actors started in place of dead ones that joined the run.
    """

    results: Iterator[Result]
    workers: list[dict[str, Any]] = field(default_factory=list)
    retried: int = 0
    lost_actors: int = 0
    replaced: int = 0

    def __iter__(self) -> Iterator[Result]:
        return self.results


def run_on_cluster(address: str, model: str | os.PathLike[str] | None, task: str,
                   sources: Iterable[str | os.PathLike[str]], options: dict[str, Any] | None = None,
                   *, ship: bool = False, labels: str | os.PathLike[str] | None = None,
                   load_options: dict[str, Any] | None = None, batch: int = 4, window: int = 2,
                   actors: int | None = None) -> ClusterRun:
    """Run ``Model.<task>_many(sources, **options)`` on the Ray cluster at ``address``.

    model: a .tflite path or zoo name, resolved here on the driver and sent once per node.
    sources: image paths that every node can read (shared storage), or with ``ship`` read here
    and sent as bytes. load_options: passed to :func:`bredos_npu.load` on each actor (backend,
    threads...). actors: how many (default: one per ``rk3588_npu`` resource of the cluster, else
    one per CPU). batch: images per request; window: requests in flight per actor.
    """
    from bredos_npu.models import bundled, zoo

    if batch < 1 or window < 1 or (actors is not None and actors < 1):
        raise UsageError(f"batch, window and actors must be 1 or more, not {batch}, {window}, {actors}",
                         reason=Reason.BAD_VALUE, option="batch", value=(batch, window, actors))
    resolved = zoo.resolve(model) if model is not None else None
    model_path = resolved.path if resolved else bundled.default_model()
    labels = labels if labels is not None else (resolved.labels if resolved else None)
    ray = connect(address)
    model_ref = ray.put(Path(model_path).read_bytes())  # one copy in the object store per node
    labels_bytes = Path(labels).read_bytes() if labels is not None else None
    pool, workers, spawn = _start_actors(ray, model_ref, model_path.name, labels_bytes, task,
                                         options or {}, load_options or {}, actors)
    run = ClusterRun(iter(()), workers)
    run.results = _drive(ray, pool, spawn, sources, ship, batch, window, run)
    return run


def _start_actors(ray: Any, model_ref: Any, name: str, labels: bytes | None, task: str,
                  options: dict[str, Any], load_options: dict[str, Any], count: int | None
                  ) -> tuple[list[Any], list[dict[str, Any]], Callable[[], Any]]:
    """One actor per NPU core of the cluster (or per CPU without NPU cores), models loaded; and
    how to start one more like them."""
    resources = ray.cluster_resources()
    npu_cores = int(resources.get(NPU_RESOURCE, 0))
    if npu_cores:
        remote = ray.remote(resources={NPU_RESOURCE: 1}, num_cpus=0, max_restarts=0)(ModelWorker)
    else:  # a CPU actor per core, each with one XNNPACK thread so they do not fight
        remote = ray.remote(num_cpus=1, max_restarts=0)(ModelWorker)
        load_options = {"threads": 1, **load_options}
    count = count or npu_cores or max(1, int(resources.get("CPU", 1)))
    def spawn() -> Any:
        return remote.remote(model_ref, name, labels, task, options, load_options)

    pool = [spawn() for _ in range(count)]
    try:
        workers = ray.get([actor.describe.remote() for actor in pool], timeout=BATCH_SECONDS)
    except ray.exceptions.RayActorError as why:  # the model failed to load on a node
        raise BackendError(f"A cluster worker could not load the model: {_first_line(why)}",
                           reason=Reason.MODEL_LOAD_FAILED) from None
    except ray.exceptions.GetTimeoutError:
        raise BackendError(f"The cluster did not start {count} workers within {BATCH_SECONDS:.0f} s "
                           f"(each needs one {NPU_RESOURCE if npu_cores else 'CPU'})",
                           reason=Reason.CLUSTER_NO_WORKERS) from None
    return pool, workers, spawn


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if "Error" in line and "Traceback" not in line]
    return (useful or lines or [type(error).__name__])[-1][:300]


def _batches(sources: Iterable[str | os.PathLike[str]], size: int, ship: bool) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for index, source in enumerate(sources):
        name = str(source)
        chunk.append((index, name, _read(name) if ship else str(Path(name).absolute())))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _read(name: str) -> bytes:
    """The file's bytes for shipping; an unreadable file ships as empty bytes and fails as an image."""
    try:
        return Path(name).read_bytes()
    except OSError:
        return b""


def _drive(ray: Any, pool: list[Any], spawn: Callable[[], Any], sources: Iterable[str | os.PathLike[str]],
           ship: bool, batch: int, window: int, run: ClusterRun) -> Iterator[Result]:
    todo = _batches(sources, batch, ship)
    retry: deque[list[Item]] = deque()
    in_flight: dict[Any, tuple[Any, list[Item]]] = {}  # ObjectRef -> (actor, batch)
    starting: dict[Any, Any] = {}  # describe() ObjectRef -> replacement actor
    replacements = len(pool)
    load = {id(actor): 0 for actor in pool}
    finished: dict[int, Result] = {}
    names: dict[int, str] = {}
    next_index, exhausted = 0, False
    try:
        while True:
            exhausted = _submit(pool, load, window, retry, todo, in_flight, names, exhausted)
            while next_index in finished:
                yield finished.pop(next_index)
                next_index += 1
            if not in_flight:
                if exhausted and not retry:
                    return
                if not pool and not starting:
                    raise BackendError("Every cluster worker died; the results so far are kept",
                                       reason=Reason.CLUSTER_NO_WORKERS)
                if pool:
                    continue
            ready, _ = ray.wait([*in_flight, *starting], num_returns=1,
                                timeout=BATCH_SECONDS if in_flight else START_SECONDS)
            if not ready and not in_flight:  # no room for a replacement: the run cannot go on
                _give_up(ray, starting)
                continue
            if not ready:  # hung: give its batches to the others
                ready = [next(iter(in_flight))]
            for ref in ready:
                if ref in starting:
                    _join(ray, ref, starting.pop(ref), pool, load, run)
                    continue
                actor, items = in_flight.pop(ref)
                load[id(actor)] -= 1
                try:
                    node, done = ray.get(ref, timeout=0)
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                    if _lose(ray, actor, pool, load, in_flight, retry, run) and replacements:
                        replacements -= 1
                        replacement = spawn()
                        starting[replacement.describe.remote()] = replacement
                    retry.appendleft(items)
                    run.retried += len(items)
                    continue
                for index, value, error, preprocess_ms, inference_ms in done:
                    finished[index] = Result(index, names.pop(index), value, error, preprocess_ms,
                                             inference_ms, node)
    finally:
        for actor in [*pool, *starting.values()]:
            ray.kill(actor)


def _join(ray: Any, ref: Any, actor: Any, pool: list[Any], load: dict[int, int], run: ClusterRun) -> None:
    """A replacement actor that started (its model loaded) takes its share of the work."""
    try:
        info = ray.get(ref, timeout=0)
    except ray.exceptions.RayError:  # it died while starting: the others go on
        ray.kill(actor)
        return
    pool.append(actor)
    load[id(actor)] = 0
    run.workers.append(info)
    run.replaced += 1


def _give_up(ray: Any, starting: dict[Any, Any]) -> None:
    for actor in starting.values():
        ray.kill(actor)
    starting.clear()


def _submit(pool: list[Any], load: dict[int, int], window: int, retry: deque[list[Item]],
            todo: Iterator[list[Item]], in_flight: dict[Any, tuple[Any, list[Item]]],
            names: dict[int, str], exhausted: bool) -> bool:
    """Fill every actor up to ``window`` batches in flight (retries first); True once inputs ran out."""
    for actor in sorted(pool, key=lambda a: load[id(a)]):
        while load[id(actor)] < window:
            if retry:
                items = retry.popleft()
            elif exhausted:
                return True
            else:
                items = next(todo, None)
                if items is None:
                    return True
                names.update({index: name for index, name, _ in items})
            in_flight[actor.run.remote(items)] = (actor, items)
            load[id(actor)] += 1
    return exhausted


def _lose(ray: Any, actor: Any, pool: list[Any], load: dict[int, int],
          in_flight: dict[Any, tuple[Any, list[Item]]], retry: deque[list[Item]], run: ClusterRun) -> bool:
    """Drop a dead (or hung) actor; its other batches in flight go back to the queue. False when
    it was dropped before."""
    if actor not in pool:
        return False
    pool.remove(actor)
    run.lost_actors += 1
    for ref, (owner, items) in list(in_flight.items()):
        if owner is actor:
            del in_flight[ref]
            retry.append(items)
            run.retried += len(items)
    load.pop(id(actor), None)
    ray.kill(actor)
    return True
