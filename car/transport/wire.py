"""Messages on the wire: a compact binary header, with small payloads inline.

Layout of the first frame (little endian):

    version u8, kind u8, value type u8 (| PAYLOAD_FRAME), ndim u8,
    hlc wall ns u64, hlc counter u32, source length u16, dtype length u16, metadata length u32,
    shape (ndim x u64), source (utf-8), dtype (numpy `dtype.str`, or an Arrow schema), metadata (msgpack),
    then the payload itself when it is small (at most INLINE_MAX bytes).

A larger payload follows as a second frame and arrives as a numpy array over the
received buffer: nothing is pickled, and nothing is copied on the receiving side. Between
nodes on one machine a large payload travels through shared memory instead (car.transport.shm): the
value type is flagged SHARED and the inline payload is the shared-memory descriptor.
One frame per small message keeps the Python work per message to a few microseconds.
"""

from __future__ import annotations

import datetime
import functools
import struct
from typing import Any, NamedTuple

import msgpack
import numpy as np

from car.transport import arrow
from car.transport.hlc import Timestamp

VERSION = 2

KIND_DATA = 0  # a value on an output (or a timer tick)
KIND_CLOSED = 1  # the source output will send nothing more
KIND_STOP = 2  # the dataflow is stopping
KIND_ERROR = 3  # the daemon reports an error to the node
KIND_CONTROL = 4  # the daemon changes the node's plan: the value is a car.transport.control message
KIND_DROPPED = 5  # to a subscriber: the value counts the messages dropped on the way since the last one

VT_NONE = 0
VT_ARRAY = 1
VT_BYTES = 2
VT_STR = 3
VT_PACKED = 4  # numbers, lists, dicts: msgpack
VT_ARROW = 5  # an Arrow array (car.transport.arrow): its schema in the dtype field, its IPC body the payload
PAYLOAD_FRAME = 0x80  # flag on the value type: the payload is the next frame
SHARED = 0x40  # flag on the value type: the payload is in shared memory, the inline bytes say where

INLINE_MAX = 64 * 1024

_FIXED = struct.Struct("<BBBBQIHHI")
FIXED_SIZE = _FIXED.size
_DIMS = [struct.Struct(f"<{n}Q") for n in range(65)]  # an array's shape, by its number of dimensions (numpy: <= 64)


_DTYPE_NAMES: dict[np.dtype[Any], bytes] = {}  # dtype -> its name on the wire (computing it costs more)
_DTYPES: dict[bytes, np.dtype[Any]] = {}  # and back


def _dtype(name: bytes) -> np.dtype[Any]:
    dtype = _DTYPES.get(name)
    if dtype is None:
        dtype = _DTYPES[name] = np.dtype(name.decode())
    return dtype


class WireError(ValueError):
    """A frame that is not a valid car message."""


class Message(NamedTuple):
    """A decoded message."""

    kind: int
    source: str
    value: Any
    metadata: dict[str, Any]
    timestamp: Timestamp


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, datetime.datetime):  # naive: local time, as datetime.timestamp() reads it
        return msgpack.Timestamp.from_datetime(obj if obj.tzinfo else obj.astimezone())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} cannot be sent")


_PACKER = msgpack.Packer()  # reused: building a Packer per message costs more than packing
_unpackb = msgpack.unpackb
_unpack_times = functools.partial(msgpack.unpackb, timestamp=3)  # msgpack timestamps come back as UTC datetimes


def _unpack_packed(raw: bytes) -> Any:
    """msgpack to Python; a timestamp (ext type -1, so a 0xff byte) as a UTC datetime. The slower call that
    does that runs only when the bytes hold a 0xff (a timestamp, or a -1, or 255, ...). `255 in raw` is a
    memchr; `b"\\xff" in raw` costs 0.6 µs more per message."""
    return _unpack_times(raw) if 255 in raw else _unpackb(raw)


_SOURCE_NAMES: dict[bytes, str] = {}  # source as sent -> as str, for the few sources a node hears


def _source_name(raw: bytes) -> str:
    name = raw.decode()
    if len(_SOURCE_NAMES) < 4096:
        _SOURCE_NAMES[raw] = name
    return name


def _pack(value: Any) -> bytes:
    try:  # no `default` hook here, so packing runs no Python code: safe from several threads
        packed: bytes = _PACKER.pack(value)
    except TypeError:  # numpy scalars and arrays: converted by _pack_default
        packed = msgpack.packb(value, default=_pack_default)
    return packed


def encode(
    kind: int,
    source: bytes,
    timestamp: tuple[int, int],
    value: Any = None,
    metadata: dict[str, Any] | None = None,
) -> list[Any]:
    """The frames of one message: `[frame]`, or `[header, payload]` for a large payload.

    A large payload frame refers to `value`'s memory (a memoryview), not a copy of it.
    """
    meta = _pack(metadata) if metadata else b""
    dtype = b""
    shape: tuple[int, ...] = ()
    payload: Any
    if value is None:
        vtype, payload = VT_NONE, b""
    elif isinstance(value, bytes):
        vtype, payload = VT_BYTES, value
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("arrays of Python objects cannot be sent; use a numeric dtype or a list")
        vtype, shape = VT_ARRAY, value.shape
        dtype = _DTYPE_NAMES.get(value.dtype) or _DTYPE_NAMES.setdefault(value.dtype, value.dtype.str.encode())
        if not shape:
            payload = value.tobytes()
        else:
            payload = value.data
            if not payload.c_contiguous:
                payload = np.ascontiguousarray(value).data
    elif isinstance(value, (bytearray, memoryview)):
        vtype, payload = VT_BYTES, value
    elif isinstance(value, str):
        vtype, payload = VT_STR, value.encode()
    else:
        try:
            vtype, payload = VT_PACKED, _pack(value)
        except (TypeError, ValueError, OverflowError) as exc:
            if not arrow.is_arrow(value):  # looked at only now: numbers, lists and dicts go first
                raise TypeError(
                    f"cannot send a {type(value).__name__}: send a numpy array, bytes, str, number, list, dict "
                    f"or pyarrow array ({exc})"
                ) from None
            vtype = VT_ARROW
            dtype, payload = arrow.encode(value)
    separate = (payload.nbytes if isinstance(payload, memoryview) else len(payload)) > INLINE_MAX
    fixed = _FIXED.pack(
        VERSION,
        kind,
        vtype | PAYLOAD_FRAME if separate else vtype,
        len(shape),
        timestamp[0],
        timestamp[1],
        len(source),
        len(dtype),
        len(meta),
    )
    dims = _DIMS[len(shape)].pack(*shape) if shape else b""
    if separate:
        return [b"".join((fixed, dims, source, dtype, meta)), payload]
    return [b"".join((fixed, dims, source, dtype, meta, payload))]


def shared(header: bytes, descriptor: bytes) -> bytes:
    """The one-frame form of a large array message whose payload went into shared memory."""
    return header[:2] + bytes((header[2] & ~PAYLOAD_FRAME | SHARED,)) + header[3:] + descriptor


def inline_payload(header: bytes) -> memoryview:
    """The bytes after the header fields: a small payload, or a shared-memory descriptor."""
    _, _, _, ndim, _, _, src_len, dtype_len, meta_len = _FIXED.unpack_from(header)
    return memoryview(header)[FIXED_SIZE + 8 * ndim + src_len + dtype_len + meta_len :]


def split(data: bytes) -> tuple[bytes, memoryview]:
    """A message that travelled as one datagram (car.transport.direct): its first frame and its payload frame."""
    _, _, _, ndim, _, _, src_len, dtype_len, meta_len = _FIXED.unpack_from(data)
    end = FIXED_SIZE + 8 * ndim + src_len + dtype_len + meta_len
    return data[:end], memoryview(data)[end:]


def route(header: bytes) -> tuple[int, int, bytes]:
    """The kind, value type (with its PAYLOAD_FRAME and SHARED flags) and source of a message, read
    without decoding its value (for queueing). A plain tuple: this runs once per message received."""
    if len(header) < FIXED_SIZE or header[0] != VERSION:
        decode(header)  # raises a WireError that says what is wrong
    src_len = header[16] | header[17] << 8
    pos = FIXED_SIZE + 8 * header[3]
    return header[1], header[2], header[pos : pos + src_len]


def unpack(header: bytes, payload: Any = None) -> tuple[int, str, Any, dict[str, Any], int, int]:
    """A message's kind, source, value, metadata, wall_ns and counter (decode's fields, without the wrappers)."""
    if len(header) < FIXED_SIZE:
        raise WireError(f"header too short ({len(header)} bytes)")
    version, kind, vtype, ndim, wall, count, src_len, dtype_len, meta_len = _FIXED.unpack_from(header)
    if version != VERSION:
        raise WireError(f"message format version {version}, this node speaks {VERSION}: run one car version")
    pos = FIXED_SIZE + 8 * ndim
    src_end = pos + src_len
    meta_at = src_end + dtype_len
    end = meta_at + meta_len
    if end > len(header):
        raise WireError("header shorter than the lengths it declares")
    source_bytes = header[pos:src_end]
    source = _SOURCE_NAMES.get(source_bytes) or _source_name(source_bytes)
    if meta_len:  # _unpack_packed, inline: this runs once per message
        packed = header[meta_at:end]
        metadata = _unpack_times(packed) if 255 in packed else _unpackb(packed)  # 255: see _unpack_packed
    else:
        metadata = {}
    if type(metadata) is not dict:
        raise WireError("metadata is not a mapping")
    value: Any = None
    if vtype == VT_BYTES:  # the common cases first: small values inline
        value = header[end:]
    elif vtype == VT_PACKED:  # _unpack_packed, inline
        raw = header[end:]
        value = _unpack_times(raw) if 255 in raw else _unpackb(raw)
    elif vtype == VT_STR:
        value = header[end:].decode()
    elif vtype & ~(PAYLOAD_FRAME | SHARED) == VT_ARRAY:
        if vtype & (PAYLOAD_FRAME | SHARED):
            if payload is None:
                raise WireError(
                    "message has no payload frame" if vtype & PAYLOAD_FRAME else "shared payload not mapped"
                )
            buffer = getattr(payload, "buffer", payload)
        else:
            buffer = memoryview(header)[end:]
        shape = _DIMS[ndim].unpack_from(header, FIXED_SIZE) if ndim else ()
        value = np.ndarray(shape, _dtype(header[src_end:meta_at]), buffer)  # one call: 3x faster than frombuffer
        if not getattr(buffer, "readonly", True):
            value.flags.writeable = False  # a view of the received buffer: copy to change it
    elif vtype & ~(PAYLOAD_FRAME | SHARED) == VT_ARROW:
        if vtype & (PAYLOAD_FRAME | SHARED):
            if payload is None:
                raise WireError("message has no payload frame")
            body = getattr(payload, "buffer", payload)
        else:
            body = header[end:]  # a copy, 8-byte aligned as Arrow's buffers want
        try:
            value = arrow.decode(header[src_end:meta_at], body)
        except arrow.ArrowError as exc:
            raise WireError(str(exc)) from None
    elif vtype & (PAYLOAD_FRAME | SHARED) and vtype & ~(PAYLOAD_FRAME | SHARED) in (VT_BYTES, VT_STR, VT_PACKED):
        if payload is None:
            raise WireError("message has no payload frame")
        raw = bytes(getattr(payload, "buffer", payload))  # a copy: the value must not change under the node
        vtype &= ~(PAYLOAD_FRAME | SHARED)
        value = raw if vtype == VT_BYTES else raw.decode() if vtype == VT_STR else _unpack_packed(raw)
    elif vtype != VT_NONE:
        raise WireError(f"unknown value type {vtype}")
    return kind, source, value, metadata, wall, count


def decode(header: bytes, payload: Any = None) -> Message:
    """Rebuild a message from its first frame and, if it has one, its payload frame."""
    kind, source, value, metadata, wall, count = unpack(header, payload)
    return Message(kind, source, value, metadata, Timestamp(wall, count))
