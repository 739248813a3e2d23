"""``bredos-npu doctor``: is this board ready for the NPU, and if not, what to run."""

from __future__ import annotations

import json

import click

from bredos_npu.doctor import diagnose
from bredos_npu.errors import EXIT_NPU_NOT_READY, EXIT_OK


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option("--root", metavar="DIR", help="Read the system below DIR (default: $BREDOS_NPU_ROOT or /).")
@click.option("--delegate", metavar="PATH", help="Check this delegate library instead of searching.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, root: str | None, delegate: str | None) -> None:
    """Check SoC, kernel, driver, device, Teflon and Python runtime.

    Exit status: 0 when the NPU is ready, 3 when only the CPU can be used.
    """
    from bredos_npu.cli.render import doctor_text

    report = diagnose(root, delegate)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(doctor_text(report))
    ctx.exit(EXIT_OK if report.npu_ready else EXIT_NPU_NOT_READY)
