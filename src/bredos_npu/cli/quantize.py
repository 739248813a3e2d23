"""``bredos-npu quantize``: a float or per-channel int8 model → a per-tensor uint8 model for the NPU."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("model", type=click.Path(dir_okay=True))
@click.option("-o", "--output", required=True, metavar="OUT.tflite",
              help="Where to write the uint8 model (never over an existing file).")
@click.option("--calibration", required=True, metavar="DIR",
              help="Folder of images like the ones the model will see (every 4th is held out).")
@click.option("--count", type=click.IntRange(min=1), default=200, show_default=True,
              help="Calibrate on at most this many images.")
@click.option("--evaluation", metavar="DIR",
              help="Measure agreement on this folder's images instead of holding out a quarter.")
@click.option("-l", "--labels", type=click.Path(dir_okay=False),
              help="Label file to pack into the output.")
@click.option("--report", metavar="FILE.json", help="Also write the measurements as JSON.")
def quantize(model: str, output: str, calibration: str, count: int, evaluation: str | None,
             labels: str | None, report: str | None) -> None:
    """Quantize MODEL (float, or per-channel int8 .tflite) per tensor to uint8 for the NPU.

    MODEL may also be a SavedModel folder or a .keras/.h5 file (the [convert] extra, TensorFlow)
    or an .onnx file (the [onnx] extra, onnx2tf): it is converted to a float .tflite first.

    Tries plain quantization, cross-layer equalization, equalization with bias correction
    (Nagel et al., ICCV 2019), and equalization with adaptive rounding (AdaRound/GPTQ) plus
    empirical bias correction; measures each against MODEL, chooses on the calibration images,
    reports on held-out ones, and writes the chosen model after checking it loads and that every
    convolution runs on the NPU per `inspect`.
    """
    from bredos_npu.errors import OutputError
    from bredos_npu.models.quantize.calibrate import require
    from bredos_npu.models.quantize.pipeline import quantize as run
    from bredos_npu.outputs import atomic_open, check_output

    require()
    if report and (check_output(report, force=True).exists()):
        raise OutputError(f"{report} already exists: choose another name for the report.")
    result = run(model, output, calibration, count=count, labels=labels, evaluation=evaluation,
                 progress=lambda message: click.echo(message, err=True))
    click.echo(summary_text(result))
    if report:
        with atomic_open(report) as out:
            json.dump(result.as_dict(), out, indent=2)
            out.write("\n")
        click.echo(f"report written to {report}")


def summary_text(result: object) -> str:
    lines = []
    if result.changes:
        lines.append(f"source: {', '.join(result.changes)}")
    lines.append(f"images: {result.calibration_images} for calibration (they choose the method), "
                 f"{result.held_out_images} held out (they measure it)")
    lines.append(f"{'method':<38}{'held-out top-1':>15}{'mean |score diff|':>19}"
                 f"{'calibration top-1':>19}")
    for m in result.methods:
        mark = "  <- chosen" if m.method == result.chosen else ""
        lines.append(f"{m.method:<38}{m.top1_agreement:>15.3f}{m.mean_abs_score_diff:>19.5f}"
                     f"{m.calibration_top1_agreement:>19.3f}{mark}")
    lines.append(f"{'float (reference)':<38}{result.float_top1_agreement:>15.3f}")
    lines.append(f"NPU share of MACs (bredos-npu inspect): {result.npu_mac_share_before:.1%} before, "
                 f"{result.npu_mac_share_after:.1%} after")
    lines.append(f"{result.npu_summary_after}")
    lines.append(f"written to {result.output}")
    return "\n".join(lines)
