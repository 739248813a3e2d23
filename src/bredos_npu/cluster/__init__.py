"""Many boards, one job: bulk inference across a Ray cluster of RK3588 boards.

A thin skin over the Python API, like the CLI and the server: :func:`run_on_cluster` runs a
model's task method (``classify_many``, ``detect_many``...) on Ray actors — one per NPU core
(the custom resource ``rk3588_npu`` that ``bredos-npu cluster start`` puts on each board) or,
without NPU cores, one per CPU — and yields the same :class:`~bredos_npu.runtime.pipeline.Result`
records as a local run, in input order, each with the node that computed it.
"""

from __future__ import annotations

from typing import Any

from bredos_npu.errors import Reason, RuntimeMissingError

NPU_RESOURCE = "rk3588_npu"  # not "NPU": Ray reserves that name for another vendor's accelerator
NPU_CORES = 3  # RK3588's NPU
INSTALL_HINT = "pip install 'bredos-npu[cluster]'"


def import_ray() -> Any:
    """The ``ray`` module, or RuntimeMissingError (exit 8) naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RuntimeMissingError("Cluster runs need Ray, which is not installed", f"run `{INSTALL_HINT}`",
                                  reason=Reason.MISSING_PACKAGE, package="ray", extra="cluster") from None
    return ray
