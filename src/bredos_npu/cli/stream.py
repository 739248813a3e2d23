"""Video sources on the image commands: per-frame text or JSON lines, an annotated video,
tracks, events and MQTT. The work is in :mod:`bredos_npu.runtime.stream` and the task modules;
this file parses options and renders.

Ctrl-C, SIGTERM or SIGHUP ends a stream cleanly: the frames in flight finish, every output is
closed and kept, and the exit status is 128 + the signal's number as for folders (a second
Ctrl-C interrupts at once).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import click

from bredos_npu.cli.batch import Outputs
from bredos_npu.cli.interrupts import handling
from bredos_npu.errors import OutputError
from bredos_npu.inputs import is_video_source
from bredos_npu.outputs import STDOUT, check_output

if TYPE_CHECKING:
    from bredos_npu.tasks.registry import Task

VIDEO_OUTPUT_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")


class StreamOptions(NamedTuple):
    """What the video options of a command asked for."""

    fps: float | None = None
    every: int | None = None
    retries: int = 10
    timeout: float = 10.0
    track: bool = False
    min_frames: int = 3
    stay: float = 10.0
    zones: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    events: str | None = None
    mqtt: str | None = None
    name: str | None = None

    @property
    def wants_events(self) -> bool:
        return bool(self.zones or self.lines or self.events or self.mqtt)


def video_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--fps, --every, --retries, --timeout: how a video source is read."""
    for option in reversed([
        click.option("--fps", type=click.FloatRange(min=0, min_open=True),
                     help="Video: analyse N frames per second of video (default: every frame)."),
        click.option("--every", type=click.IntRange(min=1), help="Video: analyse every Nth frame."),
        click.option("--retries", type=click.IntRange(min=0), default=10, show_default=True,
                     help="Live video: reconnection attempts after the stream drops."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
                     show_default=True, help="Live video: seconds to wait for the source to open "
                     "or to send the next data."),
    ]):
        command = option(command)
    return command


def event_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--track, --min-frames, --stay, --zone, --line, --events, --mqtt, --name (detection)."""
    for option in reversed([
        click.option("--track", is_flag=True, help="Video: give objects stable track ids (ByteTrack)."),
        click.option("--min-frames", type=click.IntRange(min=1), default=3, show_default=True,
                     help="Video events: frames an object must be seen (or missed) to appear (or leave)."),
        click.option("--stay", type=click.FloatRange(min=0), default=10.0, show_default=True,
                     help="Video events: seconds in view before a 'stay' event."),
        click.option("--zone", "zones", multiple=True, metavar="NAME=x,y;x,y;x,y",
                     help="Video events: a polygon zone in pixels (repeatable)."),
        click.option("--line", "lines", multiple=True, metavar="NAME=x1,y1,x2,y2",
                     help="Video events: count crossings of a line in pixels (repeatable)."),
        click.option("--events", "events_path", metavar="FILE",
                     help="Video: write one JSON line per event to FILE (- for stdout)."),
        click.option("--mqtt", metavar="URL",
                     help="Video: publish counts and events to mqtt://[user:pass@]host[:port] "
                          "(Home Assistant discovery)."),
        click.option("--name", "stream_name", metavar="NAME",
                     help="Video: the stream's name in MQTT topics (default: from the source)."),
    ]):
        command = option(command)
    return command


def video_input(images: tuple[str, ...]) -> str | None:
    """The video source among the inputs, or None; a video must be the only input."""
    videos = [i for i in images if is_video_source(i)]
    if videos and len(images) > 1:
        raise click.UsageError("give one video source at a time (images and folders apart)")
    return videos[0] if videos else None


def stream_name(source: str) -> str:
    """A short name for a source: the file's stem, the URL's host and path, the device name."""
    from urllib.parse import urlsplit

    from bredos_npu.mqtt import slug

    parts = urlsplit(source)
    if parts.scheme and parts.hostname:
        return slug(f"{parts.hostname}_{parts.path}")
    return slug(Path(source).stem or source)


def check_video_outputs(outputs: Outputs, options: StreamOptions) -> None:
    """Refuse output options that do not fit a video, before the model is loaded."""
    if outputs.csv:
        raise click.UsageError("--csv is for images: use --jsonl FILE for video")
    if outputs.resume:
        raise click.UsageError("--resume is for folders of images: a video starts from its beginning")
    if outputs.as_json:
        raise click.UsageError("--json is for images: use --jsonl - for video (one line per frame)")
    if outputs.jsonl and options.events and outputs.jsonl == options.events:
        raise click.UsageError("--jsonl and --events need different files")
    for path in (outputs.jsonl, options.events):
        if path:
            check_output(path, outputs.force)
    if outputs.pictures:
        target = check_output(outputs.pictures, outputs.force)
        if str(target) == STDOUT or target.suffix.lower() not in VIDEO_OUTPUT_SUFFIXES:
            raise OutputError(f"Cannot write a video as {target.name}: use a .mp4 or .mkv file name.")


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[list[int]]:
    """SIGINT, SIGTERM and SIGHUP call ``stop`` once (the list yielded gets the signal number);
    a second SIGINT interrupts at once. Main thread only: elsewhere the handlers stay."""
    asked: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if asked and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not asked:
            click.echo("bredos-npu: stopping after the frames in flight (Ctrl-C again to interrupt).",
                       err=True)
        asked.append(signum)
        stop()

    with handling(handler):
        yield asked


def _line_file(path: str | None, force: bool, stack: ExitStack) -> IO[str] | None:
    """A JSON-lines file written as results come (a live stream may run for days), or stdout."""
    if not path:
        return None
    if path == STDOUT:
        return sys.stdout
    try:
        return stack.enter_context(open(path, "w" if force else "x", encoding="utf-8"))
    except OSError as error:
        raise OutputError(f"Cannot write {path}: {error.strerror or error}.") from None


def run_video(ctx: click.Context, net: Any, task: str, source: str, start: Callable[..., Any],
              view: Task, outputs: Outputs, options: StreamOptions, header: str) -> None:
    """Run ``start(**video_options)`` (a Model's ``*_stream`` method) and render each frame."""
    from bredos_npu.tasks.events import parse_line, parse_zone

    zones = [parse_zone(z) for z in options.zones]
    lines = [parse_line(x) for x in options.lines]
    name = options.name or stream_name(source)
    publisher = None
    if options.mqtt:  # the broker first: its problems show before a camera is opened
        from bredos_npu.mqtt import MqttPublisher

        publisher = MqttPublisher(options.mqtt, name, model=net.path.stem)
        publisher.connect()
    try:
        stream = start(fps=options.fps, every=options.every, retries=options.retries,
                       open_timeout=options.timeout, read_timeout=options.timeout,
                       on_event=lambda line: click.echo(f"bredos-npu: {line}", err=True))
    except BaseException:
        if publisher:
            publisher.close()
        raise
    if not outputs.quiet:
        click.echo(header)
        info = stream.info
        rate = f"{float(info.rate):.2f} frames/s" if info.rate else "unknown rate"
        click.echo(f"video:   {stream.name}: {info.width}x{info.height} {info.codec}, {rate}"
                   + (", live (latest frame)" if info.live else ""))
    tracker = events = None
    with ExitStack() as stack:
        stack.callback(stream.close)
        if publisher:
            stack.callback(publisher.close)
        if options.track or options.wants_events:
            from bredos_npu.tasks.events import EventDetector
            from bredos_npu.tasks.tracking import Tracker

            rate = _analysed_rate(stream.info.rate, options)
            tracker = Tracker(frame_rate=rate)
            events = EventDetector(options.min_frames, options.stay, zones, lines)
        jsonl = _line_file(outputs.jsonl, outputs.force, stack)
        event_file = _line_file(options.events, outputs.force, stack)
        writer = None
        if outputs.pictures:
            from bredos_npu.runtime.video import VideoWriter

            writer = VideoWriter(outputs.pictures, stream.info.width, stream.info.height, stream.info.rate)
        done = failed = 0
        started = time.perf_counter()
        try:
            with stop_on_signals(stream.stop) as asked:
                for result in stream.results(raise_at_end=False):
                    done += 1
                    failed += not result.ok
                    value, found, tracks = result.value, [], None
                    if result.ok and tracker is not None:
                        tracked = tracker.update(value)
                        found = events.update(result.frame, result.time, tracked)
                        by_detection = {id(t.detection): t.track for t in tracked}
                        tracks = [by_detection.get(id(d)) for d in value]
                        value = [d._replace(label=f"{d.label} #{track}") if track else d
                                 for d, track in zip(value, tracks, strict=True)]
                    document = _frame_document(result, view.document(result.value) if result.ok else {},
                                               tracks)
                    if found:
                        document["events"] = [e.document() for e in found]
                    _emit(jsonl, document)
                    for event in found:
                        _emit(event_file, {"stream": name, **event.document()})
                        if publisher:
                            publisher.event(event)
                    if publisher and events is not None:
                        publisher.update(events.counts(), events.zone_counts(), dict(events.crossings))
                    if writer is not None:
                        writer.write(_drawn(view, result, value), result.time)
                    if not outputs.quiet:
                        _print_frame(result, view, value, found)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if writer is not None:
            writer.close()
    seconds = time.perf_counter() - started
    stopped_by = signal.Signals(asked[0]).name if asked else None
    _summary(stream, done, failed, seconds, outputs, options, stopped_by)
    if asked:
        ctx.exit(128 + asked[0])  # the shell's convention, as for folders; the outputs are complete
    if stream.error is not None:
        raise stream.error


def _analysed_rate(rate: Any, options: StreamOptions) -> float:
    """Frames per second the tracker sees: the source's, after --fps / --every."""
    base = float(rate) if rate else 30.0
    if options.fps:
        return min(base, options.fps)
    return base / (options.every or 1)


def _frame_document(result: Any, body: dict[str, Any], tracks: list[int | None] | None = None
                    ) -> dict[str, Any]:
    document: dict[str, Any] = {"frame": result.frame, "time": round(result.time, 4)}
    if result.error:
        document["error"] = result.error
        return document
    if tracks is not None:  # detections that belong to a track (ByteTrack confirms new ones
        for track, row in zip(tracks, body["detections"], strict=True):  # on their second frame)
            row["track"] = track
    document.update(body)
    document.update(preprocess_ms=round(result.preprocess_ms, 3),
                    inference_ms=round(result.inference_ms, 3), delay_ms=round(result.delay_ms, 3))
    return document


def _emit(out: IO[str] | None, document: dict[str, Any]) -> None:
    import json  # here: images, which import this module too, start faster without it

    if out is not None:
        out.write(json.dumps(document) + "\n")
        out.flush()  # readable while a live stream runs (tail -f)


def _drawn(view: Task, result: Any, value: Any) -> Any:
    import numpy as np
    from PIL import Image

    picture = Image.fromarray(result.image)
    if result.ok and view.draw is not None:
        picture = view.draw(picture, value)
    return np.asarray(picture.convert("RGB"))


def _print_frame(result: Any, view: Task, value: Any, found: list[Any]) -> None:
    if result.error:
        click.echo(f"bredos-npu: error: frame {result.frame}: {result.error}", err=True)
        return
    click.echo(f"\nframe {result.frame} ({result.time:.2f} s), inference {result.inference_ms:.1f} ms, "
               f"delay {result.delay_ms:.1f} ms\n{view.text(value)}")
    for event in found:
        where = f" {event.place}" if event.place else ""
        click.echo(f"  event: {event.label} #{event.track} {event.kind}{where}"
                   + (f" {event.direction}" if event.direction else ""))


def _summary(stream: Any, done: int, failed: int, seconds: float, outputs: Outputs,
             options: StreamOptions, stopped_by: str | None = None) -> None:
    stats = stream.stats
    files = [f for f in (outputs.jsonl, options.events, outputs.pictures) if f and f != STDOUT]
    live = (f", {stats.dropped} dropped as stale, {stats.reconnects} reconnection"
            f"{'s' if stats.reconnects != 1 else ''}") if stream.info.live else ""
    click.echo(f"bredos-npu: {done - failed} of {stats.frames_in} frames of {stream.name} analysed"
               + (f", {failed} failed" if failed else "") + live
               + f" in {seconds:.2f} s ({done / max(seconds, 1e-9):.1f} frames/s)"
               + (f", stopped by {stopped_by}" if stopped_by else "")
               + (f"; written: {', '.join(files)}" if files else "") + ".", err=True)
