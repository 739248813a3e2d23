"""The public API's surface: what it imports, what it exports, and what its docstrings promise."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
import textwrap
import typing
from collections.abc import Iterator
from enum import Enum

import numpy as np
import pytest
from conftest import DEFAULT_MODEL, IMAGES, MODELS
from PIL import Image

import bredos_npu
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


# --- the exports -----------------------------------------------------------------------------

def exported() -> dict[str, object]:
    import bredos_npu

    return {name: getattr(bredos_npu, name) for name in bredos_npu.__all__ if name != "__version__"}


def own_docstring(obj: object) -> str:
    """The object's docstring, without the ones Python writes for NamedTuples and dataclasses."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    name = getattr(obj, "__name__", "")
    return "" if doc.startswith(f"{name}(") else doc


def public_members(cls: type) -> dict[str, object]:
    """Methods and properties defined by the class itself (fields are described by its docstring)."""
    return {name: value.fget if isinstance(value, property) else value
            for name, value in vars(cls).items()
            if not name.startswith("_") and (isinstance(value, property) or inspect.isfunction(value))}


def test_every_export_and_its_methods_say_what_they_are():
    missing = [name for name, obj in exported().items() if not own_docstring(obj)]
    for name, obj in exported().items():
        if inspect.isclass(obj) and not issubclass(obj, Enum):
            missing += [f"{name}.{member}" for member, value in public_members(obj).items()
                        if not own_docstring(value)]
    assert len(exported()) > 30 and not missing, f"no docstring: {missing}"


def annotated_classes(hint: object) -> Iterator[type]:
    if inspect.isclass(hint):
        yield hint
    for argument in typing.get_args(hint):
        yield from annotated_classes(argument)


def test_every_type_the_api_returns_is_exported():
    """Follow the annotations of every export (signatures, fields, methods, properties): each
    bredos_npu class a caller can receive must be importable from ``bredos_npu`` itself."""
    exports = exported()
    seen: set[object] = set()
    todo = list(exports.values())
    while todo:
        obj = todo.pop()
        if obj in seen:
            continue
        seen.add(obj)
        members = [obj, *public_members(obj).values()] if inspect.isclass(obj) else [obj]
        for member in members:
            # Names imported for annotations only (TYPE_CHECKING) are the exported ones.
            for hint in typing.get_type_hints(member, localns=exports).values():
                todo += [c for c in annotated_classes(hint) if c.__module__.startswith("bredos_npu")]
    reached = {c for c in seen if inspect.isclass(c)}
    assert {exports["BBox"], exports["NodeSummary"], exports["TensorInfo"]} <= reached
    missing = sorted(f"{c.__module__}.{c.__name__}" for c in reached - set(exports.values()))
    assert not missing, f"returned by the API but not exported from bredos_npu: {missing}"


def test_importing_the_package_stays_light():
    done = run_python("""
        import sys
        import bredos_npu
        names = dir(bredos_npu)
        assert "Detection" in names and "load" in names, names
        print(sorted(m for m in ("numpy", "PIL", "click", "bredos_npu.runtime.model") if m in sys.modules))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- the conventions the docstrings state, on real results -----------------------------------

def reference_outputs(model_path, tensor):
    """The model's float outputs from the runtime's own Interpreter with its defaults (XNNPACK on
    the CPU, as a bare script runs it), for an input tensor made by the Model."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor[None])
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"])[0] for d in interpreter.get_output_details()]


def test_boxes_are_pixels_of_the_original_image_x_right_y_down():
    """BBox: (xmin, ymin, xmax, ymax) in pixels of the original 1200x600 photo, scores 0..1; the
    reference scales the interpreter's (ymin, xmin, ymax, xmax) fractions by the size PIL reads."""
    image = IMAGES / "cats_and_dogs.jpg"
    width, height = Image.open(image).size
    model = bredos_npu.load(SSD, "cpu")
    found = model.detect(image, threshold=0.5)
    boxes, classes, scores, _count = reference_outputs(SSD, model.prepare(image).tensor)
    kept = scores >= 0.5
    expected = [(int(c), float(s), *(np.clip(b, 0, 1) * (width, height, width, height)[::-1]))
                for b, c, s in zip(boxes[kept], classes[kept], scores[kept], strict=True)]
    assert len(found) == len(expected) >= 2 and (width, height) == (1200, 600)
    for detection, (class_id, score, ymin, xmin, ymax, xmax) in zip(found, expected, strict=True):
        assert (detection.id, detection.score) == (class_id, pytest.approx(score))
        assert detection.bbox == pytest.approx((xmin, ymin, xmax, ymax), abs=1e-3)
        assert 0 <= detection.bbox.xmin < detection.bbox.xmax <= width
        assert 0 <= detection.bbox.ymin < detection.bbox.ymax <= height
        assert 0.5 <= detection.score <= 1


def test_keypoints_and_segmentation_maps_are_in_the_original_image_frame():
    movenet = MODELS / "movenet_single_pose_lightning_ptq.tflite"
    image = IMAGES / "squat.bmp"
    width, height = Image.open(image).size
    model = bredos_npu.load(movenet, "cpu")
    points = model.pose(image)
    (rows,) = reference_outputs(movenet, model.prepare(image).tensor)
    expected = [v for y, x, score in rows.reshape(-1, 3) for v in (x * width, y * height, score)]
    assert [v for p in points for v in (p.x, p.y, p.score)] == pytest.approx(expected, abs=1e-3)
    assert all(0 <= p.score <= 1 for p in points) and (width, height) == (500, 610)
    bird = IMAGES / "bird_segmentation.bmp"
    segmentation = bredos_npu.load(MODELS / "deeplabv3_mnv2_dm05_pascal_quant.tflite", "cpu").segment(bird)
    bird_width, bird_height = Image.open(bird).size
    assert segmentation.classes.shape == (bird_height, bird_width)  # rows are y, columns x
    assert sum(share.share for share in segmentation.shares) == pytest.approx(1.0)
