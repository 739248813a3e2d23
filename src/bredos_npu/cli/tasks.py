"""One command per task of the registry (``classify``, ``detect``, ``segment``, ``pose``...).

Every task command takes the same options: the model's (``-m``, ``-l``, ``-b``...), the
task's own (from its :class:`~bredos_npu.tasks.registry.TaskOption` list), and the batch
options (folders, ``--parallel``, ``--json``, ``--jsonl``, ``--csv``, ``-o`` for tasks that draw).
"""

from __future__ import annotations

from typing import Any

import click

from bredos_npu.cli.batch import Outputs, batch_options, finish, plan_run, run_batch, task_results
from bredos_npu.cli.common import debugging, flags
from bredos_npu.cli.interrupts import doing, interruptible
from bredos_npu.cli.options import first_run_note, given_inputs, load_model, model_options
from bredos_npu.cli.stream import (
    StreamOptions,
    check_video_outputs,
    event_options,
    run_video,
    video_input,
    video_options,
)
from bredos_npu.tasks.registry import Task, TaskOption


def _click_option(option: TaskOption) -> Any:
    if option.kind is int:
        kind: Any = click.IntRange(min=option.minimum, max=option.maximum)
    else:
        kind = click.FloatRange(min=option.minimum, max=option.maximum)
    return click.option(*flags(option.name), option.name, type=kind, default=option.default,
                        show_default=option.default is not None, help=option.help)


def _run(ctx: click.Context, task: Task, images: tuple[str, ...], params: dict[str, Any]) -> None:
    """The task command: a stop signal ends it with one line and 128 + its number wherever it
    arrives (loading the model included: a download keeps its partial file for the next run to
    resume, the delegate probe's child is killed), not with the signal's default action."""
    with interruptible():
        _run_task(ctx, task, images, params)


def _run_task(ctx: click.Context, task: Task, images: tuple[str, ...], params: dict[str, Any]) -> None:
    from bredos_npu.cli.render import model_header
    from bredos_npu.models import bundled
    from bredos_npu.runtime.pipeline import expand_sources

    if not images and not task.sample_input:
        raise click.UsageError(f"give one or more images or folders to {task.name}")
    outputs = Outputs(params.pop("as_json"), params.pop("jsonl_path"), params.pop("csv_path"),
                      params.pop("output", None), params.pop("force"), params.pop("resume"),
                      nodes=params["cluster"] is not None)
    cluster, ship = params.pop("cluster"), params.pop("ship")
    video = video_input(images)
    if not video:
        _refuse_video_options(ctx)
    if video and cluster:
        raise click.UsageError("--cluster takes image files and folders, not a video source")
    stream = StreamOptions(*(params.pop(name) for name in ("fps", "every", "retries", "timeout")),
                           *(params.pop(name) for name in EVENT_PARAMS if task.trackable))
    if video:
        check_video_outputs(outputs, stream)
    else:
        outputs.check(given_inputs(images) if images else 1)
    options = {option.name: params.pop(option.name) for option in task.options}
    model, recursive, parallel = params.pop("model"), params.pop("recursive"), params.pop("parallel")
    params["mean"], params["std"] = params.pop("input_mean"), params.pop("input_std")
    # On a cluster each worker chooses its own backend: here the model is only checked, on the CPU.
    with doing("loading the model"):
        net = load_model(ctx, model or task.default_model, check=task.check,
                         **{**params, "backend": "cpu" if cluster else params["backend"]})
    with doing("listing the inputs"):
        sources = list(expand_sources(images, recursive)) if images else [bundled.sample_image()]
    default = model is None and task.default_model is None
    header = (model_header(net, default=default, has_classes=task.uses_labels)
              + f"\n  load {net.load_ms:.1f} ms")
    if video:
        run_video(ctx, net, task.name, video, lambda **reading: net.run_task_stream(
            task.name, video, parallel, reading, **options), task, outputs, stream, header)
        return
    with doing("listing the inputs"):
        plan = plan_run(sources, task, outputs, given_inputs(images) if images else 1)
    load = {name: params.get(name) for name in ("backend", "labels", "delegate", "threads")}
    load["debug"] = debugging(ctx)
    results = task_results(net, task.name, plan.sources, options, parallel, cluster, ship, load)
    finish(ctx, net, run_batch(results, task, outputs, given_inputs(images), header, first_run_note(net),
                               plan), task, outputs)


# StreamOptions' event fields, in order, as the event options name them (tasks with boxes).
EVENT_PARAMS = ("track", "min_frames", "stay", "zones", "lines", "events_path", "mqtt", "stream_name")
VIDEO_PARAMS = ("fps", "every", "retries", "timeout", *EVENT_PARAMS)


def _refuse_video_options(ctx: click.Context) -> None:
    """A video option given with images would be ignored: say so instead."""
    from click.core import ParameterSource

    for param in ctx.command.params:
        if param.name in VIDEO_PARAMS and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
            raise click.UsageError(f"{param.opts[-1]} is for a video source, not for images")
input_options = [
    click.option("--input-mean", type=float,
                 help="Input normalisation (pixel - mean) / std; the other one defaults to 127.5."),
    click.option("--input-std", type=float,
                 help="Input normalisation (pixel - mean) / std; the other one defaults to 127.5."),
]
output_option = click.option("-o", "--output", metavar="FILE|DIR",
                             help="Write the annotated picture to FILE (one image) or into DIR.")


BATCH_HELP = "\n\nBroken images are reported and skipped; the exit status says whether any failed."
TRACKING_HELP = ("\n\nOn a video, --track/--zone/--line/--events/--mqtt turn detections into tracks and "
                 "events.")
VIDEO_HELP = ("\n\nIMAGES may also be one video: a file, an rtsp:// or http(s):// stream or /dev/videoN "
              "(needs the [video] extra); then -o writes an annotated video and --jsonl one line per frame.")


def task_command(task: Task) -> click.Command:
    """The click command for ``task``."""
    default = task.default_model or "the bundled MobileNet V2 quant"

    def command(**params: Any) -> None:
        _run(click.get_current_context(), task, params.pop("images"), params)

    decorators = [click.argument("images", nargs=-1, type=click.Path(readable=False)),
                  *[_click_option(option) for option in task.options], *input_options]
    if task.draw is not None:
        decorators.append(output_option)
    for decorate in reversed(decorators):
        command = decorate(command)
    command = batch_options(command, csv_help=f"Write {task.name} results to FILE as CSV rows.")
    command = video_options(command)
    if task.trackable:
        command = event_options(command)
    command = model_options(command, default=default, labels=task.uses_labels)
    help_text = (task.summary + (f"\n\n{task.description}" if task.description else "") + BATCH_HELP
                 + (TRACKING_HELP if task.trackable else "") + VIDEO_HELP)
    return click.command(task.name, help=help_text)(command)
