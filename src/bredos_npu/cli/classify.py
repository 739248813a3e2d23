"""``bredos-npu classify``: the top-k classes of images, folders of images, with timings."""

from __future__ import annotations

import csv
import json
import time
from contextlib import ExitStack
from typing import Any

import click

from bredos_npu.cli.options import model_options
from bredos_npu.cli.progress import progress_bar
from bredos_npu.errors import ImageError
from bredos_npu.models import bundled
from bredos_npu.runtime.model import load
from bredos_npu.tasks.image import expand_sources

CSV_FIELDS = ("image", "rank", "index", "label", "score", "error")


@click.command()
@click.argument("images", nargs=-1, type=click.Path(dir_okay=True))
@model_options
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many classes to show.")
@click.option("--input-mean", type=float, help="Input normalisation: (pixel - mean) / std.")
@click.option("--input-std", type=float, help="Input normalisation: (pixel - mean) / std.")
@click.option("-r", "--recursive", is_flag=True, help="Also classify images in subfolders.")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Interpreters running at once (e.g. 3 for the RK3588's NPU cores).")
@click.option("--json", "as_json", is_flag=True, help="Print results as one JSON document.")
@click.option("--jsonl", "jsonl_path", metavar="FILE", help="Write one JSON line per image to FILE.")
@click.option("--csv", "csv_path", metavar="FILE", help="Write one CSV row per image and rank to FILE.")
@click.option("--force", is_flag=True, help="Overwrite --jsonl/--csv files that exist.")
@click.pass_context
def classify(ctx: click.Context, images: tuple[str, ...], model: str | None, labels: str | None,
             backend: str, delegate: str | None, threads: int | None, debug: bool, top_k: int,
             input_mean: float | None, input_std: float | None, recursive: bool, parallel: int,
             as_json: bool, jsonl_path: str | None, csv_path: str | None, force: bool) -> None:
    """Classify IMAGES and folders of images (default: a bundled sample photo).

    Without --model it uses a bundled MobileNet V2 (uint8, ImageNet). Preprocessing follows the
    model: EXIF orientation, RGB, resize to the input size, the input tensor's quantization.
    Broken images are reported and skipped; the exit status says whether any failed.
    """
    from bredos_npu.cli import render
    from bredos_npu.outputs import atomic_open, check_output

    if jsonl_path and csv_path:
        raise click.UsageError("choose one of --jsonl and --csv")
    file_output = jsonl_path or csv_path
    if file_output:
        check_output(file_output, force)
    debug = debug or ctx.obj.get("debug", False)
    net = load(model, backend, labels=labels, delegate=delegate, threads=threads,
               mean=input_mean, std=input_std, debug=debug)
    net.check_classifier()
    if net.backend.fallback_reason:
        click.echo(f"bredos-npu: {net.backend.fallback_reason.rstrip('.')}; running on the CPU.",
                   err=True)
    sources = expand_sources(images, recursive) if images else iter([bundled.sample_image()])
    quiet = as_json or bool(file_output)
    if not quiet:
        click.echo(render.model_header(net, default=model is None))
    documents, done, failed = [], 0, 0
    started = time.perf_counter()
    with ExitStack() as stack:
        out = stack.enter_context(atomic_open(file_output)) if file_output else None
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS) if csv_path and out else None
        if writer:
            writer.writeheader()
        bar = stack.enter_context(progress_bar(None, "img", enabled=quiet))
        for result in net.classify_many(sources, top_k, parallel=parallel):
            bar.update(1)
            done += 1
            document = _document(result)
            if result.error:
                failed += 1
                bar.clear()
                click.echo(f"bredos-npu: error: {result.error}", err=True)
            elif not quiet:
                click.echo(f"\n{result.source}\n{render.classes_text(result.value)}")
                click.echo(f"  load {net.load_ms:.1f} ms, preprocess {result.preprocess_ms:.1f} ms, "
                           f"inference {result.inference_ms:.1f} ms" + _first_run_note(net, done))
            if as_json:
                documents.append(document)
            if out and writer:
                writer.writerows(_csv_rows(document))
            elif out:
                out.write(json.dumps(document) + "\n")
    seconds = time.perf_counter() - started
    if done == 0:
        raise ImageError("No images found: pass image files or folders that contain images "
                         "(use --recursive for subfolders).")
    if as_json:
        click.echo(json.dumps({"model": str(net.path), "backend": render.backend_dict(net.backend),
                               "load_ms": round(net.load_ms, 3),
                               "results": [d for d in documents if "error" not in d],
                               "errors": [d for d in documents if "error" in d]}, indent=2))
    if done > 1 or file_output:
        click.echo(f"bredos-npu: {done - failed} of {done} images classified"
                   + (f", {failed} failed" if failed else "")
                   + f" in {seconds:.2f} s ({done / seconds:.1f} images/s)"
                   + (f"; results in {file_output}" if file_output else "") + ".", err=True)
    if failed:
        ctx.exit(ImageError.exit_code)


def _first_run_note(net: Any, done: int) -> str:
    if net.backend.name == "npu" and done == 1:
        return " (first run: includes NPU graph compilation)"
    return ""


def _document(result: Any) -> dict[str, Any]:
    if result.error:
        return {"image": result.source, "error": result.error}
    return {"image": result.source, "classes": [_class(c) for c in result.value],
            "preprocess_ms": round(result.preprocess_ms, 3),
            "inference_ms": round(result.inference_ms, 3)}


def _class(item: Any) -> dict[str, Any]:
    return {"index": item.index, "label": item.label, "score": round(item.score, 6)}


def _csv_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    if "error" in document:
        return [{"image": document["image"], "error": document["error"]}]
    return [{"image": document["image"], "rank": rank, **c}
            for rank, c in enumerate(document["classes"], 1)]
