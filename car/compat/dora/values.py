"""Values and metadata between car and dora's Python API: Arrow arrays, kept exactly.

A dora node receives every value as a pyarrow array and sends pyarrow arrays (or bytes).
Arrays travel as Arrow (car.transport.arrow), so their type arrives unchanged; a
numeric array without nulls travels as a numpy array instead, which costs less and
reaches readers on this machine through shared memory without a copy, and is the same
Arrow array again on arrival. Values car's own nodes send become the pyarrow array dora
would give: bytes a UInt8Array, a numpy array its flattened array, a scalar or string a
one-element array, a list `pa.array(list)`, nothing an empty null array.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa

from car.transport.hlc import Timestamp

_NUMPY_EXACT = {  # Arrow types that are exactly a numpy dtype, both ways
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint16(),
    pa.uint32(),
    pa.uint64(),
    pa.float16(),
    pa.float32(),
    pa.float64(),
}


def to_send(data: Any) -> Any:
    """What car sends for `data` handed to a dora node's `send_output`."""
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks()
    if isinstance(data, pa.Array) and data.type in _NUMPY_EXACT and data.null_count == 0:
        return data.to_numpy(zero_copy_only=True)  # a view of the array's buffer
    return data


def received(value: Any) -> pa.Array:
    """The pyarrow array a dora node gets for a value car delivered."""
    if isinstance(value, pa.Array):
        return value
    if isinstance(value, np.ndarray):
        return pa.array(value.reshape(-1))  # numeric arrays: a view, not a copy
    if value is None:
        return pa.array([], type=pa.null())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return pa.array(np.frombuffer(value, np.uint8))
    if isinstance(value, list):
        return pa.array(value)
    return pa.array([value])


def handed_over(data: Any) -> pa.Array:
    """The pyarrow array a reader in the same process gets for `data` sent (car.operators): the same array
    when it is one, a view of bytes or of a numpy array, never a copy."""
    if isinstance(data, pa.Array):
        return data
    if isinstance(data, pa.ChunkedArray):
        return data.combine_chunks()
    return received(data)


def timestamp_of(stamp: Timestamp | None) -> dt.datetime:
    """A message's hybrid-logical-clock time as dora gives it: a UTC datetime (microseconds)."""
    wall_ns = stamp.wall_ns if stamp is not None else 0
    return _EPOCH + dt.timedelta(microseconds=wall_ns // 1000)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
