"""``bredos-npu inspect``: what Teflon would run on the NPU, from the model file alone."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("model", required=False, type=click.Path(readable=False))
@click.option("-m", "--model", "model_option", type=click.Path(readable=False),
              help="A .tflite file or a zoo name, as MODEL (default: the bundled MobileNet V2 quant).")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option("--runtime", is_flag=True,
              help="Also load the model on the NPU and compare with the nodes Teflon really takes.")
@click.option("--plot", metavar="FILE.png", help="Draw the ops as bars (MACs), coloured by verdict.")
@click.option("--delegate", metavar="PATH", help="Delegate library for --runtime.")
@click.option("--force", is_flag=True, help="Overwrite the --plot file if it exists.")
@click.option("--compare", "report_path", metavar="REPORT.json",
              help="List the ops where the prediction differs from a board's `bredos-npu report`.")
def inspect(model: str | None, model_option: str | None, as_json: bool, runtime: bool, plot: str | None,
            delegate: str | None, force: bool, report_path: str | None) -> None:
    """Predict which operators of MODEL (default: the bundled MobileNet V2) Mesa Teflon runs on
    the RK3588 NPU, and why not the rest.

    Per operator: type, shapes, dtypes, quantization, strides, dilation, padding, activation,
    MACs and the verdict (npu/cpu with the reason), hazards, partitions and advice.
    """
    from bredos_npu.cli import render
    from bredos_npu.models.inspection.analysis import inspect_model
    from bredos_npu.plotting import check_plot_path

    if model and model_option:
        raise click.UsageError("name the model once: as MODEL or with -m")
    if delegate and not runtime:
        raise click.UsageError("--delegate is for --runtime: without it inspect loads no delegate")
    if report_path and (plot or runtime):
        raise click.UsageError("--compare lists differences only: leave out --plot and --runtime")
    model = model or model_option
    if plot:
        check_plot_path(plot, force)
    from bredos_npu.cli.progress import model_file

    inspection = inspect_model(model_file(model))  # a zoo name downloads visibly, once
    check = None
    if runtime:
        from bredos_npu.runtime.verify import verify_on_npu

        check = verify_on_npu(inspection, delegate)
    if report_path:
        _compare(inspection, report_path, as_json)
        return
    if plot:
        from bredos_npu.plotting import plot_inspection

        plot_inspection(inspection, plot, replace=force)
    if as_json:
        click.echo(json.dumps(render.inspection_dict(inspection, check), indent=2))
        return
    click.echo(render.inspection_text(inspection))
    if check is not None:
        click.echo(render.runtime_check_text(check))
    if plot:
        click.echo(f"plot written to {plot}")


def _compare(inspection: object, report_path: str, as_json: bool) -> None:
    """Print every op where the prediction and the board's report disagree."""
    from bredos_npu.errors import UsageError
    from bredos_npu.models.inspection.compare import differences, report_entry

    try:
        with open(report_path, encoding="utf-8") as file:
            report = json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as why:
        raise UsageError(f"Cannot read the report {report_path}: {why}.") from None
    found = differences(inspection, report_entry(report, inspection.path.read_bytes()))
    if as_json:
        click.echo(json.dumps([d._asdict() for d in found], indent=2))
        return
    if not found:
        click.echo(f"The prediction matches the board for every op of {inspection.path.name}.")
        return
    click.echo(f"{len(found)} op(s) where the prediction and the board differ:")
    for d in found:
        teflon = f" (Teflon: {d.teflon})" if d.teflon else ""
        click.echo(f"  op {d.index:>3} {d.name:<20} predicted {d.predicted}, "
                   f"board ran it on {d.actual}{teflon}")
