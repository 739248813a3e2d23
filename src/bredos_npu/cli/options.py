"""Options shared by the commands that load a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from bredos_npu.runtime.backends import BACKENDS

debug_option = click.option(
    "--debug", is_flag=True, help="Show tracebacks and native (TFLite, Teflon) logs."
)


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --labels, --backend, --delegate, --threads, --debug."""
    for option in reversed([
        click.option("-m", "--model", type=click.Path(dir_okay=True),
                     help="A .tflite model (default: the bundled MobileNet V2 quant)."),
        click.option("-l", "--labels", type=click.Path(dir_okay=True),
                     help="Label file (default: the one embedded in the model)."),
        click.option("-b", "--backend", type=click.Choice(BACKENDS), default="auto",
                     show_default=True, help="npu: Teflon delegate; cpu: XNNPACK; auto: npu if it works."),
        click.option("--delegate", metavar="PATH",
                     help="External delegate library (default: $BREDOS_NPU_DELEGATE, then libteflon.so)."),
        click.option("-t", "--threads", type=click.IntRange(min=1),
                     help="CPU threads (default: one per core of the fastest cluster)."),
        debug_option,
    ]):
        command = option(command)
    return command
