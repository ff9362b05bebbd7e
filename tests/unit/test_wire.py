"""The message format: every value kind round-trips; garbage is rejected, never crashes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from car.transport import wire
from car.transport.hlc import HybridLogicalClock, Timestamp

STAMP = Timestamp(1_700_000_000_000_000_000, 3)


def roundtrip(value: object, metadata: dict[str, object] | None = None) -> wire.Message:
    frames = wire.encode(wire.KIND_DATA, b"camera/image", STAMP, value, metadata)
    return wire.decode(bytes(frames[0]), bytes(frames[1]) if len(frames) > 1 else None)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32", "float64", ">i4", "bool"])
def test_arrays_keep_dtype_shape_and_content(dtype: str) -> None:
    array = (np.arange(2 * 3 * 4) % 2 if dtype == "bool" else np.arange(2 * 3 * 4)).astype(dtype).reshape(2, 3, 4)
    msg = roundtrip(array)
    assert msg.value.dtype == array.dtype and msg.value.shape == (2, 3, 4)
    np.testing.assert_array_equal(msg.value, array)
    assert not msg.value.flags.writeable


def test_non_contiguous_and_zero_dimensional_arrays() -> None:
    array = np.arange(100, dtype=np.float32).reshape(10, 10)[:, ::3]
    np.testing.assert_array_equal(roundtrip(array).value, array)
    assert roundtrip(np.float64(2.5)).value == 2.5  # a numpy scalar travels as JSON
    assert roundtrip(np.array(7, dtype=np.int32)).value == 7


def test_bytes_str_json_and_none() -> None:
    assert roundtrip(b"\x00\xff").value == b"\x00\xff"
    assert roundtrip(bytearray(b"ab")).value == b"ab"
    assert roundtrip("héllo").value == "héllo"
    assert roundtrip({"offset": 0.01, "ok": True, "n": [1, 2]}).value == {"offset": 0.01, "ok": True, "n": [1, 2]}
    assert roundtrip(None).value is None
    assert roundtrip(3).value == 3


def test_header_carries_source_timestamp_and_metadata() -> None:
    msg = roundtrip(b"x", {"t_send": 123, "frame": "a"})
    assert msg.source == "camera/image"
    assert msg.timestamp == STAMP
    assert msg.metadata == {"t_send": 123, "frame": "a"}
    assert wire.route(bytes(wire.encode(wire.KIND_CLOSED, b"a/b", STAMP)[0])) == (
        wire.KIND_CLOSED,
        wire.VT_NONE,
        b"a/b",
    )


def test_unsendable_values_say_what_to_send() -> None:
    with pytest.raises(TypeError, match="send a numpy array, bytes, str, number, list, dict or pyarrow array"):
        wire.encode(wire.KIND_DATA, b"a/b", STAMP, object())
    with pytest.raises(TypeError, match="arrays of Python objects"):
        wire.encode(wire.KIND_DATA, b"a/b", STAMP, np.array([object()]))


def test_other_versions_are_refused() -> None:
    header = bytearray(wire.encode(wire.KIND_DATA, b"a/b", STAMP, None)[0])
    header[0] = 99
    with pytest.raises(wire.WireError, match="version 99"):
        wire.decode(bytes(header))


@given(st.binary(max_size=200), st.one_of(st.none(), st.binary(max_size=64)))
def test_garbage_is_rejected_cleanly(header: bytes, payload: bytes | None) -> None:
    try:
        wire.route(header)
        wire.decode(header, payload)
    except (wire.WireError, ValueError, TypeError):
        pass  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors


@given(st.data())
def test_damaged_arrow_messages_are_rejected_cleanly(data: st.DataObject) -> None:
    pa = pytest.importorskip("pyarrow")
    value = pa.array([{"a": 1, "b": ["x", None]}, None], pa.struct([("a", pa.int32()), ("b", pa.list_(pa.string()))]))
    (frame,) = wire.encode(wire.KIND_DATA, b"a/b", STAMP, value)
    damaged = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        damaged[data.draw(st.integers(wire.FIXED_SIZE, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(wire.FIXED_SIZE, len(damaged)))
    try:
        decoded = wire.decode(bytes(damaged[:cut])).value
    except (wire.WireError, ValueError, TypeError):  # as the inbox takes them: a damaged source name is a ValueError
        return
    decoded.to_pylist()  # what is read is a valid array, or it was refused


def test_hybrid_logical_clock_never_runs_backwards() -> None:
    clock = HybridLogicalClock()
    stamps = [clock.now() for _ in range(1000)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    future = Timestamp(stamps[-1].wall_ns + 10**12, 5)
    clock.observe(*future)
    after = clock.now()
    assert after > future
