"""Live video sources the server watches continuously (``serve --source NAME=URL``), free of HTTP.

Each source runs in its own thread with its own interpreter (a clone of the served detector), so
HTTP requests never wait behind a camera. The newest annotated frame is kept as a JPEG for the
MJPEG endpoint and the web page; counters and latencies feed ``/v1/streams``. A source that is
gone for good (its reconnections exhausted) is reopened after a pause: a server outlives its
cameras' reboots.
"""

from __future__ import annotations

import io
import logging
import statistics
import threading
import time
from collections import deque
from typing import Any, NamedTuple

from bredos_npu.errors import BredosNpuError, Reason, UsageError

log = logging.getLogger("bredos_npu.serve")
REOPEN_PAUSE = (1.0, 30.0)  # seconds between attempts to reopen a source that is gone, doubling


class StreamSpec(NamedTuple):
    """``NAME=URL``: a name for the page and the API, and a video source."""

    name: str
    url: str

    @classmethod
    def parse(cls, text: str) -> StreamSpec:
        name, sep, url = text.partition("=")
        if not sep or not name.strip() or not url.strip() or "/" in name:
            raise UsageError(f"The source {text!r} is not of the form NAME=URL (a name without '/').",
                             reason=Reason.BAD_VALUE, option="source", value=text)
        return cls(name.strip(), url.strip())


class LiveStream:
    """One source analysed continuously by ``model`` (detection), in a thread of its own."""

    def __init__(self, name: str, url: str, model: Any, threshold: float = 0.5,
                 read_timeout: float = 10.0) -> None:
        self.name, self.url, self.model = name, url, model
        self.threshold, self.read_timeout = threshold, read_timeout
        self.state = "starting"
        self.error: str | None = None
        self.info: Any = None
        self.analysed = 0
        self.frames_in = self.dropped = self.reconnects = 0
        self.delays: deque[float] = deque(maxlen=100)
        self.inferences: deque[float] = deque(maxlen=100)
        self.detections: list[dict[str, Any]] = []
        self.jpeg: bytes | None = None
        self.version = 0  # bumps with every new JPEG
        self.started = time.time()
        self._stats: Any = None
        self._stream: Any = None
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream {name}", daemon=True)

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def start(self) -> LiveStream:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to end (returns at once)."""
        self._closing.set()
        stream = self._stream
        if stream is not None:
            stream.stop()

    def close(self, timeout: float = 5.0) -> None:
        self.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def status(self) -> dict[str, Any]:
        """What ``/v1/streams`` shows: state, frame rates in and out, drops, reconnections and the
        delay from a frame's arrival to its result (ms)."""
        from bredos_npu.runtime.video import redact

        stats = self._stats
        in_rate = stats.rate_in() if stats else 0.0
        out_rate = stats.rate_out() if stats else 0.0
        return {
            "name": self.name, "url": redact(self.url), "state": self.state, "error": self.error,
            "width": self.info.width if self.info else None,
            "height": self.info.height if self.info else None,
            "source_fps": round(float(self.info.rate), 3) if self.info and self.info.rate else None,
            "fps_in": round(in_rate, 2), "fps_out": round(out_rate, 2),
            "frames_in": self.frames_in + (stats.frames_in if stats else 0),
            "frames_analysed": self.analysed,
            "dropped": self.dropped + (stats.dropped if stats else 0),
            "reconnects": self.reconnects + (stats.reconnects if stats else 0),
            "latency_ms": {"last": round(self.delays[-1], 1) if self.delays else None,
                           "median": round(statistics.median(self.delays), 1) if self.delays else None},
            "inference_ms": round(statistics.median(self.inferences), 1) if self.inferences else None,
            "detections": self.detections,
        }

    # --- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        pause = REOPEN_PAUSE[0]
        while not self.closing:
            self.state = "connecting"
            try:
                self._watch()
                pause = REOPEN_PAUSE[0]
            except BredosNpuError as error:
                self.error = str(error)
                log.warning("stream %s: %s", self.name, error)
            except Exception as error:  # a bug must not end the server's watch silently
                self.error = f"{type(error).__name__}: {error}"
                log.exception("stream %s failed", self.name)
            finally:
                self._retire()
            if self.closing:
                break
            if self.info is not None and not self.info.live and self.error is None:
                self.state = "ended"  # a file played to its end
                return
            self.state = "waiting"
            if self._closing.wait(pause):
                break
            pause = min(REOPEN_PAUSE[1], pause * 2)
        self.state = "stopped"

    def _watch(self) -> None:
        stream = self.model.detect_stream(self.url, self.threshold, read_timeout=self.read_timeout,
                                          on_event=lambda line: log.warning("stream %s: %s", self.name, line))
        self._stream, self._stats, self.info = stream, stream.stats, stream.info
        if self.closing:
            stream.stop()
        self.state, self.error = "running", None
        for result in stream:
            if result.ok:
                self._publish(result)

    def _publish(self, result: Any) -> None:
        from PIL import Image

        from bredos_npu.tasks.draw import draw_detections

        picture = draw_detections(Image.fromarray(result.image), result.value)
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=80)
        self.jpeg, self.version = out.getvalue(), self.version + 1
        self.analysed += 1
        self.delays.append(result.delay_ms)
        self.inferences.append(result.inference_ms)
        self.detections = [{"label": d.label, "score": round(d.score, 4),
                            "box": {k: round(v, 1) for k, v in d.bbox._asdict().items()}}
                           for d in result.value]

    def _retire(self) -> None:
        """Fold the finished connection's counters into the totals."""
        stats, self._stats, self._stream = self._stats, None, None
        if stats is not None:
            self.frames_in += stats.frames_in
            self.dropped += stats.dropped
            self.reconnects += stats.reconnects


class Streams:
    """Every watched source by name."""

    def __init__(self, streams: list[LiveStream] | None = None) -> None:
        self.streams = {s.name: s for s in streams or []}

    def start(self) -> None:
        for stream in self.streams.values():
            stream.start()

    def stop(self) -> None:
        """Ask every source to stop now (quick: safe in a signal handler)."""
        for stream in self.streams.values():
            stream.stop()

    def close(self) -> None:
        self.stop()
        for stream in self.streams.values():
            stream.close()

    def __bool__(self) -> bool:
        return bool(self.streams)
