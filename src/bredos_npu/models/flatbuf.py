"""Reading the few fields of a .tflite flatbuffer that loading needs, by their field slots.

The generated schema module (``schema_py_generated``, see :mod:`.inspection.graph`) costs tens of
milliseconds to import, and even the flatbuffers package a few; loading a model only needs the
buffers' extents and the metadata, so this reads the flatbuffer wire format with ``struct``
(little-endian; a table starts with the signed offset of its vtable, a vtable lists each field's
offset in the table; vectors and strings are a uint32 length then the items). Field numbers are
those of TFLite's ``schema.fbs``: Model.buffers (4), Model.metadata (6); Buffer.data/offset/size
(0/1/2); Metadata.name/buffer (0/1). Nothing is verified: a damaged file makes this raise
(struct.error, IndexError...), which the callers turn into one sentence.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

MODEL_BUFFERS, MODEL_METADATA = 4, 6
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2
METADATA_NAME_FIELD, METADATA_BUFFER_FIELD = 0, 1


def _u32(data: bytes, position: int) -> int:
    return struct.unpack_from("<I", data, position)[0]


class Table(NamedTuple):
    """A flatbuffer table: the buffer and the table's position in it."""

    data: bytes
    position: int

    def field(self, number: int) -> int | None:
        """The position of field ``number``'s value, or None when the field is absent."""
        vtable = self.position - struct.unpack_from("<i", self.data, self.position)[0]
        slot = 4 + 2 * number
        if slot >= struct.unpack_from("<H", self.data, vtable)[0]:
            return None
        offset = struct.unpack_from("<H", self.data, vtable + slot)[0]
        return self.position + offset if offset else None

    def scalar(self, number: int, kind: str, default: int | float = 0) -> int | float:
        """A scalar field (``kind`` a struct format letter: "B", "I", "Q", "f"...)."""
        at = self.field(number)
        return default if at is None else struct.unpack_from("<" + kind, self.data, at)[0]

    def vector(self, number: int) -> tuple[int, int] | None:
        """(position of the first item, item count) of a vector or string field, or None."""
        at = self.field(number)
        if at is None:
            return None
        start = at + _u32(self.data, at)
        return start + 4, _u32(self.data, start)

    def bytes_of(self, number: int) -> bytes | None:
        """A string or [ubyte] field's content, or None when absent."""
        span = self.vector(number)
        return None if span is None else bytes(self.data[span[0]:span[0] + span[1]])

    def tables(self, number: int) -> list[Table]:
        """The tables of a vector-of-tables field (empty when absent)."""
        span = self.vector(number)
        if span is None:
            return []
        items = (span[0] + 4 * i for i in range(span[1]))
        return [Table(self.data, item + _u32(self.data, item)) for item in items]

    def table(self, number: int) -> Table | None:
        """A table (or union value) field, or None when absent."""
        at = self.field(number)
        return None if at is None else Table(self.data, at + _u32(self.data, at))

    def floats(self, number: int) -> tuple[float, ...]:
        span = self.vector(number)
        return () if span is None else struct.unpack_from(f"<{span[1]}f", self.data, span[0])


def root(content: bytes) -> Table:
    """The root table of a flatbuffer."""
    return Table(content, _u32(content, 0))


def data_span(buffer: Table) -> tuple[int, int] | None:
    """(start, end) of a Buffer's inline data in the file, or None when it has none."""
    span = buffer.vector(BUFFER_DATA)
    return None if span is None else (span[0], span[0] + span[1])


def external_end(buffer: Table) -> int:
    """Where a Buffer's data stored after the flatbuffer ends (models > 2 GB), else 0."""
    offset = int(buffer.scalar(BUFFER_OFFSET, "Q"))
    return offset + int(buffer.scalar(BUFFER_SIZE, "Q")) if offset > 1 else 0


def metadata_entries(model: Table) -> dict[bytes, int]:
    """Model.metadata as name → buffer index."""
    return {entry.bytes_of(METADATA_NAME_FIELD) or b"": int(entry.scalar(METADATA_BUFFER_FIELD, "I"))
            for entry in model.tables(MODEL_METADATA)}
