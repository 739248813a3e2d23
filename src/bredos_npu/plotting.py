"""Pictures for people: PNG charts drawn with matplotlib (the optional ``plot`` extra)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bredos_npu.errors import OutputError, Reason, RuntimeMissingError
from bredos_npu.outputs import atomic_open, check_output

INSTALL_HINT = "pip install 'bredos-npu[plot]'"
NPU_COLOUR, CPU_COLOUR, HAZARD_COLOUR = "#2a9d8f", "#9aa0a6", "#e76f51"


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend, or a clear error when it is missing."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeMissingError("Plots need matplotlib, which is not installed", f"run `{INSTALL_HINT}`",
                                  Reason.MISSING_PACKAGE, package="matplotlib", extra="plot") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpg", ".jpeg": "jpg"}


def check_plot_path(path: str | os.PathLike[str], force: bool) -> Path:
    """The plot's path after the usual output checks and a check of its extension."""
    target = check_output(path, force)
    if target.suffix.lower() not in PLOT_FORMATS:
        raise OutputError(f"Cannot draw a plot as {target.name}", "use a .png, .svg, .pdf or .jpg name",
                          Reason.OUTPUT_FORMAT, path=target)
    return target


def save(figure: Any, path: str | os.PathLike[str], replace: bool = False) -> Path:
    """Write the figure in the format its extension names, atomically (see check_plot_path);
    over an existing file only with ``replace``."""
    target = Path(path)
    with atomic_open(target, "wb", replace) as out:
        figure.savefig(out, format=PLOT_FORMATS.get(target.suffix.lower(), "png"), dpi=120,
                       bbox_inches="tight")
    pyplot().close(figure)
    return target


def plot_inspection(inspection: Any, path: str | os.PathLike[str], replace: bool = False) -> Path:
    """Ops in execution order as bars (height = MACs), coloured by verdict, NPU partitions shaded."""
    plt = pyplot()
    ops = inspection.ops
    figure, axes = plt.subplots(figsize=(max(8, min(24, len(ops) * 0.12)), 4.5))
    colours = [HAZARD_COLOUR if op.hazards else NPU_COLOUR if op.target == "npu" else CPU_COLOUR
               for op in ops]
    heights = [op.macs / 1e6 for op in ops]
    axes.bar(range(len(ops)), heights, color=colours, width=0.85)
    for subset in inspection.subsets:
        if subset.delegated:
            axes.axvspan(min(subset.nodes) - 0.5, max(subset.nodes) + 0.5, color=NPU_COLOUR, alpha=0.08)
    zero_mac = [i for i, h in enumerate(heights) if h == 0]
    axes.scatter(zero_mac, [0] * len(zero_mac), marker="|", s=60,
                 c=[colours[i] for i in zero_mac], zorder=3)
    axes.set_xlabel("operator (execution order); shaded: NPU partitions")
    axes.set_ylabel("MACs (millions)")
    axes.set_title(f"{inspection.path.name}: {inspection.summary}", fontsize=10)
    axes.set_xlim(-1, len(ops))
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in (NPU_COLOUR, CPU_COLOUR, HAZARD_COLOUR)]
    axes.legend(handles, ["NPU", "CPU", "NPU with hazard"], loc="upper right", fontsize=8)
    return save(figure, path, replace)


def plot_latencies(results: list[Any], path: str | os.PathLike[str], replace: bool = False) -> Path:
    """Box plots of each measured backend's latencies, side by side (ms)."""
    plt = pyplot()
    measured = [r for r in results if r.latencies_ms]
    figure, axes = plt.subplots(figsize=(2.5 + 2 * max(1, len(results)), 4.5))
    if measured:
        parts = axes.boxplot([r.latencies_ms for r in measured], patch_artist=True, showmeans=True)
        axes.set_xticks(range(1, len(measured) + 1), [r.backend for r in measured])
        for box, run in zip(parts["boxes"], measured, strict=True):
            box.set_facecolor(NPU_COLOUR if run.backend == "npu" else CPU_COLOUR)
    missing = [r.backend for r in results if not r.latencies_ms]
    note = f" (not available: {', '.join(missing)})" if missing else ""
    axes.set_ylabel("latency per inference (ms)")
    axes.set_title(f"latency by backend{note}", fontsize=10)
    return save(figure, path, replace)
