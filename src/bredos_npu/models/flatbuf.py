"""Reading the few fields of a .tflite flatbuffer that loading needs, by their field slots.

The generated schema module (``schema_py_generated``, see :mod:`.inspection.graph`) costs tens of
milliseconds to import; loading a model only needs the buffers' extents and the metadata
entries, so they are read here with flatbuffers' own Table accessors. Field numbers are those of
TFLite's ``schema.fbs``: Model.buffers (4), Model.metadata (6); Buffer.data/offset/size (0/1/2);
Metadata.name/buffer (0/1). Nothing is verified: damaged files make these raise (IndexError,
struct.error...), which the callers turn into one sentence.
"""

from __future__ import annotations

from flatbuffers import encode
from flatbuffers import number_types as types
from flatbuffers.table import Table

MODEL_BUFFERS, MODEL_METADATA = 4, 6
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2
METADATA_NAME_FIELD, METADATA_BUFFER_FIELD = 0, 1


def slot(field: int) -> int:
    """The vtable offset of field number ``field``."""
    return 4 + 2 * field


def root(content: bytes) -> Table:
    """The root table of a flatbuffer."""
    return Table(content, encode.Get(types.UOffsetTFlags.packer_type, content, 0))


def tables(table: Table, field: int) -> list[Table]:
    """The tables of a vector-of-tables field (empty when the field is absent)."""
    offset = table.Offset(slot(field))
    if not offset:
        return []
    start = table.Vector(offset)
    return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(table.VectorLen(offset))]


def scalar(table: Table, field: int, flags: type, default: int = 0) -> int:
    offset = table.Offset(slot(field))
    return table.Get(flags, offset + table.Pos) if offset else default


def string(table: Table, field: int) -> bytes | None:
    offset = table.Offset(slot(field))
    return table.String(offset + table.Pos) if offset else None


def data_span(buffer: Table) -> tuple[int, int] | None:
    """(start, end) of a Buffer's inline data in the file, or None when it has none."""
    offset = buffer.Offset(slot(BUFFER_DATA))
    if not offset:
        return None
    start = buffer.Vector(offset)
    return start, start + buffer.VectorLen(offset)


def external_end(buffer: Table) -> int:
    """Where a Buffer's data stored after the flatbuffer ends (models > 2 GB), else 0."""
    offset = scalar(buffer, BUFFER_OFFSET, types.Uint64Flags)
    return offset + scalar(buffer, BUFFER_SIZE, types.Uint64Flags) if offset > 1 else 0


def metadata_entries(model: Table) -> dict[bytes, int]:
    """Model.metadata as name → buffer index."""
    return {string(entry, METADATA_NAME_FIELD) or b"": scalar(entry, METADATA_BUFFER_FIELD,
                                                               types.Uint32Flags)
            for entry in tables(model, MODEL_METADATA)}
