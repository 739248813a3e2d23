"""The machinery every image command shares: many inputs, progress, output files, summary.

A command describes its task with a :class:`TaskView` (how one result looks as text, JSON, CSV
rows and a picture); :func:`run_batch` does the rest.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from bredos_npu.cli.progress import progress_bar
from bredos_npu.errors import ImageError, OutputError
from bredos_npu.outputs import atomic_open, check_output
from bredos_npu.runtime.pipeline import Result


@dataclass(frozen=True)
class TaskView:
    """How one task's results are shown: ``verb`` for the summary ("classified", "detected in")."""

    verb: str
    text: Callable[[Any], str]
    document: Callable[[Any], dict[str, Any]]
    csv_fields: tuple[str, ...] = ()
    csv_rows: Callable[[Any], list[dict[str, Any]]] | None = None
    draw: Callable[[Any, Any], Any] | None = None  # (PIL image, value) -> PIL image
    picture_suffix: str = ""


@dataclass(frozen=True)
class Outputs:
    as_json: bool = False
    jsonl: str | None = None
    csv: str | None = None
    pictures: str | None = None
    force: bool = False

    @property
    def quiet(self) -> bool:
        """Nothing per image on stdout when results go to JSON or a file."""
        return self.as_json or bool(self.jsonl or self.csv)

    def check(self, inputs: int | None) -> None:
        if self.jsonl and self.csv:
            raise click.UsageError("choose one of --jsonl and --csv")
        if self.as_json and "-" in (self.jsonl, self.csv):
            raise click.UsageError("--json and --jsonl/--csv - both write to standard output: choose one")
        for path in (self.jsonl, self.csv):
            if path:
                check_output(path, self.force)
        if self.pictures and _single_file_target(self.pictures, inputs):
            picture_format(check_output(self.pictures, self.force))
        elif self.pictures and not Path(self.pictures).is_dir():
            raise OutputError(f"Cannot write pictures to {self.pictures}: it is not a folder (create "
                              "it, or name a file when there is one image).")


def _single_file_target(target: str, inputs: int | None) -> bool:
    return not Path(target).is_dir() and not target.endswith("/") and inputs == 1


def picture_format(path: Path) -> str:
    """Pillow's format name for the file's extension (.png, .jpg, .webp, ...)."""
    from PIL import Image

    found = Image.registered_extensions().get(path.suffix.lower())
    if found is None or found not in Image.SAVE:
        raise OutputError(f"Cannot write a picture as {path.name}: use a .png or .jpg file name.")
    return found


def picture_path(target: str, source: str, suffix: str, inputs: int | None,
                 taken: set[Path]) -> Path:
    """Where a result picture goes: the file named, or ``DIR/<stem>.<suffix>.png``, made unique
    within the run (``a/x.jpg`` and ``b/x.jpg`` must not overwrite each other)."""
    if _single_file_target(target, inputs):
        return Path(target)
    folder = Path(target)
    if not folder.is_dir():
        raise OutputError(f"Cannot write pictures to {folder}: it is not a folder (create it, or "
                          "name a file when there is one image).")
    stem, number = Path(source).stem, 1
    path = folder / f"{stem}.{suffix}.png"
    while path in taken:
        number += 1
        path = folder / f"{stem}-{number}.{suffix}.png"
    taken.add(path)
    return path


def write_picture(view: TaskView, result: Result, target: str, inputs: int | None, force: bool,
                  taken: set[Path]) -> Path:
    from bredos_npu.tasks.image import open_image

    path = picture_path(target, result.source, view.picture_suffix, inputs, taken)
    if path.exists() and not force and not _single_file_target(target, inputs):
        raise OutputError(f"{path} already exists: pass --force to overwrite it, or choose another folder.")
    assert view.draw is not None, "pictures are only asked for tasks that draw"
    picture = view.draw(open_image(result.source), result.value)
    with atomic_open(path, "wb") as out:
        picture.save(out, format=picture_format(path))
    return path


def run_batch(results: Iterator[Result], view: TaskView, outputs: Outputs, inputs: int | None,
              header: str, first_run_note: str = "") -> tuple[list[dict[str, Any]], int, int, float]:
    """Consume ``results``: print, write files and pictures. Returns (documents, done, failed, s)."""
    if not outputs.quiet:
        click.echo(header)
    documents: list[dict[str, Any]] = []
    pictures: set[Path] = set()
    done = failed = 0
    started = time.perf_counter()
    with ExitStack() as stack:
        target = outputs.jsonl or outputs.csv
        out = stack.enter_context(atomic_open(target)) if target else None
        writer = csv.DictWriter(out, fieldnames=("image", *view.csv_fields, "error")) \
            if outputs.csv and out else None
        if writer:
            writer.writeheader()
        bar = stack.enter_context(progress_bar(None, "img", enabled=outputs.quiet))
        for result in results:
            bar.update(1)
            done += 1
            document = {"image": result.source, "error": result.error} if result.error else {
                "image": result.source, **view.document(result.value),
                "preprocess_ms": round(result.preprocess_ms, 3),
                "inference_ms": round(result.inference_ms, 3)}
            if result.error:
                failed += 1
                bar.clear()
                click.echo(f"bredos-npu: error: {result.error}", err=True)
            else:
                if outputs.pictures:
                    document["picture"] = str(write_picture(view, result, outputs.pictures, inputs,
                                                            outputs.force, pictures))
                if not outputs.quiet:
                    click.echo(f"\n{result.source}\n{view.text(result.value)}")
                    click.echo(f"  preprocess {result.preprocess_ms:.1f} ms, inference "
                               f"{result.inference_ms:.1f} ms" + (first_run_note if done == 1 else "")
                               + (f"\n  picture: {document['picture']}" if "picture" in document else ""))
            if outputs.as_json:
                documents.append(document)
            if writer and view.csv_rows:
                rows = [{"image": result.source, "error": result.error}] if result.error else \
                    [{"image": result.source, **row} for row in view.csv_rows(result.value)]
                writer.writerows(rows)
            elif out:
                out.write(json.dumps(document) + "\n")
    if done == 0:
        raise ImageError("No images found: pass image files or folders that contain images "
                         "(use --recursive for subfolders).")
    return documents, done, failed, time.perf_counter() - started


def summary(done: int, failed: int, seconds: float, verb: str, file_output: str | None) -> str:
    return (f"bredos-npu: {done - failed} of {done} images {verb}"
            + (f", {failed} failed" if failed else "")
            + f" in {seconds:.2f} s ({done / seconds:.1f} images/s)"
            + (f"; results in {file_output}" if file_output else "") + ".")


def batch_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """-r/--recursive, --parallel, --json, --jsonl, --force."""
    for option in reversed([
        click.option("-r", "--recursive", is_flag=True, help="Also process images in subfolders."),
        click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Interpreters running at once (e.g. 3 for the RK3588's NPU cores)."),
        click.option("--json", "as_json", is_flag=True, help="Print results as one JSON document."),
        click.option("--jsonl", "jsonl_path", metavar="FILE", help="Write one JSON line per image to FILE."),
        click.option("--force", is_flag=True, help="Overwrite output files that exist."),
    ]):
        command = option(command)
    return command


def finish(ctx: click.Context, net: Any, documents: list[dict[str, Any]], done: int, failed: int,
           seconds: float, view: TaskView, outputs: Outputs) -> None:
    """Print the JSON document and the closing summary; exit 5 when any image failed."""
    from bredos_npu.cli.render import backend_dict

    if outputs.as_json:
        click.echo(json.dumps({"model": str(net.path), "backend": backend_dict(net.backend),
                               "load_ms": round(net.load_ms, 3),
                               "results": [d for d in documents if "error" not in d],
                               "errors": [d for d in documents if "error" in d]}, indent=2))
    file_output = outputs.jsonl or outputs.csv
    if done > 1 or file_output:
        click.echo(summary(done, failed, seconds, view.verb, file_output), err=True)
    if failed:
        ctx.exit(ImageError.exit_code)
