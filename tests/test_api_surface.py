"""The public API's surface: what it imports, what it exports, and what its docstrings promise."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import pytest
from conftest import DEFAULT_MODEL, MODELS

from bredos_npu.errors import ModelError, Reason
from bredos_npu.models.inspection.analysis import inspect_model

SSD = MODELS / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
DEADLINE_S = 60

# Run in a fresh interpreter; BLOCKED (a tuple of top-level package names) cannot be imported there.
BLOCKER = """
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, Blocked())
"""


def run_python(code: str, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    script = f"BLOCKED = {blocked!r}\n{BLOCKER}\n{textwrap.dedent(code)}"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=DEADLINE_S)


def test_inspection_never_imports_the_zoo_or_the_downloader():
    done = run_python("""
        import sys
        from bredos_npu.errors import ModelError, Reason
        from bredos_npu.models.inspection.analysis import inspect_model
        try:
            inspect_model("ssd-mobilenet-v2")  # a zoo name is not a file: no lookup, no download
        except ModelError as error:
            assert error.reason is Reason.MODEL_NOT_FOUND, error.reason
        else:
            raise AssertionError("a zoo name was inspected")
        print(sorted(m for m in sys.modules if m.startswith("bredos_npu.models.")))
    """)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout
    assert "bredos_npu.models.inspection.analysis" in loaded  # the probe looks at the right names
    assert "bredos_npu.models.zoo" not in loaded and "bredos_npu.models.download" not in loaded


@pytest.mark.parametrize("model", [DEFAULT_MODEL, SSD], ids=["mobilenet", "ssd"])
def test_inspecting_bytes_equals_inspecting_the_file(model):
    by_path = inspect_model(model)
    by_bytes = inspect_model(model.read_bytes())
    assert by_bytes.path is None and by_path.path == model
    assert dataclasses.replace(by_path, path=None) == by_bytes
    assert by_bytes.ops and by_bytes.summary == by_path.summary


def test_inspecting_bytes_that_are_not_a_model_names_the_bytes():
    with pytest.raises(ModelError) as error:
        inspect_model(b"\0" * 64)
    assert error.value.reason is Reason.NOT_TFLITE
    assert str(error.value).startswith("the model bytes is not a TensorFlow Lite model")


INSPECT_AS_JSON = """
    import json
    from bredos_npu.cli.render import inspection_dict
    from bredos_npu.models.inspection.graph import schema
    from bredos_npu.models.inspection.analysis import inspect_model
    print(json.dumps({"schema": schema().__name__,
                      "reports": [inspection_dict(inspect_model(p)) for p in PATHS]}))
"""


def test_reading_models_works_without_ai_edge_litert_or_tensorflow():
    """Static inspection (and every check that reads the flatbuffer) takes its schema from the
    pure-Python ``tflite`` package when no runtime ships one, as with tflite-runtime alone."""
    code = f"PATHS = {[str(DEFAULT_MODEL), str(SSD)]!r}\n{textwrap.dedent(INSPECT_AS_JSON)}"
    with_litert = run_python(code)
    without = run_python(code, blocked=("ai_edge_litert", "tensorflow"))
    assert with_litert.returncode == 0 and without.returncode == 0, without.stderr
    reference, fallback = json.loads(with_litert.stdout), json.loads(without.stdout)
    assert (reference["schema"], fallback["schema"]) == ("ai_edge_litert.schema_py_generated", "tflite")
    assert fallback["reports"] == reference["reports"]


def test_without_any_runtime_only_running_needs_one():
    """Reading the model succeeds without ai-edge-litert; loading it stops at the runtime (exit 8)."""
    done = run_python(f"""
        import bredos_npu
        from bredos_npu.errors import RuntimeMissingError
        print(bredos_npu.inspect({str(SSD)!r}).summary)
        try:
            bredos_npu.load({str(DEFAULT_MODEL)!r}, "cpu")
        except RuntimeMissingError as error:
            print(error.exit_code, error.data["package"], error)
    """, blocked=("ai_edge_litert", "tensorflow", "tflite_runtime"))
    assert done.returncode == 0, done.stderr
    summary, missing = done.stdout.splitlines()
    assert summary == inspect_model(SSD).summary
    assert missing.startswith("8 ai-edge-litert No TensorFlow Lite runtime is installed")
