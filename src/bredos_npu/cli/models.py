"""``bredos-npu models``: list, pull, path, import and remove zoo models."""

from __future__ import annotations

import json

import click

from bredos_npu.cli.progress import DownloadBar


@click.group()
def models() -> None:
    """The model zoo: known-good models for the RK3588 NPU, downloaded and verified on demand.

    Cache: $BREDOS_NPU_CACHE or the XDG cache folder. Mirror: $BREDOS_NPU_MODEL_BASE_URL.
    A zoo name works wherever a model path does (e.g. `bredos-npu detect -m ssd-mobilenet-v2`).
    """


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the zoo as JSON.")
def list_models(as_json: bool) -> None:
    """Every model with its task, input, quantization, Teflon coverage and cache state."""
    from bredos_npu.cli.render import table
    from bredos_npu.models import zoo

    rows = [{"name": model.name, "task": model.task, "input": model.input,
             "quantization": model.quantization, "coverage": zoo.coverage(model),
             "state": zoo.status(model), "path": str(zoo.local_path(model)), "note": model.note}
            for model in zoo.models().values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = ["name", "task", "input", "quantization", "state", "Teflon coverage"]
    click.echo(table([header, *([r["name"], r["task"], r["input"], r["quantization"], r["state"],
                                 r["coverage"]] for r in rows)]))
    for row in rows:
        if row["state"] == "damaged":
            click.echo(f"bredos-npu: warning: the cached files of {row['name']} do not match the "
                       f"manifest: run `bredos-npu models pull {row['name']}` to repair them.",
                       err=True)


@models.command()
@click.argument("names", nargs=-1, required=True)
def pull(names: tuple[str, ...]) -> None:
    """Download NAMES into the cache (verified; nothing is kept if a download fails)."""
    from bredos_npu.models import zoo

    for name in names:
        was_damaged = zoo.damaged(zoo.get(name))
        bar = DownloadBar(name)
        try:
            path = zoo.pull(name, bar)
        finally:
            bar.close()
        click.echo(f"{name}: {path}" + (" (repaired: the cached copy was damaged)" if was_damaged
                                        else ""))


@models.command()
@click.argument("name")
def path(name: str) -> None:
    """Print the local path of NAME (it must be pulled already)."""
    from bredos_npu.errors import ModelError, Reason
    from bredos_npu.models import zoo

    model = zoo.get(name)
    if not zoo.is_available(model):
        raise ModelError(f"{name} is not downloaded", reason=Reason.NOT_DOWNLOADED, name=name)
    click.echo(zoo.local_path(model))


@models.command("import")
@click.argument("file", type=click.Path(readable=False))
@click.option("--name", required=True, help="The name to use for it, e.g. my-detector.")
@click.option("--task", default="classify", show_default=True,
              help="The task it is made for: the name of a task command (classify, detect, ...).")
@click.option("-l", "--labels", type=click.Path(readable=False), help="Its label file.")
@click.option("--force", is_flag=True, help="Replace an earlier import of the same name.")
def import_model(file: str, name: str, task: str, labels: str | None, force: bool) -> None:
    """Copy a local .tflite FILE into the zoo cache under --name.

    Checked first, and nothing is written when a check fails: FILE is a complete TFLite model
    (exit 4), its outputs fit --task (exit 4), the --labels file fits its outputs (exit 6).
    """
    from bredos_npu.models import zoo

    model = zoo.import_model(file, name, task, labels, force)
    click.echo(f"{name}: {model.imported_path}")


@models.command()
@click.argument("name")
def remove(name: str) -> None:
    """Delete NAME's cached files."""
    from bredos_npu.models import zoo

    removed = zoo.remove(name)
    click.echo("\n".join(f"removed {p}" for p in removed) or f"{name}: nothing cached")
