"""Options shared by the commands that load a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from bredos_npu.cli.common import debugging
from bredos_npu.runtime.backends import BACKENDS


def model_options(command: Callable[..., Any], default: str = "the bundled MobileNet V2 quant",
                  labels: bool = True) -> Callable[..., Any]:
    """--model, --labels (for tasks that name classes), --backend, --delegate, --threads."""
    label_option = click.option("-l", "--labels", type=click.Path(readable=False),
                                help="Label file (default: the one embedded in the model).")
    for option in reversed([
        click.option("-m", "--model", type=click.Path(readable=False),
                     help=f"A .tflite file or a zoo name (default: {default})."),
        *([label_option] if labels else []),
        click.option("-b", "--backend", type=click.Choice(BACKENDS), default="auto",
                     show_default=True, help="npu: Teflon delegate; cpu: XNNPACK; auto: npu if it works."),
        click.option("--delegate", metavar="PATH",
                     help="External delegate library (default: $BREDOS_NPU_DELEGATE, then libteflon.so)."),
        click.option("-t", "--threads", type=click.IntRange(min=1),
                     help="CPU threads (default: one per core of the fastest cluster)."),
    ]):
        command = option(command)
    return command


def load_model(ctx: click.Context, model: str | None, *, backend: str = "auto", labels: str | None = None,
               delegate: str | None = None, threads: int | None = None,
               check: Callable[[Any], Any] | None = None, **extra: Any) -> Any:
    """Load the model for a command, run ``check`` (does it fit the task?), then say on stderr,
    once, why the NPU is not used."""
    from bredos_npu.cli.progress import DownloadBar
    from bredos_npu.runtime.model import load, once

    bar = DownloadBar(str(model))
    try:
        net = load(model, backend, labels=labels, delegate=delegate, threads=threads,
                   debug=debugging(ctx), download_progress=bar, **extra)
    finally:
        bar.close()
    if check is not None:
        check(net)
    net.on_fallback = once(lambda error: click.echo(
        f"bredos-npu: warning: {error.fact}; the rest runs on the CPU.", err=True))
    if net.backend.fallback:
        from bredos_npu.cli.errors import fallback_line

        click.echo(f"bredos-npu: {fallback_line(net.backend.fallback)}", err=True)
    if net.backend.name == "npu" and not net.backend.npu_node_indices:
        click.echo(f"bredos-npu: warning: the delegate {net.backend.delegate} took none of this "
                   "model's operators: nothing runs on the NPU (see `bredos-npu inspect`).", err=True)
    warn_hazards(net.backend.hazards)
    return net


def warn_hazards(hazards: tuple[str, ...]) -> None:
    """One stderr line for what inspect predicts may go wrong on the NPU (nothing when none)."""
    if hazards:
        more = f" (+{len(hazards) - 1} more)" if len(hazards) > 1 else ""
        from bredos_npu.text import for_terminal

        click.echo(f"bredos-npu: warning: {for_terminal(hazards[0])}{more}; see `bredos-npu inspect`.",
                   err=True)


def given_inputs(images: tuple[str, ...]) -> int | None:
    """How many inputs were named, when they are all files (None when folders are involved)."""
    from bredos_npu.inputs import is_folder

    return None if any(is_folder(i) for i in images) else len(images)


def first_run_note(net: Any) -> str:
    compiled = net.backend.name == "npu" and net.backend.nodes.npu_nodes > 0
    return " (first run: includes NPU graph compilation)" if compiled else ""
