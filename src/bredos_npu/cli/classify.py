"""``bredos-npu classify``: the top-k classes of images and folders of images, with timings."""

from __future__ import annotations

import functools
from typing import Any

import click

from bredos_npu.cli.batch import Outputs, TaskView, batch_options, finish, plan_run, run_batch, task_results
from bredos_npu.cli.options import first_run_note, given_inputs, load_model, model_options
from bredos_npu.cli.stream import StreamOptions, check_video_outputs, run_video, video_input, video_options
from bredos_npu.models import bundled
from bredos_npu.runtime.pipeline import expand_sources


def _document(classes: Any) -> dict[str, Any]:
    return {"classes": [{"index": c.index, "label": c.label, "score": round(c.score, 6)}
                        for c in classes]}


def _csv_rows(classes: Any) -> list[dict[str, Any]]:
    return [{"rank": rank, "index": c.index, "label": c.label, "score": round(c.score, 6)}
            for rank, c in enumerate(classes, 1)]


def _view() -> TaskView:
    from bredos_npu.cli.render import classes_text

    return TaskView("classified", classes_text, _document, ("rank", "index", "label", "score"), _csv_rows,
                    draw=_draw_top_class)


def _draw_top_class(image: Any, classes: Any) -> Any:
    """The best class and its score written in the top-left corner (for videos)."""
    from PIL import ImageDraw

    from bredos_npu.tasks.draw import _font

    picture = image.convert("RGB")
    if classes:
        size = max(12, round(min(picture.size) / 20))
        ImageDraw.Draw(picture).text((size // 2, size // 2), f"{classes[0].label} {classes[0].score:.0%}",
                                     fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0),
                                     font=_font(size))
    return picture


@click.command()
@click.argument("images", nargs=-1, type=click.Path(readable=False))
@model_options
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many classes to show.")
@click.option("--input-mean", type=float,
              help="Input normalisation (pixel - mean) / std; the other one defaults to 127.5.")
@click.option("--input-std", type=float,
              help="Input normalisation (pixel - mean) / std; the other one defaults to 127.5.")
@batch_options
@click.option("--csv", "csv_path", metavar="FILE", help="Write one CSV row per image and rank to FILE.")
@click.option("-o", "--output", metavar="FILE", help="Video: write the video with the top class drawn.")
@video_options
@click.pass_context
def classify(ctx: click.Context, images: tuple[str, ...], model: str | None, labels: str | None,
             backend: str, delegate: str | None, threads: int | None, debug: bool, top_k: int,
             input_mean: float | None, input_std: float | None, recursive: bool, parallel: int,
             as_json: bool, jsonl_path: str | None, force: bool, resume: bool, cluster: str | None,
             ship: bool, csv_path: str | None, output: str | None, fps: float | None, every: int | None,
             retries: int, timeout: float) -> None:
    """Classify IMAGES and folders of images (default: a bundled sample photo).

    Without --model it uses a bundled MobileNet V2 (uint8, ImageNet). Preprocessing follows the
    model: EXIF orientation, RGB, resize to the input size, the input tensor's quantization.
    Broken images are reported and skipped; the exit status says whether any failed.
    """
    from bredos_npu.cli.render import model_header

    outputs = Outputs(as_json, jsonl_path, csv_path, output, force, resume, nodes=cluster is not None)
    video = video_input(images)
    stream = StreamOptions(fps, every, retries, timeout)
    if video:
        if cluster:
            raise click.UsageError("--cluster takes image files and folders, not a video source")
        check_video_outputs(outputs, stream)
    elif output:
        raise click.UsageError("-o/--output is for video sources: classify draws nothing on images")
    else:
        outputs.check(given_inputs(images) if images else 1)
    # On a cluster each worker chooses its own backend: here the model is only checked, on the CPU.
    net = load_model(ctx, model, "cpu" if cluster else backend, labels, delegate, threads, debug,
                     check=lambda loaded: loaded.check_classifier(), mean=input_mean, std=input_std)
    header = model_header(net, default=model is None) + f"\n  load {net.load_ms:.1f} ms"
    view = _view()
    if video:
        run_video(ctx, net, "classify", video, functools.partial(
            net.classify_stream, video, top_k, parallel), view, outputs, stream, header)
        return
    sources = expand_sources(images, recursive) if images else iter([bundled.sample_image()])
    plan = plan_run(sources, view, outputs, given_inputs(images) if images else 1)
    results = task_results(net, "classify", plan.sources, {"top_k": top_k}, parallel, cluster, ship,
                           {"backend": backend, "delegate": delegate, "threads": threads, "labels": labels,
                            "mean": input_mean, "std": input_std})
    batch = run_batch(results, view, outputs, given_inputs(images), header, first_run_note(net), plan)
    finish(ctx, net, batch, view, outputs)
