"""The Ray actor: one loaded interpreter on one node, running batches of images.

The model file arrives as bytes through Ray's object store, which copies it to a node once
however many actors and images use it; the actor writes it to a private temporary file and loads
it with :func:`bredos_npu.load`.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

# (index, name, source): a path every node can read (shared storage) or the file's bytes (--ship)
Item = tuple[int, str, "str | bytes"]
# (index, value, error, preprocess_ms, inference_ms)
Done = tuple[int, Any, "str | None", float, float]


class ModelWorker:
    """Holds one interpreter; :meth:`run` applies ``Model.<task>_many`` to a batch."""

    def __init__(self, model_bytes: bytes, model_name: str, labels: bytes | None, task: str,
                 options: dict[str, Any], load_options: dict[str, Any]) -> None:
        from bredos_npu.runtime.model import load

        self._folder = tempfile.TemporaryDirectory(prefix="bredos-npu-actor-")
        model_path = Path(self._folder.name) / Path(model_name).name
        model_path.write_bytes(model_bytes)
        labels_path = None
        if labels is not None:
            labels_path = Path(self._folder.name) / "labels.txt"
            labels_path.write_bytes(labels)
        self.model = load(model_path, labels=labels_path, **load_options)
        self.task = task  # any task of bredos_npu.tasks.registry
        self.options = options
        self.node = _node_name()

    def describe(self) -> dict[str, Any]:
        """Where this actor runs and on which backend."""
        return {"node": self.node, "backend": self.model.backend.name, "pid": os.getpid()}

    def run(self, batch: list[Item]) -> tuple[str, list[Done]]:
        """(this node's name, one Done per item in batch order); a broken image is an error, not a
        raise. Shipped bytes are decoded by the pipeline's decoder threads, alongside inference."""
        sources = [_source(name, source) for _, name, source in batch]
        results = self.model.run_task_many(self.task, sources, **self.options)
        return self.node, [(index, result.value, result.error, result.preprocess_ms, result.inference_ms)
                           for (index, _, _), result in zip(batch, results, strict=True)]


def _source(name: str, source: str | bytes) -> str | io.BytesIO:
    """A path as is; shipped bytes as a file object named like the input (for error messages)."""
    if isinstance(source, str):
        return source
    stream = io.BytesIO(source)
    stream.name = name
    return stream


def _node_name() -> str:
    import ray

    context = ray.get_runtime_context()
    return f"{ray.util.get_node_ip_address()}:{context.get_node_id()[:8]}"
