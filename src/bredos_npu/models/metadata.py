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

from flatbuffers import encode
from flatbuffers import number_types as types
from flatbuffers.table import Table

from bredos_npu.models.inspection.graph import schema

METADATA_NAME = b"TFLITE_METADATA"
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union tag


def _slot(field: int) -> int:
    return 4 + 2 * field


class Normalization(NamedTuple):
    """``(pixel - mean) / std`` per channel (one value applies to all channels)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


def _tables(table: Table, field: int) -> list[Table]:
    offset = table.Offset(_slot(field))
    if not offset:
        return []
    start = table.Vector(offset)
    return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(table.VectorLen(offset))]


def _floats(table: Table, field: int) -> tuple[float, ...]:
    offset = table.Offset(_slot(field))
    return tuple(float(v) for v in table.GetVectorAsNumpy(types.Float32Flags, offset)) if offset else ()


def metadata_buffer(content: bytes) -> bytes | None:
    """The raw TFLITE_METADATA flatbuffer of a .tflite file, or None."""
    model = schema().Model.GetRootAs(content, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA_NAME:
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            return None if isinstance(data, int) else data.tobytes()
    return None


def _unit_normalization(unit: Table) -> Normalization | None:
    kind, value = unit.Offset(_slot(0)), unit.Offset(_slot(1))
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
        root = Table(raw, encode.Get(types.UOffsetTFlags.packer_type, raw, 0))
        units = [unit for subgraph in _tables(root, 3)[:1] for tensor in _tables(subgraph, 2)[:1]
                 for unit in _tables(tensor, 4)]
        found = [n for n in map(_unit_normalization, units) if n is not None]
        return found[0] if found else None
    except (IndexError, struct.error, ValueError, TypeError):
        return None  # unreadable metadata: fall back to the defaults
