"""The machinery every task command shares: many inputs, progress, output files, summary.

The task (:class:`~bredos_npu.tasks.registry.Task`) says how one result looks as text, JSON,
CSV rows and a picture; :func:`run_batch` does the rest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from bredos_npu.cli.interrupts import Interrupted, interruptible
from bredos_npu.cli.progress import progress_bar
from bredos_npu.errors import EXIT_IMAGE, EXIT_OUTPUT, BackendError, ImageError, OutputError, Reason
from bredos_npu.outputs import (
    STDOUT,
    OutputConflict,
    atomic_open,
    check_output,
    leftovers,
    printable,
    remove_leftover,
    results_leftovers,
    shown,
)
from bredos_npu.text import for_terminal

if TYPE_CHECKING:
    from bredos_npu.cli.records import Previous, ResultsFile
    from bredos_npu.runtime.pipeline import Result
    from bredos_npu.tasks.registry import Task


class Outputs(NamedTuple):
    as_json: bool = False
    jsonl: str | None = None
    csv: str | None = None
    pictures: str | None = None
    force: bool = False
    resume: bool = False
    nodes: bool = False  # record the cluster node that computed each result

    @property
    def results_file(self) -> str | None:
        """The --jsonl/--csv file (None for none or standard output)."""
        path = self.jsonl or self.csv
        return path if path and path != STDOUT else None

    @property
    def quiet(self) -> bool:
        """Nothing per image on stdout when results go to JSON or a file."""
        return self.as_json or bool(self.jsonl or self.csv)

    def check(self, inputs: int | None) -> None:
        if self.jsonl and self.csv:
            raise click.UsageError("choose one of --jsonl and --csv")
        if self.as_json and "-" in (self.jsonl, self.csv):
            raise click.UsageError("--json and --jsonl/--csv - both write to standard output: choose one")
        if self.resume and not (self.results_file or (self.pictures and not _single_file_target(
                self.pictures, inputs))):
            raise click.UsageError("--resume continues a --jsonl/--csv FILE or an -o folder: name one")
        for path in (self.jsonl, self.csv):
            if path:  # a run that continues a file may replace it
                check_output(path, self.force or (self.resume and path == self.results_file))
        if self.pictures and _single_file_target(self.pictures, inputs):
            picture_format(check_output(self.pictures, self.force))
        elif self.pictures and not os.path.isdir(self.pictures):  # False, not OSError, for bad names
            raise OutputError(f"Cannot write pictures to {shown(self.pictures)}: it is not a folder",
                              "create it, or name a file when there is one image",
                              Reason.OUTPUT_FOLDER_MISSING, path=Path(self.pictures))
        if self.results_file and not self.resume:
            for part in results_leftovers(self.results_file):
                click.echo(f"bredos-npu: warning: {for_terminal(shown(part))} holds results of a run "
                           "that was killed before it finished; run with --resume to take them in.",
                           err=True)


def _single_file_target(target: str, inputs: int | None) -> bool:
    return not os.path.isdir(target) and not target.endswith("/") and inputs == 1


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
    if not os.path.isdir(folder):
        raise OutputError(f"Cannot write pictures to {folder}: it is not a folder (create it, or "
                          "name a file when there is one image).")
    stem, number = Path(source).stem, 1
    path = folder / f"{stem}.{suffix}.png"
    while path in taken:
        number += 1
        path = folder / f"{stem}-{number}.{suffix}.png"
    taken.add(path)
    return path


def write_picture(view: Task, result: Result, path: Path, force: bool) -> Path:
    """Draw the result on its image into ``path``; OutputConflict when someone else created
    ``path`` meanwhile (the picture is then kept beside it)."""
    from bredos_npu.tasks.image import open_image

    assert view.draw is not None, "pictures are only asked for tasks that draw"
    picture = view.draw(open_image(result.source), result.value)
    with atomic_open(path, "wb", replace=force) as out:
        picture.save(out, format=picture_format(path))
    return path


def input_key(source: Any) -> str:
    """How an input is named in results files (and matched by --resume)."""
    return printable(str(source))


class Plan:
    """What a run will do: the inputs left, where their pictures go, what was done before.

    sources: listed up front, so progress bars know the total. pictures: per input, for -o
    FOLDER. previous: the results file a --resume run continues. skipped: a box, counted while
    sources are read.
    """

    def __init__(self, sources: Sequence[Any], pictures: list[Path] | None = None,
                 previous: Previous | None = None) -> None:
        self.sources, self.pictures, self.previous = sources, pictures, previous
        self.skipped = [0]


def plan_run(sources: Sequence[Any], view: Task, outputs: Outputs, inputs: int | None) -> Plan:
    """Skip what a --resume run finds done; for -o FOLDER, name every picture and check them all
    for conflicts before the first image is processed."""
    previous = None
    if outputs.resume and outputs.results_file:
        from bredos_npu.cli.records import read_previous

        previous = read_previous(outputs, view)
    plan = Plan(sources, previous=previous)
    if outputs.pictures and not _single_file_target(outputs.pictures, inputs):
        return _plan_pictures(plan, view, outputs)

    if previous and previous.inputs:
        plan.sources = [source for source in sources if input_key(source) not in previous.inputs]
        plan.skipped[0] = len(sources) - len(plan.sources)
    return plan


def _plan_pictures(plan: Plan, view: Task, outputs: Outputs) -> Plan:
    assert outputs.pictures is not None
    if outputs.resume:  # half-written pictures of a run that was killed
        for part in leftovers(Path(outputs.pictures), f"*.{view.name}.png"):
            remove_leftover(part)
    taken: set[Path] = set()
    kept, pictures = [], []
    for source in plan.sources:
        path = picture_path(outputs.pictures, str(source), view.name, None, taken)
        if (plan.previous and input_key(source) in plan.previous.inputs) or (
                outputs.resume and not outputs.results_file and path.is_file()):
            plan.skipped[0] += 1
        else:
            kept.append(source)
            pictures.append(path)
    existing = [p for p in pictures if os.path.lexists(p)]
    if existing and not outputs.force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputError(f"{shown(existing[0])}{more} already exists", "pass --force to overwrite, "
                          "--resume to skip the inputs whose pictures are there, or choose another folder",
                          Reason.OUTPUT_EXISTS, path=existing[0], pictures=True)
    plan.sources, plan.pictures = kept, pictures
    return plan


class Batch(NamedTuple):
    """What a run did. ``interrupted``: the stop signal, if one ended it early. ``stopped``: the
    backend failure that ended it early (the NPU failed under ``npu``)."""

    documents: list[dict[str, Any]]
    done: int
    failed: int
    seconds: float
    skipped: int = 0
    output_errors: int = 0
    interrupted: Interrupted | None = None
    stopped: BackendError | None = None


def run_batch(results: Iterator[Result], view: Task, outputs: Outputs, inputs: int | None,
              header: str, first_run_note: str = "", plan: Plan | None = None) -> Batch:
    """Consume ``results``: print, write files and pictures. A stop signal (Ctrl-C, SIGTERM,
    SIGHUP) ends the run between two results, keeping every finished one."""
    plan = plan or Plan(())
    if not outputs.quiet:
        click.echo(header)
    documents: list[dict[str, Any]] = []
    counts = {"done": 0, "failed": 0, "output_errors": 0}
    started = time.perf_counter()
    interrupted = stopped = None
    with interruptible() as guard, ExitStack() as stack:
        records = None
        if outputs.jsonl or outputs.csv:
            from bredos_npu.cli.records import ResultsFile

            records = ResultsFile(outputs, view, plan.previous)
        try:
            bar = stack.enter_context(progress_bar(len(plan.sources), "img", enabled=outputs.quiet))
            for result in results:
                with guard.hold():
                    bar.update(1)
                    _one(result, view, outputs, inputs, plan, records, documents, counts, bar,
                         first_run_note)
        except Interrupted as stop:
            interrupted = stop
        except BackendError as failure:  # the results before it are kept
            stopped = failure
        except BaseException:
            if records:
                records.discard()
            raise
        if records:
            with guard.hold():
                records.publish()
    if counts["done"] == 0 and not plan.skipped[0] and interrupted is None and stopped is None:
        raise ImageError("No images found: pass image files or folders that contain images "
                         "(use --recursive for subfolders).", reason=Reason.NO_IMAGES)
    return Batch(documents, counts["done"], counts["failed"], time.perf_counter() - started,
                 plan.skipped[0], counts["output_errors"], interrupted, stopped)


def _one(result: Result, view: Task, outputs: Outputs, inputs: int | None, plan: Plan,
         records: ResultsFile | None, documents: list[dict[str, Any]], counts: dict[str, int], bar: Any,
         first_run_note: str) -> None:
    """Report one result everywhere it goes (a record, a picture, a text block, a JSON entry)."""
    counts["done"] += 1
    source = input_key(result.source)
    document = {"image": source, "error": printable(result.error)} if result.error else {
        "image": source, **view.document(result.value),
        "preprocess_ms": round(result.preprocess_ms, 3),
        "inference_ms": round(result.inference_ms, 3)}
    if result.node is not None:
        document["node"] = result.node
    if result.error:
        counts["failed"] += 1
        bar.clear()
        click.echo(f"bredos-npu: error: {for_terminal(document['error'])}", err=True)
    else:
        if outputs.pictures:
            document["picture"] = _picture(view, result, outputs, inputs, plan, counts, bar)
        if not outputs.quiet:
            click.echo(f"\n{for_terminal(source)}\n{view.text(result.value)}")
            click.echo(f"  preprocess {result.preprocess_ms:.1f} ms, inference "
                       f"{result.inference_ms:.1f} ms" + (first_run_note if counts["done"] == 1 else "")
                       + (f"\n  picture: {document['picture']}" if document.get("picture") else ""))
    if outputs.as_json:
        documents.append(document)
    if records is not None:
        records.write(source, result, document)


def _picture(view: Task, result: Result, outputs: Outputs, inputs: int | None, plan: Plan,
             counts: dict[str, int], bar: Any) -> str | None:
    """Write the result picture; a failure is reported like a broken image and the run goes on."""
    from bredos_npu.cli.errors import describe

    assert outputs.pictures is not None
    path = plan.pictures[result.index] if plan.pictures is not None else \
        picture_path(outputs.pictures, result.source, view.name, inputs, set())
    try:
        return printable(str(write_picture(view, result, path, outputs.force)))
    except OutputError as error:
        counts["output_errors"] += 1
        bar.clear()
        click.echo(f"bredos-npu: error: {for_terminal(describe(error))}", err=True)
        return printable(str(error.kept)) if isinstance(error, OutputConflict) else None


def summary(batch: Batch, verb: str, file_output: str | None) -> str:
    done, failed, seconds = batch.done, batch.failed, batch.seconds
    return (f"bredos-npu: {done - failed} of {done} images {verb}"
            + (f", {failed} failed" if failed else "")
            + f" in {seconds:.2f} s ({done / max(seconds, 1e-9):.1f} images/s)"
            + (f"; {batch.skipped} done before were skipped" if batch.skipped else "")
            + (" before the backend failed" if batch.stopped else "")
            + (f"; results in {shown(file_output)}" if file_output else "") + ".")


def batch_options(command: Callable[..., Any], csv_help: str = "Write CSV rows to FILE."
                  ) -> Callable[..., Any]:
    """-r/--recursive, --parallel, --json, --jsonl, --csv, --force, --resume, --cluster, --ship."""
    for option in reversed([
        click.option("-r", "--recursive", is_flag=True, help="Also process images in subfolders."),
        click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Interpreters running at once (e.g. 3 for the RK3588's NPU cores)."),
        click.option("--json", "as_json", is_flag=True, help="Print results as one JSON document."),
        click.option("--jsonl", "jsonl_path", metavar="FILE", help="Write one JSON line per image to FILE."),
        click.option("--csv", "csv_path", metavar="FILE", help=csv_help),
        click.option("--force", is_flag=True, help="Overwrite output files that exist."),
        click.option("--resume", is_flag=True,
                     help="Continue an interrupted run: skip the inputs already in the --jsonl/--csv "
                          "FILE (or, with -o FOLDER alone, whose pictures exist)."),
        click.option("--cluster", metavar="ADDRESS",
                     help="Run on a Ray cluster (auto, HOST:6379 or ray://HOST:10001): one worker per "
                          "NPU core of its boards; --parallel N asks for N workers instead."),
        click.option("--ship", is_flag=True,
                     help="With --cluster: send the images' bytes from here instead of reading their "
                          "paths on each node (use without shared storage)."),
    ]):
        command = option(command)
    return command


def finish(ctx: click.Context, net: Any, batch: Batch, view: Task, outputs: Outputs) -> None:
    """Print the JSON document and the closing summary; exit 128+N after signal N, 9 when an
    output could not be written, 5 when any image failed."""
    from bredos_npu.cli.render import backend_dict

    if outputs.as_json:
        document = {"model": str(net.path), "backend": backend_dict(net.backend),
                    "load_ms": round(net.load_ms, 3),
                    "results": [d for d in batch.documents if "error" not in d],
                    "errors": [d for d in batch.documents if "error" in d]}
        if batch.interrupted is not None:  # the results of the images finished before the signal
            document["interrupted"] = batch.interrupted.name
        import json

        batch = _print_whole(json.dumps(document, indent=2), batch)
    file_output = outputs.jsonl or outputs.csv
    if batch.interrupted is not None:
        click.echo(interrupted_line(batch, outputs), err=True)
        ctx.exit(batch.interrupted.exit_code)
    if batch.stopped is not None:
        if batch.done:
            click.echo(summary(batch, view.verb, file_output), err=True)
        raise batch.stopped
    if batch.done == 0:
        click.echo(f"bredos-npu: nothing left to do: all {batch.skipped} inputs were done before.", err=True)
        return
    if batch.done > 1 or file_output:
        click.echo(summary(batch, view.verb, file_output), err=True)
    if batch.output_errors:
        ctx.exit(EXIT_OUTPUT)
    if batch.failed:
        ctx.exit(EXIT_IMAGE)


def _print_whole(text: str, batch: Batch) -> Batch:
    """Print ``text`` on stdout; a stop signal meanwhile waits until it is all out (a JSON
    document cut in half is worth nothing) and then counts as the run's interruption."""
    try:
        with interruptible() as guard, guard.hold():
            click.echo(text)
    except Interrupted as late:
        return batch if batch.interrupted is not None else batch._replace(interrupted=late)
    return batch


def interrupted_line(batch: Batch, outputs: Outputs) -> str:
    """Where the finished results are and how to go on."""
    assert batch.interrupted is not None
    if outputs.as_json and not outputs.results_file:
        return (f"bredos-npu: stopped by {batch.interrupted.name} after {batch.done} images; their "
                'results were printed (the JSON says "interrupted"): write them with --jsonl FILE '
                "to be able to continue a run with --resume.")
    kept = []
    if outputs.results_file:
        kept.append(f"in {shown(outputs.results_file)}")
    if outputs.pictures and not _single_file_target(outputs.pictures, None):
        kept.append(f"(pictures) in {shown(outputs.pictures)}")
    line = f"bredos-npu: stopped by {batch.interrupted.name} after {batch.done} images"
    if kept:
        return (line + f"; their results are kept {' and '.join(kept)}: run the same command with "
                "--resume to continue.")
    return line + "."


def task_results(net: Any, task: str, sources: Iterable[Any], options: dict[str, Any], parallel: int,
                 cluster: str | None, ship: bool, load_options: dict[str, Any]) -> Iterator[Result]:
    """``net.<task>_many`` here, or the same on a Ray cluster's workers when ``cluster`` is given.

    load_options: what the command was asked (backend, delegate, threads, labels): each worker
    chooses its backend on its own board.
    """
    if cluster is None:
        if ship:
            raise click.UsageError("--ship goes with --cluster")
        return net.run_task_many(task, sources, parallel, **options)
    return _on_cluster(net, task, sources, options, parallel, cluster, ship, load_options)


def _on_cluster(net: Any, task: str, sources: Iterable[Any], options: dict[str, Any], parallel: int,
                cluster: str, ship: bool, load_options: dict[str, Any]) -> Iterator[Result]:
    from bredos_npu.cluster.runner import run_on_cluster

    given = {k: v for k, v in load_options.items() if v is not None}
    labels = given.pop("labels", None)
    run = run_on_cluster(cluster, net.path, task, sources, options, ship=ship, labels=labels,
                         load_options=given, actors=parallel if parallel > 1 else None)
    nodes = {w["node"] for w in run.workers}
    backends = ", ".join(sorted({w["backend"] for w in run.workers}))
    click.echo(f"bredos-npu: cluster {cluster}: {len(run.workers)} workers on {len(nodes)} node(s) "
               f"({backends})", err=True)
    yield from run
    if run.retried:
        replaced = f", {run.replaced} replaced" if run.replaced else ""
        click.echo(f"bredos-npu: cluster: {run.lost_actors} worker(s) died{replaced}; {run.retried} "
                   "image(s) were sent again to the others (each result is written once).", err=True)
