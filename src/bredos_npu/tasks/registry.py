"""The task registry: every task (classify, detect, segment, pose, ...) is one module in ``tasks/``.

A task module defines ``TASK = Task(...)``, which declares everything its consumers need:

- ``check(model)``: raise ModelError (reason WRONG_TASK) unless the model's outputs fit the task;
  ``fits(outputs)``: whether outputs (a list of :class:`OutputShape`) look made for the task,
  used to suggest the right task for a model and to check ``models import --task``.
- ``postprocess(model, outputs, size, **options)``: the result for one image from the model's
  dequantized outputs (float32 arrays, in output order) and the image's original (width, height).
- ``options``: the task's keyword options (:class:`TaskOption`: name, type, default, range),
  checked by :meth:`Task.bind` before any work.
- ``result``: the type ``postprocess`` returns (e.g. ``list[Class]``, :class:`Segmentation`).
- rendering: ``document(result)`` the JSON object of one image (what ``--json`` prints per image
  and a server should answer), ``csv_fields``/``csv_rows(result)`` the CSV rows (one image may give
  several), ``text(result)`` the lines for people, ``draw(picture, result)`` an annotated copy of
  the PIL image (or None when the task draws nothing).
- ``default_model``: the zoo name used when none is given (None: the bundled MobileNet V2).

Consumers look tasks up here and never list them themselves:

    from bredos_npu.tasks import registry

    task = registry.get("detect")
    result = model.run_task("detect", image, threshold=0.4)     # or task.postprocess(...)
    body = task.document(result)                                # JSON-ready dict

The CLI builds one command per task from this, ``Model`` has ``run_task``/``run_task_many`` plus
the named methods (``model.detect(...)``), and the zoo takes its task names from :func:`names`.
Adding a task = one module here (defining ``TASK``) and its tests.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any, NamedTuple

from bredos_npu.errors import ModelError, Reason, UsageError

if TYPE_CHECKING:
    from bredos_npu.runtime.model import Model


class OutputShape(NamedTuple):
    """One model output as tasks see it before running: its tensor name and shape."""

    name: str
    shape: tuple[int, ...]


class TaskOption(NamedTuple):
    """A keyword option of a task, called ``name`` (skins spell it their own way).

    ``kind`` is int or float; ``minimum``/``maximum`` bound it (inclusive); a ``default`` of None
    means "no limit" and None is then accepted.
    """

    name: str
    kind: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value: Any) -> Any:
        """The value, or UsageError (reason BAD_VALUE) when it is out of range or not a number."""
        if value is None and self.default is None:
            return None
        try:
            number = self.kind(value)
        except (TypeError, ValueError):
            number = math.nan
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        if isinstance(value, bool) or not (low <= number <= high):  # NaN fails every comparison
            if self.maximum is None:
                bounds = f"{self.minimum:g} or more"
            else:
                bounds = f"between {self.minimum:g} and {self.maximum:g}"
            raise UsageError(f"{self.name} must be {bounds}, not {value}.", reason=Reason.BAD_VALUE,
                             option=self.name, value=value)
        return number


class Task(NamedTuple):
    """One task; see the module docstring for what each field means."""

    name: str
    summary: str
    check: Callable[[Model], None]
    fits: Callable[[Sequence[OutputShape]], bool]
    postprocess: Callable[..., Any]
    result: Any
    document: Callable[[Any], dict[str, Any]]
    csv_fields: tuple[str, ...]
    csv_rows: Callable[[Any], list[dict[str, Any]]]
    text: Callable[[Any], str]
    draw: Callable[[Any, Any], Any] | None = None
    default_model: str | None = None
    options: tuple[TaskOption, ...] = ()
    description: str = ""
    verb: str = "processed"  # "3 of 3 images <verb>"
    uses_labels: bool = True
    sample_input: bool = False  # the CLI runs on the bundled sample photo when given no image
    trackable: bool = False  # results carry boxes that video streams can track across frames

    def bind(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Every option of the task, from ``options`` or its default, checked."""
        known = {option.name: option for option in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            takes = ", ".join(known) or "no options"
            raise UsageError(f"The {self.name} task has no option {unknown[0]!r} (it takes {takes}).",
                             reason=Reason.BAD_VALUE, option=unknown[0], task=self.name)
        return {name: option.check(options.get(name, option.default)) for name, option in known.items()}


def _discover() -> list[str]:
    """The task modules: every ``tasks/*.py`` and package but this one and private ones (a
    listing rather than pkgutil, whose import costs every CLI start a millisecond)."""
    import bredos_npu.tasks as package

    names = {entry.name.removesuffix(".py") for folder in package.__path__ for entry in os.scandir(folder)
             if entry.name.endswith(".py") or os.path.isfile(os.path.join(entry.path, "__init__.py"))}
    return sorted(name for name in names  # editors' lock files (.#detect.py) are no modules
                  if name.isidentifier() and not name.startswith("_") and name != "registry")


@cache
def _load(name: str) -> Task | None:
    task = getattr(import_module(f"bredos_npu.tasks.{name}"), "TASK", None)
    return task if isinstance(task, Task) else None


def names() -> tuple[str, ...]:
    """The name of every task, sorted (imports every module in ``tasks/``)."""
    return tuple(name for name in _discover() if _load(name) is not None)


def get(name: str) -> Task:
    """The task called ``name``; UsageError (reason UNKNOWN_TASK) when there is none."""
    task = _load(name) if name in _discover() else None
    if task is None:
        raise UsageError(f"Unknown task {name!r}", f"choose one of {', '.join(names())}",
                         Reason.UNKNOWN_TASK, task=name)
    return task


def tasks() -> list[Task]:
    return [get(name) for name in names()]


# --- helpers the task modules share ---------------------------------------------------------

def output_shapes(model: Model) -> list[OutputShape]:
    return [OutputShape(n, o.shape) for n, o in zip(model.output_names, model.outputs, strict=True)]


def guess(outputs: Sequence[OutputShape]) -> str | None:
    """The task these outputs look made for, or None."""
    return next((task.name for task in tasks() if task.fits(outputs)), None)


def wrong_task(model: Model, task: str, what: str) -> ModelError:
    """'X is not <what> (outputs ...)', naming the task that fits the model when there is one."""
    fits = guess(output_shapes(model))
    fits = fits if fits != task else None
    shapes = ", ".join("x".join(map(str, o.shape)) for o in model.outputs)
    return ModelError(f"{model.path} is not {what} (outputs {shapes})",
                      f"it looks made for the {fits} task" if fits else None, Reason.WRONG_TASK,
                      path=model.path, task=task, fits=fits)


def require_single_input(model: Model, task: str) -> None:
    if len(model.inputs) != 1:
        raise ModelError(f"{model.path} has {len(model.inputs)} inputs: {task} needs a model with "
                         "one image input.", reason=Reason.WRONG_TASK, path=model.path, task=task,
                         fits=None)
    model.check_image_input()
