"""Checking inspect's static prediction against the nodes the NPU delegate really took."""

from __future__ import annotations

from typing import NamedTuple

from bredos_npu.errors import BredosNpuError
from bredos_npu.models.inspection.analysis import Inspection
from bredos_npu.runtime.model import load


class RuntimeCheck(NamedTuple):
    """``ran`` False with ``reason`` when the NPU backend is not available here.

    predicted_only: ops predicted on the NPU that the delegate left to the CPU.
    runtime_only: ops the delegate took although the prediction said CPU.
    """

    ran: bool
    reason: str
    delegate: str | None = None
    predicted_only: tuple[int, ...] = ()
    runtime_only: tuple[int, ...] = ()

    @property
    def agrees(self) -> bool:
        return self.ran and not self.predicted_only and not self.runtime_only


def verify_on_npu(inspection: Inspection, delegate: str | None = None,
                  root: str | None = None) -> RuntimeCheck:
    """Load the model on the npu backend and compare the claimed nodes with the prediction."""
    try:
        model = load(inspection.path, "npu", delegate=delegate, root=root)
    except BredosNpuError as why:  # no NPU here, or a model no runtime can load
        return RuntimeCheck(False, str(why))
    predicted = {op.index for op in inspection.npu_ops}
    actual = set(model.backend.npu_node_indices)
    return RuntimeCheck(True, "", model.backend.delegate, tuple(sorted(predicted - actual)),
                        tuple(sorted(actual - predicted)))
