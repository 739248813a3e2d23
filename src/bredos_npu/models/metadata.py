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

from flatbuffers import number_types as types
from flatbuffers.table import Table

from bredos_npu.models import flatbuf

METADATA_NAME = b"TFLITE_METADATA"
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union tag


class Normalization(NamedTuple):
    """``(pixel - mean) / std`` per channel (one value applies to all channels)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


def _floats(table: Table, field: int) -> tuple[float, ...]:
    offset = table.Offset(flatbuf.slot(field))
    return tuple(float(v) for v in table.GetVectorAsNumpy(types.Float32Flags, offset)) if offset else ()


def metadata_buffer(content: bytes) -> bytes | None:
    """The raw TFLITE_METADATA flatbuffer of a .tflite file, or None."""
    model = flatbuf.root(content)
    index = flatbuf.metadata_entries(model).get(METADATA_NAME)
    if index is None:
        return None
    span = flatbuf.data_span(flatbuf.tables(model, flatbuf.MODEL_BUFFERS)[index])
    return content[span[0]:span[1]] if span else None


def _unit_normalization(unit: Table) -> Normalization | None:
    kind, value = unit.Offset(flatbuf.slot(0)), unit.Offset(flatbuf.slot(1))
    if not (kind and value) or unit.Get(types.Uint8Flags, kind + unit.Pos) != NORMALIZATION_OPTIONS:
        return None
    options = Table(unit.Bytes, unit.Indirect(value + unit.Pos))
    mean, std = _floats(options, 0), _floats(options, 1)
    return Normalization(mean, std) if mean and std and all(s != 0 for s in std) else None


def input_normalization(content: bytes) -> Normalization | None:
    """The first input's normalisation from the model's metadata, or None when it has none."""
    try:
        raw = metadata_buffer(content)
        if not raw:
            return None
        root = flatbuf.root(raw)
        units = [unit for subgraph in flatbuf.tables(root, 3)[:1]
                 for tensor in flatbuf.tables(subgraph, 2)[:1] for unit in flatbuf.tables(tensor, 4)]
        found = [n for n in map(_unit_normalization, units) if n is not None]
        return found[0] if found else None
    except (IndexError, struct.error, ValueError, TypeError):
        return None  # unreadable metadata: fall back to the defaults
