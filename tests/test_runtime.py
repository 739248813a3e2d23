"""Finding a TFLite runtime: ai-edge-litert first, then tflite-runtime, then TensorFlow."""

from __future__ import annotations

import importlib

import pytest

from bredos_npu.errors import EXIT_RUNTIME, RuntimeMissingError
from bredos_npu.runtime import litert


@pytest.fixture
def no_runtime(monkeypatch):
    real_import = importlib.import_module

    def refuse(name, *args, **kwargs):
        if name.split(".")[0] in ("ai_edge_litert", "tflite_runtime", "tensorflow"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(litert.importlib, "import_module", refuse)
    litert.find_runtime.cache_clear()
    yield
    litert.find_runtime.cache_clear()


def test_ai_edge_litert_is_preferred():
    litert.find_runtime.cache_clear()
    runtime = litert.find_runtime()
    assert runtime.name == "ai_edge_litert" and runtime.version[0].isdigit()


def test_no_runtime_names_the_pip_command(no_runtime):
    with pytest.raises(RuntimeMissingError) as error:
        litert.find_runtime()
    assert str(error.value) == ("No TensorFlow Lite runtime is installed: run `pip install "
                                "ai-edge-litert` (wheels for CPython 3.11-3.14 on aarch64).")
    assert error.value.exit_code == EXIT_RUNTIME


def test_falls_back_to_tflite_runtime(monkeypatch):
    real_import = importlib.import_module
    fake = type("FakeModule", (), {"Interpreter": object, "load_delegate": print})

    def only_tflite_runtime(name, *args, **kwargs):
        if name.startswith("ai_edge_litert"):
            raise ImportError(name)
        if name == "tflite_runtime.interpreter":
            return fake
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(litert.importlib, "import_module", only_tflite_runtime)
    litert.find_runtime.cache_clear()
    try:
        runtime = litert.find_runtime()
        assert runtime.name == "tflite_runtime" and runtime.load_delegate is print
    finally:
        litert.find_runtime.cache_clear()


def test_doctor_reports_the_missing_runtime(no_runtime):
    from bredos_npu.doctor import check_runtime

    check = check_runtime()
    assert (check.status, check.fix) == ("fail", "pip install ai-edge-litert")
