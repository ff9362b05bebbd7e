"""Messages on the wire: one compact binary header frame, then the payload frame.

Header layout (little endian), followed by the variable parts in this order:

    version u8, kind u8, value type u8, ndim u8, hlc wall ns u64, hlc counter u32,
    source length u16, dtype length u16, metadata length u32,
    shape (ndim x u64), source (utf-8), dtype (numpy `dtype.str`), metadata (JSON)

A numpy array travels as its raw buffer and is rebuilt over the received buffer with
`np.frombuffer`, so nothing is pickled and the receiver does not copy it.
"""

from __future__ import annotations

import json
import struct
from typing import Any, NamedTuple

import numpy as np

from car.hlc import Timestamp

VERSION = 1

KIND_DATA = 0  # a value on an output (or a timer tick)
KIND_CLOSED = 1  # the source output will send nothing more
KIND_STOP = 2  # the dataflow is stopping
KIND_ERROR = 3  # the daemon reports an error to the node

VT_NONE = 0
VT_ARRAY = 1
VT_BYTES = 2
VT_STR = 3
VT_JSON = 4

_FIXED = struct.Struct("<BBBBQIHHI")


class WireError(ValueError):
    """A frame that is not a valid car message."""


class Message(NamedTuple):
    """A decoded message."""

    kind: int
    source: str
    value: Any
    metadata: dict[str, Any]
    timestamp: Timestamp


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def encode(
    kind: int,
    source: bytes,
    timestamp: Timestamp,
    value: Any = None,
    metadata: dict[str, Any] | None = None,
) -> list[Any]:
    """The frames of one message; the payload frame refers to `value`'s memory, not a copy."""
    meta = json.dumps(metadata, default=_json_default).encode() if metadata else b""
    dtype = b""
    shape: tuple[int, ...] = ()
    payload: Any = None
    if value is None:
        vtype = VT_NONE
    elif isinstance(value, np.ndarray):
        vtype = VT_ARRAY
        if not value.flags.c_contiguous:
            value = np.ascontiguousarray(value)
        if value.dtype.hasobject:
            raise TypeError("arrays of Python objects cannot be sent; use a numeric dtype or a list")
        dtype, shape = value.dtype.str.encode(), value.shape
        payload = value.data if value.ndim else value.tobytes()
    elif isinstance(value, (bytes, bytearray, memoryview)):
        vtype, payload = VT_BYTES, value
    elif isinstance(value, str):
        vtype, payload = VT_STR, value.encode()
    else:
        vtype = VT_JSON
        try:
            payload = json.dumps(value, default=_json_default).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"cannot send a {type(value).__name__}: send a numpy array, bytes, str or JSON-able value ({exc})"
            ) from None
    header = _FIXED.pack(
        VERSION, kind, vtype, len(shape), timestamp[0], timestamp[1], len(source), len(dtype), len(meta)
    )
    if shape or source or dtype or meta:
        header += struct.pack(f"<{len(shape)}Q", *shape) + source + dtype + meta
    return [header] if payload is None else [header, payload]


def route(header: bytes) -> tuple[int, str]:
    """The kind and source of a message, read without decoding its value (for queueing)."""
    if len(header) < _FIXED.size or header[0] != VERSION:
        return decode(header).kind, ""  # raises a WireError that says what is wrong
    src_len = int.from_bytes(header[16:18], "little")
    pos = _FIXED.size + 8 * header[3]
    return header[1], header[pos : pos + src_len].decode()


def decode(header: bytes, payload: Any = None) -> Message:
    """Rebuild a message from its header bytes and payload buffer (a zmq Frame, bytes, or None)."""
    try:
        version, kind, vtype, ndim, wall, count, src_len, dtype_len, meta_len = _FIXED.unpack_from(header)
    except struct.error:
        raise WireError(f"header too short ({len(header)} bytes)") from None
    if version != VERSION:
        raise WireError(f"message format version {version}, this node speaks {VERSION}: run one car version")
    pos = _FIXED.size
    shape = struct.unpack_from(f"<{ndim}Q", header, pos) if ndim else ()
    pos += 8 * ndim
    source = header[pos : pos + src_len].decode()
    pos += src_len
    dtype = header[pos : pos + dtype_len].decode()
    pos += dtype_len
    metadata = json.loads(header[pos : pos + meta_len]) if meta_len else {}
    value: Any = None
    if vtype != VT_NONE:
        if payload is None:
            raise WireError("message has no payload frame")
        buffer = getattr(payload, "buffer", payload)
        if vtype == VT_ARRAY:
            value = np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape)
            value.flags.writeable = False  # a view of the received buffer: copy to change it
        elif vtype == VT_BYTES:
            value = bytes(buffer)
        elif vtype == VT_STR:
            value = bytes(buffer).decode()
        elif vtype == VT_JSON:
            value = json.loads(bytes(buffer))
        else:
            raise WireError(f"unknown value type {vtype}")
    return Message(kind, source, value, metadata, Timestamp(wall, count))
