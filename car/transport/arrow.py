"""Arrow arrays on the wire, kept exactly: the array's own type and buffers, never a conversion.

An array travels as one Arrow IPC record-batch message (its buffers, 8-byte aligned) with
its schema beside it in the message header (both ends cache one per type); an array whose
type holds dictionaries travels as a whole IPC stream instead, its dictionaries included.
The array received is a view of the received buffer (or of the sender's shared-memory
slot): its buffers are not copied. It is validated in full before it is handed out, so a
damaged message is refused (ArrowError) instead of crashing the reader later (this costs
about 2 µs for a 100-element struct, more for large string arrays: UTF-8 is checked).
pyarrow is imported on first use, so a node that never sees Arrow data never loads it.
"""

from __future__ import annotations

from typing import Any

CACHED_TYPES = 256  # schemas kept per process, each way

_schema_of: dict[Any, bytes] = {}  # Arrow type -> its serialized one-column schema
_schema_from: dict[bytes, Any] = {}  # and back


class ArrowError(ValueError):
    """Arrow data that cannot travel or cannot be read."""


def is_arrow(value: Any) -> bool:
    """Whether `value` is a pyarrow Array or ChunkedArray (without importing pyarrow)."""
    return type(value).__module__ == "pyarrow.lib" and type(value).__name__.endswith("Array")


def encode(value: Any) -> tuple[bytes, memoryview]:
    """The schema to put in the header ("" for a whole IPC stream) and the body of an Arrow array."""
    import pyarrow as pa

    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if not isinstance(value, pa.Array):
        raise ArrowError(f"a {type(value).__name__} is not an Arrow array")
    schema = pa.schema([pa.field("value", value.type)])
    batch = pa.RecordBatch.from_arrays([value], schema=schema)
    if _has_dictionary(value.type):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, schema) as writer:
            writer.write_batch(batch)
        return b"", memoryview(sink.getvalue())
    serialized = _schema_of.get(value.type)
    if serialized is None:
        serialized = schema.serialize().to_pybytes()
        if len(serialized) > 0xFFFF:
            raise ArrowError(f"the Arrow type {value.type} is too large to describe in a message header")
        if len(_schema_of) < CACHED_TYPES:
            _schema_of[value.type] = serialized
    return serialized, memoryview(batch.serialize())


def decode(schema: bytes, body: Any) -> Any:
    """The Arrow array a message carries, over `body` (any object with the buffer protocol)."""
    import pyarrow as pa

    try:
        buffer = pa.py_buffer(body)
        if not schema:
            array = pa.ipc.open_stream(buffer).read_next_batch().column(0)
        else:
            parsed = _schema_from.get(schema)
            if parsed is None:
                parsed = pa.ipc.read_schema(pa.py_buffer(schema))
                if len(_schema_from) < CACHED_TYPES:
                    _schema_from[bytes(schema)] = parsed
            array = pa.ipc.read_record_batch(buffer, parsed).column(0)
        array.validate(full=True)
    except (pa.ArrowException, EOFError, StopIteration, IndexError, ValueError, OSError, MemoryError) as exc:
        raise ArrowError(f"unreadable Arrow data: {exc}") from None
    return array


def _has_dictionary(arrow_type: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        return True
    return any(_has_dictionary(arrow_type.field(i).type) for i in range(arrow_type.num_fields))
