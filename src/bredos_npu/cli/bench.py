"""``bredos-npu bench``: CPU and NPU side by side, measured here and now."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click

from bredos_npu.cli.options import warn_hazards
from bredos_npu.cli.progress import progress_bar
from bredos_npu.errors import BackendError

MEASURED = ("cpu", "npu")


@click.command()
@click.option("-m", "--model", "models", multiple=True, type=click.Path(readable=False),
              help="A .tflite file or a zoo name; repeat to measure several "
                   "(default: the bundled MobileNet V2 quant).")
@click.option("-b", "--backend", "backends", multiple=True, type=click.Choice(MEASURED),
              help="A backend to measure; repeat for several (default: cpu and npu).")
@click.option("--runs", type=click.IntRange(min=1), default=100, show_default=True,
              help="Timed inferences per backend.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True,
              help="Untimed inferences after the first.")
@click.option("-t", "--threads", type=click.IntRange(min=1), help="CPU threads per interpreter.")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Also run N interpreters on N threads and report aggregate throughput.")
@click.option("--image", type=click.Path(readable=False), help="Use this image as input (default: random).")
@click.option("--delegate", metavar="PATH", help="NPU delegate library (default: libteflon.so).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--csv", "csv_path", metavar="FILE", help="Also write one row per backend to FILE.")
@click.option("--plot", metavar="FILE.png", help="Draw the latency distributions side by side.")
@click.option("--force", is_flag=True, help="Overwrite --csv/--plot files that exist.")
@click.pass_context
def bench(ctx: click.Context, models: tuple[str, ...], backends: tuple[str, ...], runs: int, warmup: int,
          threads: int | None, parallel: int, image: str | None, delegate: str | None, as_json: bool,
          csv_path: str | None, plot: str | None, force: bool) -> None:
    """Benchmark models (default: the bundled MobileNet V2) on each backend.

    Per backend: init (load, delegate, allocate), first inference, warm-up, then mean, std, min,
    p50, p90, p99, max and inferences/s, with the speedup over the CPU. A backend that cannot run
    here is shown with the reason; NPU figures appear only when measured on an NPU.
    """
    from bredos_npu.cli import render
    from bredos_npu.outputs import atomic_open, check_output
    from bredos_npu.runtime.bench import benchmark

    names = list(dict.fromkeys(backends)) or list(MEASURED)
    chosen: list[str | None] = list(dict.fromkeys(models)) or [None]
    if delegate and "npu" not in names:
        raise click.UsageError("--delegate is for the npu backend: add -b npu")
    if as_json and csv_path == "-":
        raise click.UsageError("--json and --csv - both write to standard output: choose one")
    if csv_path:
        check_output(csv_path, force)
    if plot:
        from bredos_npu.plotting import check_plot_path

        check_plot_path(plot, force)
    from bredos_npu.cli.progress import model_file

    paths = {model: model_file(model) for model in chosen}  # zoo names are fetched once, here
    each = runs * (1 + (parallel if parallel > 1 else 0))  # progress steps per model and backend
    measured = []
    with progress_bar(len(chosen) * len(names) * each, "inf", enabled=not as_json) as bar:
        for model in chosen:
            results = []
            for name in names:
                bar.set_description(name if len(chosen) == 1 else f"{_name(model)} {name}")
                before = bar.n
                results.append(benchmark(paths[model], name, runs, warmup, threads, delegate, image, parallel,
                                         bar.update))
                bar.update(each - (bar.n - before))  # a backend that could not run counts as done
            measured.append((model, results))
    reports = [_report(model, paths[model], results, image, runs) for model, results in measured]
    if csv_path:
        with atomic_open(csv_path, replace=force) as out:
            rows = [{"model": _name(model), **row} for model, results in measured
                    for row in render.bench_rows(results)]
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if plot:
        from bredos_npu.plotting import plot_latencies

        plot_latencies([run for _, results in measured for run in results], plot, replace=force)
    if as_json:
        documents = [document for document, _ in reports]
        click.echo(json.dumps(documents[0] if len(documents) == 1 else {"models": documents}, indent=2))
    elif csv_path != "-":  # with --csv - standard output carries the CSV only
        click.echo("\n\n".join(text for _, text in reports))
    for path in (csv_path, plot):
        if path and path != "-" and not as_json:
            click.echo(f"written: {path}")
    for _, results in measured:  # the same warnings the other commands print for the NPU
        for run in results:
            if run.info is not None:
                warn_hazards(run.info.hazards)
    if not any(run.latencies_ms for _, results in measured for run in results):
        ctx.exit(BackendError.exit_code)  # nothing could be measured: scripts should notice


def _name(model: str | None) -> str:
    return model or "bundled default"


def _report(model: str | None, path: Path, results: list, image: str | None, runs: int
            ) -> tuple[dict, str]:
    """The JSON document and the text of one model's runs, with inspect's prediction."""
    from bredos_npu.cli import render
    from bredos_npu.models.inspection.analysis import inspect_model

    prediction = inspect_model(path).summary
    document = {**render.bench_dict(results, model, image), "teflon_prediction": prediction}
    text = (render.bench_text(results, model, image, runs)
            + f"\nTeflon prediction (bredos-npu inspect): {prediction}")
    return document, text
