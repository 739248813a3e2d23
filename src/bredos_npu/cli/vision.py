"""``bredos-npu detect``, ``segment`` and ``pose``: results as text, JSON and pictures."""

from __future__ import annotations

import functools
from typing import Any

import click

from bredos_npu.cli.batch import Outputs, TaskView, batch_options, finish, plan_run, run_batch, task_results
from bredos_npu.cli.options import first_run_note, given_inputs, load_model, model_options
from bredos_npu.cli.stream import (
    StreamOptions,
    check_video_outputs,
    event_options,
    run_video,
    video_input,
    video_options,
)
from bredos_npu.cli.terminal import for_terminal
from bredos_npu.models.zoo import DEFAULT_MODELS
from bredos_npu.runtime.pipeline import expand_sources


def _box(d: Any) -> dict[str, float]:
    return {k: round(v, 1) for k, v in d.bbox._asdict().items()}


def detections_text(found: Any) -> str:
    if not found:
        return "  nothing above the threshold"
    labels = [for_terminal(d.label) for d in found]
    width = max(len(label) for label in labels)
    return "\n".join(f"  {label:<{width}}  {d.score * 100:5.1f}%  box x {d.bbox.xmin:.0f}-{d.bbox.xmax:.0f}"
                     f", y {d.bbox.ymin:.0f}-{d.bbox.ymax:.0f}"
                     for label, d in zip(labels, found, strict=True))


def segmentation_text(result: Any) -> str:
    return "\n".join(f"  {for_terminal(s.label):<14} {s.share * 100:5.1f}% of pixels" for s in result.shares)


def pose_text(points: Any) -> str:
    return "\n".join(f"  {p.name:<15} x {p.x:6.1f}  y {p.y:6.1f}  score {p.score:.2f}" for p in points)


def _views() -> dict[str, TaskView]:
    from bredos_npu.tasks.draw import draw_detections, draw_pose, draw_segmentation

    return {
        "detect": TaskView(
            "processed", detections_text,
            lambda found: {"detections": [{"id": d.id, "label": d.label, "score": round(d.score, 6),
                                           "box": _box(d)} for d in found]},
            ("id", "label", "score", "xmin", "ymin", "xmax", "ymax"),
            lambda found: [{"id": d.id, "label": d.label, "score": round(d.score, 6), **_box(d)}
                           for d in found] or [{}],  # a row even without detections
            draw_detections, "detect"),
        "segment": TaskView(
            "segmented", segmentation_text,
            lambda r: {"classes": [{"id": s.id, "label": s.label, "share": round(s.share, 6)}
                                   for s in r.shares]},
            draw=lambda image, r: draw_segmentation(image, r.classes), picture_suffix="segment"),
        "pose": TaskView(
            "processed", pose_text,
            lambda points: {"keypoints": [{"name": p.name, "x": round(p.x, 1), "y": round(p.y, 1),
                                           "score": round(p.score, 4)} for p in points]},
            draw=draw_pose, picture_suffix="pose"),
    }


def _run(ctx: click.Context, task: str, images: tuple[str, ...], model: str | None,
         outputs: Outputs, recursive: bool, options: dict[str, Any], parallel: int,
         cluster: str | None, ship: bool, stream: StreamOptions, stream_args: dict[str, Any],
         **load: Any) -> None:
    from bredos_npu.cli.render import model_header

    if not images:
        raise click.UsageError(f"give one or more images or folders to {task}")
    video = video_input(images)
    if video and cluster:
        raise click.UsageError("--cluster takes image files and folders, not a video source")
    if video:
        check_video_outputs(outputs, stream)
    else:
        outputs.check(given_inputs(images))
    from bredos_npu.runtime import heads

    checks = {"detect": heads.detection_outputs, "segment": heads.require_segmenter,
              "pose": heads.require_pose}
    # On a cluster each worker chooses its own backend: here the model is only checked, on the CPU.
    net = load_model(ctx, model or DEFAULT_MODELS[task], check=checks[task],
                     **{**load, "backend": "cpu" if cluster else load["backend"]})
    view = _views()[task]
    header = model_header(net, default=False, has_classes=task != "pose") + f"\n  load {net.load_ms:.1f} ms"
    if video:
        start = functools.partial(getattr(net, f"{task}_stream"), video, **stream_args)
        run_video(ctx, net, task, video, start, view, outputs, stream, header)
        return
    plan = plan_run(expand_sources(images, recursive), view, outputs, given_inputs(images))
    results = task_results(net, task, plan.sources, options, parallel, cluster, ship, load)
    finish(ctx, net, run_batch(results, view, outputs, given_inputs(images), header,
                               first_run_note(net), plan), view, outputs)


output_option = click.option("-o", "--output", metavar="FILE|DIR",
                             help="Write the annotated picture to FILE (one image) or into DIR.")


@click.command()
@click.argument("images", nargs=-1, type=click.Path(readable=False))
@functools.partial(model_options, default=DEFAULT_MODELS["detect"])
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Minimum score of a detection.")
@click.option("--max", "max_results", type=click.IntRange(min=1), help="At most N detections per image.")
@output_option
@batch_options
@click.option("--csv", "csv_path", metavar="FILE", help="Write one CSV row per detection to FILE.")
@video_options
@event_options
@click.pass_context
def detect(ctx: click.Context, images: tuple[str, ...], model: str | None, labels: str | None,
           backend: str, delegate: str | None, threads: int | None, debug: bool, threshold: float,
           max_results: int | None, output: str | None, recursive: bool, parallel: int,
           as_json: bool, jsonl_path: str | None, force: bool, resume: bool, cluster: str | None,
           ship: bool, csv_path: str | None, fps: float | None, every: int | None, retries: int,
           timeout: float, track: bool, min_frames: int, stay: float, zones: tuple[str, ...],
           lines: tuple[str, ...], events_path: str | None, mqtt: str | None,
           stream_name: str | None) -> None:
    """Find objects in IMAGES with an SSD-style detector (default: SSD MobileNet V1, COCO).

    Boxes are in pixels of the original image; labels come from --labels or the model.
    IMAGES may also be one video: a file, an rtsp:// or http(s):// stream or /dev/videoN
    (needs the [video] extra); then -o writes an annotated video, --jsonl one line per frame,
    and --track/--zone/--line/--events/--mqtt turn detections into tracks and events.
    """
    stream = StreamOptions(fps, every, retries, timeout, track, min_frames, stay, zones, lines,
                           events_path, mqtt, stream_name)
    _run(ctx, "detect", images, model,
         Outputs(as_json, jsonl_path, csv_path, output, force, resume, nodes=cluster is not None), recursive,
         {"threshold": threshold, "max_results": max_results}, parallel, cluster, ship,
         stream, {"threshold": threshold, "max_results": max_results, "parallel": parallel},
         backend=backend, labels=labels, delegate=delegate, threads=threads, debug=debug)


def _picture_task(task: str, help_text: str) -> click.Command:
    """A command for a task whose only options are the shared ones (segment, pose)."""

    @click.command(task, help=help_text)
    @click.argument("images", nargs=-1, type=click.Path(readable=False))
    @functools.partial(model_options, default=DEFAULT_MODELS[task])
    @output_option
    @batch_options
    @video_options
    @click.pass_context
    def command(ctx: click.Context, images: tuple[str, ...], model: str | None, labels: str | None,
                backend: str, delegate: str | None, threads: int | None, debug: bool,
                output: str | None, recursive: bool, parallel: int, as_json: bool,
                jsonl_path: str | None, force: bool, resume: bool, cluster: str | None, ship: bool,
                fps: float | None, every: int | None, retries: int, timeout: float) -> None:
        _run(ctx, task, images, model,
             Outputs(as_json, jsonl_path, None, output, force, resume, nodes=cluster is not None), recursive,
             {}, parallel, cluster, ship, StreamOptions(fps, every, retries, timeout), {"parallel": parallel},
             backend=backend, labels=labels, delegate=delegate, threads=threads, debug=debug)

    return command


segment = _picture_task(
    "segment", "Label every pixel of IMAGES (default: DeepLab V3 MobileNet V2, Pascal VOC classes)."
    "\n\nPrints the share of pixels per class; --output writes a coloured overlay PNG.")
pose = _picture_task(
    "pose", "Find the 17 body keypoints of the person in IMAGES (default: MoveNet Lightning)."
    "\n\n--output draws the skeleton on the image.")
