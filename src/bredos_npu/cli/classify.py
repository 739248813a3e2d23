"""``bredos-npu classify``: the top-k classes of images and folders of images, with timings."""

from __future__ import annotations

from typing import Any

import click

from bredos_npu.cli.batch import Outputs, TaskView, batch_options, finish, plan_run, run_batch
from bredos_npu.cli.options import first_run_note, given_inputs, load_model, model_options
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

    return TaskView("classified", classes_text, _document, ("rank", "index", "label", "score"), _csv_rows)


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
@click.pass_context
def classify(ctx: click.Context, images: tuple[str, ...], model: str | None, labels: str | None,
             backend: str, delegate: str | None, threads: int | None, debug: bool, top_k: int,
             input_mean: float | None, input_std: float | None, recursive: bool, parallel: int,
             as_json: bool, jsonl_path: str | None, force: bool, resume: bool, csv_path: str | None) -> None:
    """Classify IMAGES and folders of images (default: a bundled sample photo).

    Without --model it uses a bundled MobileNet V2 (uint8, ImageNet). Preprocessing follows the
    model: EXIF orientation, RGB, resize to the input size, the input tensor's quantization.
    Broken images are reported and skipped; the exit status says whether any failed.
    """
    from bredos_npu.cli.render import model_header

    outputs = Outputs(as_json, jsonl_path, csv_path, None, force, resume)
    outputs.check(given_inputs(images) if images else 1)
    net = load_model(ctx, model, backend, labels, delegate, threads, debug,
                     check=lambda loaded: loaded.check_classifier(), mean=input_mean, std=input_std)
    sources = expand_sources(images, recursive) if images else iter([bundled.sample_image()])
    header = model_header(net, default=model is None) + f"\n  load {net.load_ms:.1f} ms"
    view = _view()
    plan = plan_run(sources, view, outputs, given_inputs(images) if images else 1)
    finish(ctx, net, run_batch(net.classify_many(plan.sources, top_k, parallel=parallel), view, outputs,
                               given_inputs(images), header, first_run_note(net), plan), view, outputs)
