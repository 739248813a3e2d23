"""The ``bredos-npu`` command: argument parsing and rendering only; logic lives in the API."""

from __future__ import annotations

import os
import sys
import traceback

import click

from bredos_npu.cli.common import shows_help, usage_line, with_global_options
from bredos_npu.errors import EXIT_ERROR, EXIT_USAGE, BredosNpuError

DEBUG_ENV = "BREDOS_NPU_DEBUG"


# Commands that are not tasks, imported only when invoked (a fast start for `classify`).
COMMANDS = {"bench": "bredos_npu.cli.bench", "cluster": "bredos_npu.cli.cluster",
            "doctor": "bredos_npu.cli.doctor",
            "inspect": "bredos_npu.cli.inspect", "models": "bredos_npu.cli.models",
            "quantize": "bredos_npu.cli.quantize", "report": "bredos_npu.cli.report",
            "serve": "bredos_npu.cli.serve"}


class Commands(click.Group):
    """The task commands come from the task registry, the others from COMMANDS, both on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from bredos_npu.tasks import registry

        return sorted([*registry.names(), *COMMANDS])

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
            traceback.print_exc()
        from bredos_npu.cli.errors import describe
        from bredos_npu.text import for_terminal

        click.echo(f"bredos-npu: error: {for_terminal(describe(exc))}", err=True)
        code = exc.exit_code
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
