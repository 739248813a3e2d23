"""What every command shares: the global options, declared once, and the one-line usage errors."""

from __future__ import annotations

import re

import click

# Options get ``--name-with-dashes``; these add a short or traditional spelling.
ALIASES = {"top_k": ("-k",), "max_results": ("--max",)}


def flags(name: str) -> tuple[str, ...]:
    """How the command line spells the option ``name`` (``top_k`` → ``-k``, ``--top-k``)."""
    return (*ALIASES.get(name, ()), "--" + name.replace("_", "-"))


def _remember_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(dict)["debug"] = True


def _go_offline(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        import os

        from bredos_npu.models.zoo import OFFLINE_ENV

        os.environ[OFFLINE_ENV] = "1"


def global_options() -> list[click.Option]:
    """--debug and --offline, declared once: the group and every command take them (before or
    after the command's name), and they land in ``ctx.obj["debug"]`` and the offline setting."""
    return [
        click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True,
                     callback=_remember_debug, help="Show tracebacks and native (TFLite, Teflon) logs."),
        click.Option(["--offline"], is_flag=True, expose_value=False, is_eager=True,
                     callback=_go_offline, help="Never download; use only cached or local models."),
    ]


def with_global_options(command: click.Command) -> click.Command:
    """``command`` (and, for a group, each of its commands) taking the global options."""
    taken = {name for param in command.params for name in param.opts}
    command.params.extend(option for option in global_options() if not taken & set(option.opts))
    if isinstance(command, click.Group):  # the lazy root group adds them in get_command
        for sub in command.commands.values():
            with_global_options(sub)
    return command


def debugging(ctx: click.Context) -> bool:
    """Whether --debug was given, before or after the command's name."""
    return bool((ctx.obj or {}).get("debug", False))


# Click words a suggestion as a second sentence ("No such option '--forc'. Did you mean
# '--force'?"); on one line it becomes a parenthesis.
SUGGESTION = re.compile(r"\.?\s+\(?Did you mean (.*?)\)?$", re.DOTALL)


def usage_line(error: click.UsageError) -> str:
    """Click's usage error as one line: ``bredos-npu classify: no such option '--foo' (see
    bredos-npu classify --help)`` instead of Usage, Try and Error on three lines."""
    context = error.ctx
    path = context.command_path if context is not None else "bredos-npu"
    message = SUGGESTION.sub(r" (did you mean \1)", error.format_message().strip())
    message = " ".join(message.split()).rstrip(".")
    return f"{path}: {message[:1].lower()}{message[1:]} (see {path} --help)"


def shows_help(error: click.UsageError) -> bool:
    """Whether the error is click's "no arguments: here is the help" (click 8.2 and later)."""
    return type(error).__name__ == "NoArgsIsHelpError"
