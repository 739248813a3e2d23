"""Finding a TensorFlow Lite runtime: ai-edge-litert, then tflite-runtime, then TensorFlow."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any, NamedTuple

from bredos_npu.errors import Reason, RuntimeMissingError

INSTALL_HINT = "pip install ai-edge-litert"

# (module holding Interpreter/load_delegate, distribution names to read the version from)
CANDIDATES = (
    ("ai_edge_litert.interpreter", ("ai-edge-litert", "ai-edge-litert-nightly")),
    ("tflite_runtime.interpreter", ("tflite-runtime",)),
    ("tensorflow.lite", ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64")),
)


class Runtime(NamedTuple):
    """The runtime in use: its module name, the two entry points we need, and its version."""

    name: str
    distributions: tuple[str, ...]
    interpreter_class: Any
    load_delegate: Any

    @property
    def version(self) -> str:
        """The installed distribution's version ("unknown" when none is found).

        Read on demand: importlib.metadata costs tens of milliseconds at start-up.
        """
        return _version(self.distributions)


@cache
def _version(distributions: tuple[str, ...]) -> str:
    import importlib.metadata

    for dist in distributions:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _import(module_name: str) -> Any | None:
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


@cache
def find_runtime() -> Runtime:
    """The first TFLite runtime that imports; raises RuntimeMissingError when none does."""
    for module_name, distributions in CANDIDATES:
        module = _import(module_name)
        if module is None:
            continue
        load_delegate = getattr(module, "load_delegate", None) or module.experimental.load_delegate
        return Runtime(module_name.split(".")[0], distributions, module.Interpreter, load_delegate)
    raise RuntimeMissingError(
        "No TensorFlow Lite runtime is installed",
        f"run `{INSTALL_HINT}` (wheels for CPython 3.11-3.14 on aarch64)", Reason.MISSING_PACKAGE,
        package="ai-edge-litert")


def describe_runtime() -> Runtime | None:
    """Like find_runtime, but None instead of raising (for the doctor)."""
    try:
        return find_runtime()
    except RuntimeMissingError:
        return None
