"""Reading the TFLite Support metadata a model may carry (the "TFLITE_METADATA" buffer).

Only what preprocessing needs: the input's normalisation (mean, std). The metadata is a
flatbuffer of tensorflow/lite/experimental/support/metadata/metadata_schema.fbs; the package has
no generated reader for it, so the few tables are read by their field slots:
ModelMetadata.subgraph_metadata (3) → SubGraphMetadata.input_tensor_metadata (2) →
TensorMetadata.process_units (4) → ProcessUnit.options_type/options (0/1) →
NormalizationOptions.mean/std (0/1).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from bredos_npu.models import flatbuf
from bredos_npu.models.flatbuf import Table

METADATA_NAME = b"TFLITE_METADATA"
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union tag


class Normalization(NamedTuple):
    """``(pixel - mean) / std`` per channel (one value applies to all channels)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


def metadata_buffer(content: bytes) -> bytes | None:
    """The raw TFLITE_METADATA flatbuffer of a .tflite file, or None."""
    model = flatbuf.root(content)
    index = flatbuf.metadata_entries(model).get(METADATA_NAME)
    if index is None:
        return None
    span = flatbuf.data_span(model.tables(flatbuf.MODEL_BUFFERS)[index])
    return content[span[0]:span[1]] if span else None


def _unit_normalization(unit: Table) -> Normalization | None:
    options = unit.table(1)
    if unit.scalar(0, "B") != NORMALIZATION_OPTIONS or options is None:
        return None
    mean, std = options.floats(0), options.floats(1)
    return Normalization(mean, std) if mean and std and all(s != 0 for s in std) else None


def input_normalization(content: bytes) -> Normalization | None:
    """The first input's normalisation from the model's metadata, or None when it has none."""
    try:
        raw = metadata_buffer(content)
        if not raw:
            return None
        root = flatbuf.root(raw)
        units = [unit for subgraph in root.tables(3)[:1] for tensor in subgraph.tables(2)[:1]
                 for unit in tensor.tables(4)]
        found = [n for n in map(_unit_normalization, units) if n is not None]
        return found[0] if found else None
    except (IndexError, struct.error, ValueError, TypeError):
        return None  # unreadable metadata: fall back to the defaults
