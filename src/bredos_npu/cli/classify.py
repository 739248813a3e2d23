"""``bredos-npu classify``: the top-k classes of images, with timings."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bredos_npu.cli.options import model_options
from bredos_npu.errors import ImageError
from bredos_npu.models import bundled
from bredos_npu.runtime.model import load


@click.command()
@click.argument("images", nargs=-1, type=click.Path(dir_okay=True))
@model_options
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many classes to show.")
@click.option("--input-mean", type=float, help="Input normalisation: (pixel - mean) / std.")
@click.option("--input-std", type=float, help="Input normalisation: (pixel - mean) / std.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_context
def classify(ctx: click.Context, images: tuple[str, ...], model: str | None, labels: str | None,
             backend: str, delegate: str | None, threads: int | None, debug: bool, top_k: int,
             input_mean: float | None, input_std: float | None, as_json: bool) -> None:
    """Classify IMAGES (default: a bundled sample photo) with an image classifier.

    Without --model it uses a bundled MobileNet V2 (uint8, ImageNet). Preprocessing follows the
    model: EXIF orientation, RGB, resize to the input size, the input tensor's quantization.
    """
    from bredos_npu.cli import render

    debug = debug or ctx.obj.get("debug", False)
    net = load(model, backend, labels=labels, delegate=delegate, threads=threads,
               mean=input_mean, std=input_std, debug=debug)
    net.check_classifier()
    if net.backend.fallback_reason:
        click.echo(f"bredos-npu: {net.backend.fallback_reason.rstrip('.')}; running on the CPU.",
                   err=True)
    paths = [Path(p) for p in images] or [bundled.sample_image()]
    results, failures = [], []
    if not as_json:
        click.echo(render.model_header(net, default=model is None))
    for path in paths:
        try:
            classes = net.classify(path, top_k=top_k)
        except ImageError as exc:
            failures.append({"image": str(path), "error": str(exc)})
            click.echo(f"bredos-npu: error: {exc}", err=True)
            continue
        timings = net.last_timings
        results.append({"image": str(path), "classes": [render.class_dict(c) for c in classes],
                        "preprocess_ms": round(timings.preprocess_ms, 3),
                        "inference_ms": round(timings.inference_ms, 3)})
        if not as_json:
            click.echo(f"\n{path}\n{render.classes_text(classes)}")
            click.echo(f"  load {net.load_ms:.1f} ms, preprocess {timings.preprocess_ms:.1f} ms, "
                       f"inference {timings.inference_ms:.1f} ms"
                       + (" (first run: includes NPU graph compilation)"
                          if net.backend.name == "npu" and net.invocations == 1 else ""))
    if as_json:
        click.echo(json.dumps({
            "model": str(net.path), "backend": render.backend_dict(net.backend),
            "load_ms": round(net.load_ms, 3), "results": results, "errors": failures,
        }, indent=2))
    if failures:
        if len(paths) > 1:
            click.echo(f"bredos-npu: {len(failures)} of {len(paths)} images failed.", err=True)
        ctx.exit(ImageError.exit_code)
