"""The ``bredos-npu`` command: argument parsing and rendering only; logic lives in the API."""

from __future__ import annotations

import gc
import os
import sys

import click

from bredos_npu.cli.common import shows_help, usage_line, with_global_options
from bredos_npu.cli.interrupts import Interrupted
from bredos_npu.errors import EXIT_ERROR, EXIT_USAGE, BredosNpuError

DEBUG_ENV = "BREDOS_NPU_DEBUG"


# Commands that are not tasks, imported only when invoked (a fast start for `classify`).
COMMANDS = {"bench": "bredos_npu.cli.bench", "cluster": "bredos_npu.cli.cluster",
            "doctor": "bredos_npu.cli.doctor",
            "inspect": "bredos_npu.cli.inspect", "models": "bredos_npu.cli.models",
            "quantize": "bredos_npu.cli.quantize", "report": "bredos_npu.cli.report",
            "serve": "bredos_npu.cli.serve"}


# What `bredos-npu --help` lists: every command (the registry's tasks and COMMANDS) with the first
# sentence of its help. Kept here so that the listing imports no command (each pulls numpy, PIL or
# an extra); tests/test_start.py checks it against the registry and the commands' own help.
SUMMARIES = {
    "bench": "Benchmark models (default: the bundled MobileNet V2) on each backend.",
    "classify": "Classify IMAGES and folders of images (default: a bundled sample photo).",
    "cluster": "Run bulk jobs across many RK3588 boards with Ray (see --cluster on classify/detect/...).",
    "detect": "Find objects in IMAGES with an SSD-style detector (default: SSD MobileNet V1, COCO).",
    "doctor": "Check SoC, kernel, driver, device, Teflon and Python runtime.",
    "inspect": "Predict which operators of MODEL (default: the bundled MobileNet V2) Mesa Teflon runs on "
               "the RK3588 NPU, and why not the rest.",
    "models": "The model zoo: known-good models for the RK3588 NPU, downloaded and verified on demand.",
    "pose": "Find the 17 body keypoints of the person in IMAGES (default: MoveNet Lightning).",
    "quantize": "Quantize MODEL (float, or per-channel int8 .tflite) per tensor to uint8 for the NPU.",
    "report": "Measure the NPU against the CPU on this board and write a report to attach to an issue.",
    "segment": "Label every pixel of IMAGES (default: DeepLab V3 MobileNet V2, Pascal VOC classes).",
    "serve": "Serve models over HTTP: DeepStack-compatible detection (Frigate, Home Assistant, Blue "
             "Iris), a native JSON API for every task, Prometheus metrics and a web page at /.",
}


class Commands(click.Group):
    """The task commands come from the task registry, the others from COMMANDS, both on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUMMARIES)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, from SUMMARIES instead of importing every command."""
        limit = formatter.width - 6 - max(map(len, SUMMARIES))
        # A bare Command shortens the text exactly as the real command would.
        with formatter.section("Commands"):
            formatter.write_dl([(name, click.Command(name, help=SUMMARIES[name]).get_short_help_str(limit))
                                for name in sorted(SUMMARIES)])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            from importlib import import_module

            return with_global_options(getattr(import_module(COMMANDS[name]), name))
        from bredos_npu.errors import UsageError
        from bredos_npu.tasks import registry

        try:
            task = registry.get(name)
        except UsageError:
            return None
        from bredos_npu.cli.tasks import task_command

        return with_global_options(task_command(task))


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bredos-npu", prog_name="bredos-npu")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Run TensorFlow Lite models on the RK3588 NPU (Mesa Teflon), with CPU fallback."""
    ctx.ensure_object(dict)


with_global_options(cli)


def wants_debug(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command; turn our errors into one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = wants_debug(args)
    if not debug:
        from bredos_npu.cli.terminal import one_line_warnings

        one_line_warnings()
    try:
        code = cli.main(args=args, prog_name="bredos-npu", standalone_mode=False,
                        obj={"debug": debug})
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = 130
    except click.UsageError as exc:
        if shows_help(exc):
            exc.show()
        else:
            from bredos_npu.text import for_terminal

            click.echo(for_terminal(usage_line(exc)), err=True)
        code = exc.exit_code or EXIT_USAGE
    except click.ClickException as exc:
        from bredos_npu.text import for_terminal

        click.echo(f"bredos-npu: error: {for_terminal(exc.format_message())}", err=True)
        code = exc.exit_code or EXIT_USAGE
    except BredosNpuError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        from bredos_npu.cli.errors import describe
        from bredos_npu.text import for_terminal

        click.echo(f"bredos-npu: error: {for_terminal(describe(exc))}", err=True)
        code = exc.exit_code
    except Interrupted as stop:  # a stop signal outside a batch, which says how far it got itself
        click.echo(stop.line(), err=True)
        code = stop.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = 130
    except Exception as exc:  # a bug: one line for users, the traceback with --debug
        if debug:
            raise
        from bredos_npu.text import for_terminal

        click.echo(f"bredos-npu: unexpected error: {type(exc).__name__}: {for_terminal(str(exc))} "
                   "(run with --debug for the traceback)", err=True)
        code = EXIT_ERROR
    sys.exit(code if isinstance(code, int) else 0)


def entry() -> None:
    """The ``bredos-npu`` program (console script, ``python -m bredos_npu``): :func:`main` in a
    process that ends with it."""
    try:
        main()
    finally:
        # At exit the interpreter walks every object still alive for reference cycles before it
        # frees the modules: a tenth of a `classify IMAGE` (benchmarks/bench_start.py). The process
        # is ending, so that walk is skipped; objects are still freed, and every output file was
        # closed and published before main() returned.
        gc.freeze()
