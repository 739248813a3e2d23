"""``bredos-npu report``: measure this board and write a report to share (JSON and Markdown)."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("-o", "--output", "json_path", metavar="FILE", default="report.json", show_default=True,
              help="Write the JSON report to FILE ('-' for standard output).")
@click.option("--markdown", "markdown_path", metavar="FILE",
              help="Also write the report as Markdown to FILE.")
@click.option("-m", "--model", "models", metavar="MODEL", multiple=True,
              help="A zoo name or .tflite file to measure (repeatable; default: the bundled "
                   "classifier and the zoo's default detect/segment/pose models).")
@click.option("--images", metavar="DIR",
              help="Images for the CPU/NPU agreement check (default: the bundled one).")
@click.option("--quick", is_flag=True, help="Fewer runs: finishes in a few minutes on a board.")
@click.option("--root", metavar="DIR", help="Read the system below DIR (default: $BREDOS_NPU_ROOT or /).")
@click.option("--delegate", metavar="PATH",
              help="Delegate library (default: $BREDOS_NPU_DELEGATE, then libteflon.so).")
@click.option("--force", is_flag=True, help="Overwrite report files that exist.")
def report(json_path: str, markdown_path: str | None, models: tuple[str, ...], images: str | None,
           quick: bool, root: str | None, delegate: str | None, force: bool) -> None:
    """Measure the NPU against the CPU on this board and write a report to attach to an issue.

    Per model: inspect's prediction, the nodes the delegate really took, graph compile time,
    CPU and NPU latency, NPU scaling over 1-3 interpreters, and whether the NPU computes the same
    answers as the CPU. Without an NPU every NPU field says "not measured" and why. The report
    holds no host names, user names, addresses, serial numbers or home paths.
    """
    from bredos_npu.outputs import atomic_open, check_output
    from bredos_npu.report import make_report
    from bredos_npu.report.markdown import to_markdown

    targets = [p for p in (json_path, markdown_path) if p]
    for target in targets:
        check_output(target, force)
    chosen = _images(images) if images else None
    made = make_report(models or None, chosen, quick=quick, root=root, delegate=delegate,
                       say=lambda line: click.echo(f"bredos-npu: {line}", err=True))
    with atomic_open(json_path, replace=force) as out:
        out.write(json.dumps(made, indent=2) + "\n")
    if markdown_path:
        with atomic_open(markdown_path, replace=force) as out:
            out.write(to_markdown(made))
    verdicts = ", ".join(f"{m['name']}: {m['verdict']}" for m in made["models"])
    written = " and ".join(t for t in targets if t != "-")
    click.echo(f"bredos-npu: report made in {made['seconds']:.0f} s ({verdicts})"
               + (f"; written to {written}" if written else "") + ".", err=True)


def _images(folder: str) -> list[str]:
    from pathlib import Path

    from bredos_npu.errors import ImageError
    from bredos_npu.runtime.pipeline import expand_sources

    found = [str(p) for p in expand_sources((folder,), recursive=False)] if Path(folder).is_dir() else []
    if not found:
        raise ImageError(f"No images in {folder}: pass a folder of JPEG/PNG/BMP files.")
    return found
