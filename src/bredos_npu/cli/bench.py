"""``bredos-npu bench``: CPU and NPU side by side, measured here and now."""

from __future__ import annotations

import csv
import json

import click

from bredos_npu.cli.options import warn_hazards
from bredos_npu.cli.progress import progress_bar
from bredos_npu.errors import BackendError


def _backends(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in ("cpu", "npu")]
    if unknown or not names:
        raise click.BadParameter(f"choose from cpu, npu (got {value!r})")
    return list(dict.fromkeys(names))


@click.command()
@click.argument("model", required=False, type=click.Path(readable=False))
@click.option("--backends", default="cpu,npu", show_default=True,
              help="Comma-separated backends to measure.")
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
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def bench(ctx: click.Context, model: str | None, backends: str, runs: int, warmup: int, threads: int | None,
          parallel: int, image: str | None, delegate: str | None, as_json: bool,
          csv_path: str | None, plot: str | None, force: bool, debug: bool) -> None:
    """Benchmark MODEL (default: the bundled MobileNet V2) on each backend.

    Per backend: init (load, delegate, allocate), first inference, warm-up, then mean, std, min,
    p50, p90, p99, max and inferences/s, with the speedup over the CPU. A backend that cannot run
    here is shown with the reason; NPU figures appear only when measured on an NPU.
    """
    from bredos_npu.cli import render
    from bredos_npu.outputs import atomic_open, check_output
    from bredos_npu.runtime.bench import benchmark

    names = _backends(backends)
    if as_json and csv_path == "-":
        raise click.UsageError("--json and --csv - both write to standard output: choose one")
    if csv_path:
        check_output(csv_path, force)
    if plot:
        from bredos_npu.plotting import check_plot_path

        check_plot_path(plot, force)
    from bredos_npu.cli.progress import model_file

    path = model_file(model)  # a zoo name is fetched once, here; the rest reads the file
    results = []
    total = len(names) * runs * (1 + (parallel if parallel > 1 else 0))
    with progress_bar(total, "inf", enabled=not as_json) as bar:
        for name in names:
            bar.set_description(name)
            results.append(benchmark(path, name, runs, warmup, threads, delegate, image, parallel,
                                     bar.update))
    from bredos_npu.models.inspection.analysis import inspect_model

    prediction = inspect_model(path).summary
    rows = render.bench_rows(results)
    if csv_path:
        with atomic_open(csv_path, replace=force) as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if plot:
        from bredos_npu.plotting import plot_latencies

        plot_latencies(results, plot, replace=force)
    if as_json:
        click.echo(json.dumps({**render.bench_dict(results, model, image),
                               "teflon_prediction": prediction}, indent=2))
    elif csv_path != "-":  # with --csv - standard output carries the CSV only
        click.echo(render.bench_text(results, model, image, runs))
        click.echo(f"Teflon prediction (bredos-npu inspect): {prediction}")
    for path in (csv_path, plot):
        if path and path != "-" and not as_json:
            click.echo(f"written: {path}")
    for run in results:  # the same warnings the other commands print for the NPU
        if run.info is not None:
            warn_hazards(run.info.hazards)
    if not any(run.latencies_ms for run in results):
        ctx.exit(BackendError.exit_code)  # nothing could be measured: scripts should notice
