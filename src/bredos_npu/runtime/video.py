"""Video sources and annotated video files, decoded and encoded with PyAV (the ``[video]`` extra).

A source is a video file, an ``rtsp://``/``rtsps://`` camera, an ``http(s)://`` stream (MJPEG or
HLS) or a V4L2 device (``/dev/videoN``). One decode thread per source reads it while the
interpreters run:

- files give every frame (or every Nth, or N per second of video) through a small bounded queue,
  so decoding waits for inference and nothing is skipped;
- live sources keep only the newest frame (a one-slot mailbox): a slow model never works on stale
  pictures, and the delay from a frame's arrival to its result stays bounded. A dropped stream is
  reopened with a doubling back-off (logged and counted); the first connection must succeed.

Times are seconds (the frame's presentation time stamp); ``arrived`` is ``time.perf_counter()``
when the frame was decoded, for latency measurements.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bredos_npu.errors import (
    BredosNpuError,
    ImageError,
    OutputError,
    Reason,
    RuntimeMissingError,
    SourceError,
    UsageError,
)
from bredos_npu.inputs import source_kind

log = logging.getLogger("bredos_npu.video")

INSTALL_HINT = "pip install 'bredos-npu[video]'"

# RTSP over TCP (UDP loses packets on busy Wi-Fi and is blocked by most NATs) and FFmpeg's
# low-delay switches: no input buffering, no B-frame reordering wait, a short probe.
RTSP_OPTIONS = {"rtsp_transport": "tcp", "fflags": "nobuffer", "flags": "low_delay",
                "max_delay": "500000", "analyzeduration": "1000000", "probesize": "500000"}
HTTP_OPTIONS = {"fflags": "nobuffer", "flags": "low_delay", "analyzeduration": "1000000"}


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise RuntimeMissingError("Video sources need PyAV", INSTALL_HINT, Reason.MISSING_PACKAGE,
                                  package="av", extra="video") from None
    return av


def redact(url: str) -> str:
    """The URL without its password (for logs and messages)."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


class Frame(NamedTuple):
    """One decoded frame: ``index`` in the source (0-based, counting every decoded frame),
    ``time`` in seconds (presentation time stamp), ``image`` HxWx3 uint8 RGB, ``arrived``
    (``time.perf_counter()`` when it was decoded)."""

    index: int
    time: float
    image: np.ndarray
    arrived: float


class VideoInfo(NamedTuple):
    """What the source is: size in pixels, frames per second (None when unknown), live or not,
    the codec name."""

    width: int
    height: int
    rate: Fraction | None
    live: bool
    codec: str


@dataclass
class SourceStats:
    """Counters of a running source (read them from any thread).

    frames_in: frames decoded. frames_out: frames handed on. dropped: live frames replaced by a
    newer one before anyone took them. reconnects: times a dropped live source was reopened.
    """

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    reconnects: int = 0
    started: float = field(default_factory=time.perf_counter)

    def rate_in(self) -> float:
        """Frames decoded per second since the start."""
        return self.frames_in / max(1e-9, time.perf_counter() - self.started)

    def rate_out(self) -> float:
        """Frames handed on per second since the start."""
        return self.frames_out / max(1e-9, time.perf_counter() - self.started)


class Sampler:
    """Which frames to keep: all, every ``every``-th, or ``fps`` per second of video time."""

    def __init__(self, fps: float | None = None, every: int | None = None) -> None:
        if fps is not None and every is not None:
            raise UsageError("Choose one of fps and every, not both", reason=Reason.BAD_VALUE,
                             option="fps")
        if fps is not None and not fps > 0:
            raise UsageError(f"fps must be more than 0, not {fps}", reason=Reason.BAD_VALUE, option="fps")
        if every is not None and every < 1:
            raise UsageError(f"every must be 1 or more, not {every}", reason=Reason.BAD_VALUE,
                             option="every")
        self.fps, self.every = fps, every
        self.next_time: float | None = None

    def keep(self, index: int, seconds: float) -> bool:
        if self.every is not None:
            return index % self.every == 0
        if self.fps is None:
            return True
        if self.next_time is not None and seconds < self.next_time - 1e-6:
            return False
        start = seconds if self.next_time is None else self.next_time
        # Skip ahead whole periods after a gap, so a stall does not cause a burst.
        periods = max(1, int((seconds - start) * self.fps) + 1)
        self.next_time = start + periods / self.fps
        return True


class LatestFrame:
    """A one-slot mailbox: ``put`` replaces the frame not taken yet (counted as dropped)."""

    def __init__(self, stats: SourceStats) -> None:
        self._frame: Frame | None = None
        self._closed = False
        self._changed = threading.Condition()
        self._stats = stats

    def put(self, frame: Frame) -> None:
        with self._changed:
            if self._frame is not None:
                self._stats.dropped += 1
            self._frame = frame
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def take(self) -> Frame | None:
        """The newest frame not taken yet, waiting for one; None once closed and empty."""
        with self._changed:
            while self._frame is None and not self._closed:
                self._changed.wait(0.5)
            frame, self._frame = self._frame, None
            return frame


class VideoSource:
    """Frames of one video source, decoded in a thread. Use it as a context manager or call
    :meth:`open` then iterate :meth:`frames` and call :meth:`close`.

    source: a file path, ``rtsp(s)://`` or ``http(s)://`` URL, or ``/dev/videoN``.
    fps / every: keep N frames per second of video time / every Nth frame (default: all).
    live: latest-frame semantics (default: True for URLs and devices, False for files).
    open_timeout / read_timeout: seconds to wait for the source to open / for data once open.
    retries: times to reopen a live source that dropped before giving up (None: forever).
    backoff: (first, longest) wait in seconds between reconnection attempts.
    on_event: called with one line of text when the source drops or comes back.
    """

    def __init__(self, source: str | os.PathLike[str], *, fps: float | None = None,
                 every: int | None = None, live: bool | None = None, open_timeout: float = 10.0,
                 read_timeout: float = 5.0, retries: int | None = 10,
                 backoff: tuple[float, float] = (0.5, 10.0),
                 on_event: Callable[[str], None] | None = None) -> None:
        self.source = str(source)
        self.kind = source_kind(self.source) or "file"
        self.live = self.kind != "file" if live is None else live
        self.sampler = Sampler(fps, every)
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        if retries is not None and retries < 0:
            raise UsageError(f"retries must be 0 or more, not {retries}", reason=Reason.BAD_VALUE,
                             option="retries")
        self.retries, self.backoff = retries, backoff
        self.on_event = on_event or (lambda line: log.warning("%s", line))
        self.stats = SourceStats()
        self.info: VideoInfo | None = None
        self.error: Exception | None = None  # why the source ended early, if it did
        self._stop = threading.Event()
        self._container: Any = None
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue[Frame | None] = queue.Queue(maxsize=4)
        self._latest = LatestFrame(self.stats)
        self._next_index = 0

    @property
    def name(self) -> str:
        return redact(self.source)

    def open(self) -> VideoInfo:
        """Open the source (errors raise here, once) and start decoding."""
        av = _av()
        self._container = self._connect(av)
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.info = VideoInfo(int(stream.codec_context.width), int(stream.codec_context.height),
                              Fraction(rate) if rate else None, self.live, stream.codec_context.name)
        self.stats.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name=f"video {self.name}", daemon=True)
        self._thread.start()
        return self.info

    def frames(self) -> Iterator[Frame]:
        """The kept frames in order (files) or the newest ones as they are asked for (live).

        Ends at the end of a file, after :meth:`stop`, or when a live source is gone for good
        (``error`` then says why).
        """
        if self._thread is None:
            self.open()
        while True:
            frame = self._latest.take() if self.live else self._take_queued()
            if frame is None:
                return
            self.stats.frames_out += 1
            yield frame

    def stop(self) -> None:
        """Ask the decode thread to end; :meth:`frames` then ends after the frame in hand."""
        self._stop.set()
        self._latest.close()

    def close(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout=self.read_timeout + 2)
        self._release()

    def __enter__(self) -> VideoSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the decode thread ---------------------------------------------------------------------

    def _take_queued(self) -> Frame | None:
        while True:
            try:
                return self._queue.get(timeout=0.5)
            except queue.Empty:
                if self._thread is not None and not self._thread.is_alive() and self._queue.empty():
                    return None

    def _run(self) -> None:
        try:
            self._decode_until_done()
        except Exception as error:  # a bug or an unforeseen FFmpeg error: end the stream, say why
            self.error = error
        finally:
            self._release()
            if self.live:
                self._latest.close()
            else:
                self._put_queued(None)

    def _decode_until_done(self) -> None:
        while not self._stop.is_set():
            reason = self._decode_all()
            if self._stop.is_set():
                break
            if not self.live:
                if reason:
                    self.error = ImageError(f"{self.name} is corrupt after frame {self._next_index} "
                                            f"({reason})", reason=Reason.VIDEO_CORRUPT, path=self.source)
                break
            if not self._reconnect(reason or "the stream ended"):
                break

    def _decode_all(self) -> str | None:
        """Decode until the end, an error (returned as text) or a stop."""
        av = _av()
        stream = self._container.streams.video[0]
        if not self.live:
            stream.thread_type = "AUTO"  # frame threads: faster, at the price of a few frames' delay
        try:
            for decoded in self._container.decode(stream):
                if self._stop.is_set():
                    return None
                self._deliver(decoded)
        except (av.error.FFmpegError, OSError) as error:
            return _error_text(error)
        return None

    def _deliver(self, decoded: Any) -> None:
        index = self._next_index
        self._next_index += 1
        self.stats.frames_in += 1
        seconds = float(decoded.time) if decoded.time is not None else (
            index / float(self.info.rate) if self.info and self.info.rate else 0.0)
        if not self.sampler.keep(index, seconds):
            return
        frame = Frame(index, seconds, decoded.to_ndarray(format="rgb24"), time.perf_counter())
        if self.live:
            self._latest.put(frame)
        else:
            self._put_queued(frame)

    def _put_queued(self, frame: Frame | None) -> None:
        while True:
            try:
                self._queue.put(frame, timeout=0.5)
                return
            except queue.Full:
                if self._stop.is_set():  # nobody takes frames any more
                    return

    def _reconnect(self, reason: str) -> bool:
        """Reopen a dropped live source with a doubling back-off; False when giving up."""
        self._release()
        av = _av()
        wait, longest = self.backoff
        attempt = 0
        while self.retries is None or attempt < self.retries:
            attempt += 1
            self.on_event(f"{self.name}: dropped ({reason}); reconnecting in {wait:.1f} s "
                          f"(attempt {attempt}{f' of {self.retries}' if self.retries is not None else ''})")
            if self._stop.wait(wait):
                return False
            try:
                self._container = self._connect(av)
            except BredosNpuError as error:
                reason = str(error)
                wait = min(longest, wait * 2)
                continue
            self.stats.reconnects += 1
            self.on_event(f"{self.name}: reconnected (reconnection {self.stats.reconnects})")
            return True
        self.error = SourceError(f"{self.name} dropped ({reason}) and did not come back after "
                                 f"{attempt} attempt{'s' if attempt != 1 else ''}",
                                 reason=Reason.SOURCE_GONE, url=self.name, attempts=attempt)
        return False

    def _release(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close: nothing to keep
                container.close()

    # --- opening -------------------------------------------------------------------------------

    def _connect(self, av: Any) -> Any:
        """The opened container with a video stream, or one of our errors saying why not."""
        options, form = {}, None
        if self.kind == "rtsp":
            options = dict(RTSP_OPTIONS)
        elif self.kind == "http":
            options = dict(HTTP_OPTIONS)
        elif self.kind == "device":
            form = "v4l2"
            _check_device(self.source)
        elif not Path(self.source).exists():
            raise ImageError(f"Video not found: {self.source}", "check the path", Reason.VIDEO_NOT_FOUND,
                             path=self.source)
        elif Path(self.source).is_dir():
            raise ImageError(f"{self.source} is a folder, not a video", reason=Reason.IMAGE_IS_FOLDER,
                             path=self.source)
        try:
            container = av.open(self.source, format=form, options=options,
                                timeout=(self.open_timeout, self.read_timeout))
        except av.error.HTTPUnauthorizedError:
            raise SourceError(f"{self.name} refused the credentials (401 Unauthorized)",
                              "check the user name and password in the URL", Reason.SOURCE_UNAUTHORIZED,
                              url=self.name) from None
        except av.error.HTTPForbiddenError:
            raise SourceError(f"{self.name} refused access (403 Forbidden)",
                              reason=Reason.SOURCE_FORBIDDEN, url=self.name) from None
        except (av.error.FFmpegError, OSError) as error:
            raise self._open_failure(error) from None
        try:
            if not container.streams.video:
                raise ImageError(f"{self.name} has no video stream", reason=Reason.NOT_A_VIDEO,
                                 path=self.source)
            stream = container.streams.video[0]
            if stream.codec_context is None:  # FFmpeg has no decoder for it
                raise ImageError(f"{self.name}: its video codec is not supported by this FFmpeg "
                                 "(no decoder)", reason=Reason.UNSUPPORTED_CODEC, path=self.source)
            if self.live and stream.codec_context.name and not stream.codec_context.width:
                raise SourceError(f"{self.name} sent no picture within {self.open_timeout:g} s",
                                  reason=Reason.SOURCE_NO_PICTURE, url=self.name)
            if stream.codec_context.name is None or not stream.codec_context.width:
                raise ImageError(f"{self.name}: its video codec is not supported by this FFmpeg "
                                 f"(no decoder for {stream.codec_context.name or 'an unknown codec'})",
                                 reason=Reason.UNSUPPORTED_CODEC, path=self.source)
        except BaseException:
            container.close()
            raise
        return container

    def _open_failure(self, error: Exception) -> Exception:
        text = _error_text(error)
        if self.kind == "file":
            return ImageError(f"{self.name} is not a video PyAV can read ({text})",
                              reason=Reason.NOT_A_VIDEO, path=self.source)
        if self.kind == "device":
            return ImageError(f"Cannot open the camera {self.source} ({text})",
                              reason=Reason.CAMERA_UNUSABLE, path=self.source)
        if isinstance(error, (TimeoutError, ConnectionRefusedError, _av().error.ExitError)):
            return SourceError(f"{self.name} could not be reached within {self.open_timeout:g} s "
                               f"({text})", reason=Reason.SOURCE_UNREACHABLE, url=self.name)
        return SourceError(f"{self.name} could not be opened ({text})", reason=Reason.SOURCE_FAILED,
                           url=self.name)


def _error_text(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return re.sub(r"\s*:\s*'[^']*'$", "", str(text)).strip().rstrip(".") or type(error).__name__


def _check_device(path: str) -> None:
    """Clear sentences for the usual reasons a camera does not open."""
    device = Path(path)
    if not device.exists():
        raise ImageError(f"No camera at {path}", "list them with `ls /dev/video*` (and check the "
                         "cable and `dmesg`)", Reason.NO_CAMERA, path=path)
    if not device.is_char_device():
        raise ImageError(f"{path} is not a camera device (not a character device)",
                         reason=Reason.CAMERA_UNUSABLE, path=path)
    if not os.access(path, os.R_OK | os.W_OK):
        raise ImageError(f"Cannot open the camera {path}: permission denied", "add yourself to the "
                         "`video` group and log in again", Reason.CAMERA_PERMISSION, path=path)


class VideoWriter:
    """An H.264 video written frame by frame to a temporary file, renamed into place on
    :meth:`close` (an interruption still closes it cleanly; :meth:`abort` leaves nothing).

    rate: frames per second of the output; each frame is placed at its own time stamp, so
    frames of a file keep their timing and a live source gives a variable-rate file.
    """

    def __init__(self, path: str | os.PathLike[str], width: int, height: int,
                 rate: Fraction | None, codec: str = "libx264") -> None:
        av = _av()
        self.path = Path(path)
        self.rate = Fraction(rate).limit_denominator(100000) if rate else Fraction(30)
        folder = self.path.parent if str(self.path.parent) else Path(".")
        self.temporary = folder / f".{self.path.name}.part{self.path.suffix}"
        try:
            self.container = av.open(str(self.temporary), "w")
        except (av.error.FFmpegError, OSError) as error:
            raise OutputError(f"Cannot write {self.path}: {_error_text(error)}",
                              reason=Reason.OUTPUT_WRITE_FAILED, path=str(self.path)) from None
        self.stream = self.container.add_stream(codec, rate=self.rate)
        self.stream.width, self.stream.height = width, height
        # 4:2:0 needs even sizes; odd ones keep full chroma instead of being cropped.
        self.stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        self.stream.options = {"preset": "veryfast"}
        self.stream.codec_context.time_base = 1 / self.rate
        self._last_pts = -1
        self.frames = 0

    def write(self, image: np.ndarray, seconds: float | None = None) -> None:
        av = _av()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        pts = self._last_pts + 1 if seconds is None else round(seconds * self.rate)
        frame.pts = self._last_pts = max(pts, self._last_pts + 1)
        frame.time_base = 1 / self.rate
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder, close the file and rename it into place."""
        try:
            self.container.mux(self.stream.encode(None))
            self.container.close()
            os.replace(self.temporary, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # already broken: the temporary file goes either way
            self.container.close()
        self.temporary.unlink(missing_ok=True)
