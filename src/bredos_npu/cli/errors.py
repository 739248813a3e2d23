"""The CLI's words for API errors: reasons mapped to flags and commands a shell user can type.

The API says "pass force=True"; the CLI says "pass --force". Only the fix changes: the fact (what
is wrong) is the API's sentence as it is.
"""

from __future__ import annotations

from collections.abc import Callable

from bredos_npu.cli.common import flags
from bredos_npu.errors import BredosNpuError, Reason

DOCTOR = "run `bredos-npu doctor` for details"
INSPECT = "see `bredos-npu inspect`"


def _wrong_task(error: BredosNpuError) -> str | None:
    fits = error.data.get("fits")
    if fits and error.data.get("importing"):
        return f"pass --task {fits}"
    return f"it looks made for `bredos-npu {fits}`" if fits else None


def _not_downloaded(error: BredosNpuError) -> str:
    return f"run `bredos-npu models pull {error.data.get('name', 'NAME')}`"


def _offline(error: BredosNpuError) -> str:
    return (f"run `bredos-npu models pull` on a connected machine, or copy the file to "
            f"{error.data.get('path')}")


def _output_exists(error: BredosNpuError) -> str | None:
    return error.fix if error.data.get("pictures") else "pass --force to overwrite it, or choose another name"


# Fixes that replace the API's (None: the fact alone is the sentence).
FIXES: dict[Reason, str | Callable[[BredosNpuError], str | None] | None] = {
    Reason.OUTPUT_EXISTS: _output_exists,
    Reason.NAME_TAKEN: "pass --force to replace it",
    Reason.NO_TEFLON: "install it with `sudo pacman -Syu mesa` or pass --delegate PATH",
    Reason.DELEGATE_MISSING: "pass --delegate with the path of Mesa's libteflon.so",
    Reason.WRONG_TASK: _wrong_task,
    Reason.UNKNOWN_MODEL_NAME: "see `bredos-npu models list` for the names",
    Reason.MODEL_NOT_FOUND: "check the path, or name a model from `bredos-npu models list`",
    Reason.NOT_DOWNLOADED: _not_downloaded,
    Reason.OFFLINE: _offline,
    Reason.DELEGATE_FAILED: "pass --backend auto to go on on the CPU",
    Reason.ALREADY_NPU_READY: "check it with `bredos-npu inspect`",
}
# Hints added after the fix: where to look next.
HINTS = {
    Reason.NOT_RK3588: DOCTOR,
    Reason.NO_DEVICE_NODE: DOCTOR,
    Reason.NPU_NOT_READY: DOCTOR,
    Reason.NO_DELEGATE: DOCTOR,
    Reason.DELEGATE_NOT_LOADABLE: DOCTOR,
    Reason.WOULD_CRASH: INSPECT,
    Reason.WRONG_RESULTS: INSPECT,
    Reason.DELEGATE_TOOK_NOTHING: INSPECT,
}
# Fixes that say "run it on the CPU": a fallback line already says it does.
RUN_ON_CPU = frozenset({Reason.FLOAT_MODEL, Reason.WOULD_CRASH, Reason.WRONG_RESULTS,
                        Reason.DELEGATE_CRASHED, Reason.DELEGATE_HUNG})
# API options the command line spells otherwise than flags() of their name.
SPELLED_OTHERWISE = {"mean/std": "--input-mean/--input-std"}
# Command options (not a task's) that the command line spells as flags() of their API name. Named
# one by one, not assumed of every option: some API options have no flag (decoders, batch), and
# their sentences must keep the API's words.
COMMAND_OPTIONS = frozenset({"threads", "image", "root", "parallel"})


def flag(option: str) -> str | None:
    """The flag that sets the API option ``option`` (``top_k`` → ``--top-k``), or None where the
    command line has none. Task options are the registry's, spelled as their commands declare them."""
    if option in SPELLED_OTHERWISE:
        return SPELLED_OTHERWISE[option]
    if option in COMMAND_OPTIONS or option in _task_options():
        return flags(option)[-1]
    return None


def _task_options() -> frozenset[str]:
    from bredos_npu.tasks import registry

    return frozenset(option.name for task in registry.tasks() for option in task.options)


def cli_fix(error: BredosNpuError, fallback: bool = False) -> str | None:
    """The fix in the CLI's words, with the hint of where to look next."""
    fix = error.fix
    if error.reason in FIXES:
        replaced = FIXES[error.reason]
        fix = replaced(error) if callable(replaced) else replaced
    if fallback and error.reason in RUN_ON_CPU:
        fix = None
    parts = [part for part in (fix, HINTS.get(error.reason)) if part]
    return "; ".join(parts) or None


def cli_fact(error: BredosNpuError) -> str:
    """The fact, with an API option name replaced by its flag (``top_k`` → ``--top-k``)."""
    option = error.data.get("option")
    fact = error.fact
    spelled = flag(option) if error.reason is Reason.BAD_VALUE and isinstance(option, str) else None
    if spelled is not None:
        if fact.startswith(option):
            fact = spelled + fact[len(option):]
        elif option == "mean/std" and fact.startswith("mean"):
            fact = fact.replace("mean", "--input-mean", 1).replace("and std", "and --input-std", 1)
    return fact


def describe(error: BredosNpuError) -> str:
    """One sentence for stderr: the fact, then the CLI's fix."""
    fix = cli_fix(error)
    return f"{cli_fact(error)}: {fix}." if fix else f"{cli_fact(error)}."


def fallback_line(error: BredosNpuError) -> str:
    """Why ``auto`` runs on the CPU, as one line ending in "running on the CPU."."""
    fix = cli_fix(error, fallback=True)
    return f"{error.fact}: {fix}; running on the CPU." if fix else f"{error.fact}; running on the CPU."
