"""The ``bredos-npu`` command: argument parsing and rendering only; logic lives in the API."""

from __future__ import annotations

import os
import sys
import traceback

import click

from bredos_npu.errors import EXIT_ERROR, EXIT_USAGE, BredosNpuError

DEBUG_ENV = "BREDOS_NPU_DEBUG"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bredos-npu", prog_name="bredos-npu")
@click.option("--debug", is_flag=True, help="Show tracebacks and native (TFLite, Teflon) logs.")
@click.option("--offline", is_flag=True, help="Never download; use only cached or local models.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, offline: bool) -> None:
    """Run TensorFlow Lite models on the RK3588 NPU (Mesa Teflon), with CPU fallback."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug or ctx.obj.get("debug", False)
    if offline:
        from bredos_npu.models.zoo import OFFLINE_ENV

        os.environ[OFFLINE_ENV] = "1"


def _register() -> None:
    from bredos_npu.cli import (
        bench,
        classify,
        cluster,
        doctor,
        inspect,
        models,
        quantize,
        report,
        serve,
        vision,
    )

    for command in (classify.classify, vision.detect, vision.segment, vision.pose, inspect.inspect,
                    bench.bench, doctor.doctor, models.models, quantize.quantize, report.report,
                    serve.serve, cluster.cluster):
        cli.add_command(command)


_register()


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
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code or EXIT_USAGE
    except BredosNpuError as exc:
        if debug:
            traceback.print_exc()
        from bredos_npu.cli.errors import describe
        from bredos_npu.cli.terminal import for_terminal

        click.echo(f"bredos-npu: error: {for_terminal(describe(exc))}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = 130
    except Exception as exc:  # a bug: one line for users, the traceback with --debug
        if debug:
            raise
        from bredos_npu.cli.terminal import for_terminal

        click.echo(f"bredos-npu: unexpected error: {type(exc).__name__}: {for_terminal(str(exc))} "
                   "(run with --debug for the traceback)", err=True)
        code = EXIT_ERROR
    sys.exit(code if isinstance(code, int) else 0)
