"""Many inputs through one model: decoding ahead of inference, N interpreters, input order kept.

Decoding (Pillow) and TFLite's invoke both release the GIL, so threads overlap them for real.
At most ``window`` inputs are in flight, so memory stays flat on a folder of any size.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from bredos_npu.errors import BredosNpuError, ImageError, Reason, UsageError
from bredos_npu.inputs import IMAGE_SUFFIXES, is_folder, shown
from bredos_npu.system.cpu import check_parallel, parallel_limit

if TYPE_CHECKING:
    from concurrent.futures import Future


class Result(NamedTuple):
    """One input's outcome: ``value`` (e.g. a list of Class) or ``error`` (one sentence).

    index: position in the input sequence. source: the input as given (a path or "<array>").
    preprocess_ms / inference_ms: time spent on this input in each stage.
    """

    index: int
    source: str
    value: Any
    error: str | None
    preprocess_ms: float
    inference_ms: float
    node: str | None = None  # the cluster node that computed it (None: this machine)

    @property
    def ok(self) -> bool:
        """True when there is a ``value`` (no ``error``)."""
        return self.error is None


class UnreadableFolder(NamedTuple):
    """A folder met while expanding the inputs that could not be listed (no permission, path
    too long...): :func:`run_pipeline` reports it as a failed input, like a broken image."""

    path: Path
    error: ImageError

    def __str__(self) -> str:
        return str(self.path)


def expand_sources(paths: Iterable[str | os.PathLike[str]], recursive: bool = False
                   ) -> Iterator[Path | UnreadableFolder]:
    """Files as given, and the image files inside folders (sorted; subfolders with ``recursive``).

    Lazily, folder by folder, so a tree of 100 000 images is walked while the first ones are
    classified. Files named explicitly are yielded whatever their suffix (a broken one is then
    reported); symbolic links to folders are not followed. A folder that cannot be listed is
    yielded as an :class:`UnreadableFolder`, so it is reported instead of silently skipped.
    """
    for given in paths:
        path = Path(given)
        if not is_folder(path):
            yield path  # whatever it is: a path that cannot be read is reported with the images
            continue
        yield from _walk(path, recursive)


def _walk(top: Path, recursive: bool) -> Iterator[Path | UnreadableFolder]:
    """Depth first like os.walk, but with its own stack (os.walk recurses and fails on very deep
    trees on Python 3.11) and with the folders it cannot list reported."""
    stack = [top]
    while stack:
        folder = stack.pop()
        files, subfolders = [], []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if _is_folder(entry):
                        if not entry.is_symlink():
                            subfolders.append(entry.name)
                    elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                        files.append(entry.name)
        except OSError as error:
            yield UnreadableFolder(folder, ImageError(
                f"Cannot read the folder {shown(folder)}: {(error.strerror or str(error)).lower()}; "
                "its images were skipped", reason=Reason.FOLDER_UNREADABLE, path=folder))
            continue
        yield from (folder / name for name in sorted(files))
        if recursive:
            stack.extend(folder / name for name in sorted(subfolders, reverse=True))


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def default_decoders() -> int:
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def one_input(sources: Any) -> bool:
    """True for a single image given where many are expected (a path is not a list of letters)."""
    from PIL import Image

    return isinstance(sources, (str, bytes, os.PathLike, np.ndarray, Image.Image, io.IOBase))


def failure(error: Exception) -> str:
    """One line for a per-image report: our sentence, or the library's with its type."""
    if isinstance(error, BredosNpuError):
        return str(error)  # already one sentence (a file name in it may hold anything: CLI escapes)
    return " ".join(f"{type(error).__name__}: {error}".split())


class Interpreters:
    """The model and its clones, made only when an input waits for one (at most ``limit``).

    One input never costs a clone; a folder on ``parallel=N`` makes the N - 1 clones it uses.
    """

    def __init__(self, model: Any, limit: int) -> None:
        self.model, self.limit, self.made = model, limit, 1
        self.idle = [model]
        self.changed = threading.Condition()

    def take(self) -> Any:
        with self.changed:
            if not self.idle and self.made < self.limit:
                self.made += 1
                number = self.made
            else:
                self.changed.wait_for(lambda: self.idle)
                return self.idle.pop()
        return self.model.workers(number)[-1]  # outside the lock: the others go on meanwhile

    def give(self, worker: Any) -> None:
        with self.changed:
            self.idle.append(worker)
            self.changed.notify()


def run_pipeline(model: Any, sources: Iterable[Any] | Any, task: Callable[[Any, Any], Any],
                 parallel: int = 1, decoders: int | None = None,
                 window: int | None = None) -> Iterator[Result]:
    """Yield ``task(model, model.prepare(source))`` for each source, in input order.

    ``sources`` may also be one image (a path, an array). Any failure of one input (an image
    that cannot be read, a path too long, a bug in post-processing) becomes that input's
    ``Result.error`` and the others go on; errors about the model, the options or the backend
    (ModelError, UsageError, BackendError) stop the run.
    Options are checked here, before the first input is read. ``window``: inputs in flight at
    most (default: enough to keep every stage busy); a live video source passes ``parallel`` so
    that no frame waits behind another one.
    """
    if parallel < 1 or (decoders is not None and decoders < 1):
        raise UsageError(f"parallel and decoders must be 1 or more, not {parallel} and {decoders}.",
                         reason=Reason.BAD_VALUE, option="parallel", value=(parallel, decoders))
    check_parallel(parallel)
    if decoders is not None and decoders > parallel_limit():  # one decoding thread per core at most
        raise UsageError(f"decoders must be at most {parallel_limit()} here, not {decoders}.",
                         reason=Reason.BAD_VALUE, option="decoders", value=decoders)
    if one_input(sources):
        sources = [sources]
    # Known to be one input (a list of one, not a generator that would have to be read ahead):
    # nothing to overlap, so no threads (a faster CLI start).
    single = isinstance(sources, Sized) and len(sources) == 1
    return _results(model, iter(sources), task, parallel, decoders or default_decoders(), window,
                    single)


def _results(model: Any, sources: Iterator[Any], task: Callable[[Any, Any], Any], parallel: int,
             decoders: int, window: int | None = None, single: bool = False) -> Iterator[Result]:
    def decode(source: Any) -> tuple[Any, str | None, float]:
        if isinstance(source, UnreadableFolder):
            return None, str(source.error), 0.0
        started = time.perf_counter()
        try:
            return model.prepare(source), None, (time.perf_counter() - started) * 1e3
        except ImageError as error:
            return None, failure(error), (time.perf_counter() - started) * 1e3
        except BredosNpuError:
            raise  # about the model or the options (e.g. not an image model), not this input
        except Exception as error:  # one input's failure is reported, not raised
            return None, failure(error), (time.perf_counter() - started) * 1e3

    def infer(index: int, source: Any, decoded: Callable[[], tuple[Any, str | None, float]],
              interpreters: Interpreters) -> Result:
        prepared, error, prepare_ms = decoded()
        label = "<array>" if isinstance(source, np.ndarray) else str(source)
        if prepared is None:
            return Result(index, label, None, error, prepare_ms, 0.0)
        worker = interpreters.take()
        started = time.perf_counter()
        try:
            value = task(worker, prepared)
        except ImageError as error:
            return Result(index, label, None, failure(error), prepare_ms, 0.0)
        except BredosNpuError:
            raise  # the backend or the model failed, not this input
        except Exception as error:  # one input's failure is reported, not raised
            return Result(index, label, None, failure(error), prepare_ms, 0.0)
        finally:
            interpreters.give(worker)
        return Result(index, label, value, None, prepare_ms, (time.perf_counter() - started) * 1e3)

    if single:
        source = next(sources)
        yield infer(0, source, lambda: decode(source), Interpreters(model, 1))
        return
    yield from _overlapped(sources, decode, infer, Interpreters(model, parallel), decoders,
                           window or 2 * (parallel + decoders))


def _overlapped(sources: Iterator[Any], decode: Callable[[Any], tuple[Any, str | None, float]],
                infer: Callable[..., Result], interpreters: Interpreters, decoders: int,
                window: int) -> Iterator[Result]:
    """``infer`` of each ``decode``d source in input order: decoding on ``decoders`` threads,
    inference on one thread per interpreter, at most ``window`` inputs in flight."""
    from concurrent.futures import ThreadPoolExecutor

    decode_pool = ThreadPoolExecutor(decoders, "decode")
    infer_pool = ThreadPoolExecutor(interpreters.limit, "infer")
    try:
        pending: deque[Future] = deque()
        for index, source in enumerate(sources):
            decoded = decode_pool.submit(decode, source)
            pending.append(infer_pool.submit(infer, index, source, decoded.result, interpreters))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # the consumer may stop early: drop what is queued instead of finishing it
        decode_pool.shutdown(wait=True, cancel_futures=True)
        infer_pool.shutdown(wait=True, cancel_futures=True)
