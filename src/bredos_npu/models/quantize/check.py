"""The last gate before writing: the quantized model must load, run, and pass ``inspect``."""

from __future__ import annotations

import os
from pathlib import Path

from bredos_npu.errors import ModelError
from bredos_npu.models.inspection import rules
from bredos_npu.models.inspection.analysis import Inspection, inspect_model


def loads(content: bytes) -> None:
    """Raise ModelError unless TFLite can load and run ``content`` once."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=content)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
    except (RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"The quantized model does not load in TFLite ({first}); nothing was "
                         "written.") from None


def problems(inspection: Inspection) -> list[str]:
    """Why the model is not Teflon-ready: convolutions off the NPU, or any hazard."""
    found = [f"op {op.index} {op.name}: {op.reason}" for op in inspection.ops
             if op.name in rules.CONVOLUTIONS and op.target != rules.NPU]
    found += [f"op {index}: {hazard}" for index, hazard in inspection.hazards]
    return found


def inspect_file(path: str | os.PathLike[str]) -> Inspection:
    """``bredos-npu inspect``'s analysis of a written file, raising ModelError on any problem."""
    inspection = inspect_model(Path(path))
    found = problems(inspection)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ModelError(f"The quantized model would not run cleanly on the NPU: {found[0]}{more}; "
                         "nothing was written.")
    return inspection
