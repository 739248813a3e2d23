"""A task run continuously on a video source: the decode thread feeds the bounded pipeline.

On a board the NPU runs while the CPU decodes the next frame. A live source keeps only
``parallel`` frames in flight (one per interpreter), so every result is about a frame at most
one frame interval old when its inference started.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from bredos_npu.runtime.pipeline import run_pipeline
from bredos_npu.runtime.video import Frame, SourceStats, VideoInfo, VideoSource


class FrameResult(NamedTuple):
    """A task's result for one frame.

    frame: index of the frame in the source (0-based, every decoded frame counts). time:
    seconds (the frame's time stamp). value: the task's result (e.g. a list of Detection), None
    when ``error`` (one sentence) is set. image: the frame, HxWx3 uint8 RGB. preprocess_ms /
    inference_ms: time spent in each stage. delay_ms: from the frame's arrival (decoded) to
    its result.
    """

    frame: int
    time: float
    value: Any
    error: str | None
    image: np.ndarray
    preprocess_ms: float
    inference_ms: float
    delay_ms: float

    @property
    def ok(self) -> bool:
        """True when there is a ``value`` (no ``error``)."""
        return self.error is None


class Stream:
    """The results of ``task`` on the kept frames of a video source, in frame order.

    Iterate it once; the iteration ends at the end of a file or after :meth:`stop`, and raises
    the source's error (``SourceError`` for a live source gone for good, ``ImageError`` for a
    corrupt file) after the last result. ``stats`` and ``info`` describe the source while it runs.
    """

    def __init__(self, model: Any, source: str | os.PathLike[str],
                 task: Callable[[Any, Any], Any], parallel: int = 1, **video: Any) -> None:
        self.model, self.task, self.parallel = model, task, parallel
        self.source = VideoSource(source, **video)
        self.info: VideoInfo = self.source.open()

    @property
    def stats(self) -> SourceStats:
        """The source's counters (frames in/out, dropped, reconnects), live while it runs."""
        return self.source.stats

    @property
    def error(self) -> Exception | None:
        """Why the source ended early (a BredosNpuError), or None."""
        return self.source.error

    @property
    def name(self) -> str:
        """The source as shown in messages (a path, a URL without its password, a camera)."""
        return self.source.name

    def stop(self) -> None:
        """End the stream after the frames in flight (safe from signal handlers and threads)."""
        self.source.stop()

    def close(self) -> None:
        """Stop decoding and release the source (a file, a connection, a camera) at once."""
        self.source.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[FrameResult]:
        return self.results()

    def results(self, raise_at_end: bool = True) -> Iterator[FrameResult]:
        """Like iterating; with ``raise_at_end=False`` the source's error is left in ``error``."""
        frames: deque[Frame] = deque()

        def images() -> Iterator[np.ndarray]:
            for frame in self.source.frames():
                frames.append(frame)
                yield frame.image

        live = self.source.live
        try:
            for result in run_pipeline(self.model, images(), self.task, parallel=self.parallel,
                                       decoders=1 if live else None,
                                       window=self.parallel if live else None):
                frame = frames.popleft()
                yield FrameResult(frame.index, frame.time, result.value, result.error, frame.image,
                                  result.preprocess_ms, result.inference_ms,
                                  (time.perf_counter() - frame.arrived) * 1e3)
        finally:
            self.close()
        if raise_at_end and self.error is not None:
            raise self.error
