"""The board link's frame format: round trips, and bad bytes never get through or crash."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware import protocol as p


@given(st.binary(max_size=600))
def test_cobs_round_trip_and_no_zero_inside(data: bytes) -> None:
    encoded = p.cobs_encode(data)
    assert 0 not in encoded
    assert p.cobs_decode(encoded) == data


def test_crc16_ccitt_false_check_value() -> None:
    assert p.crc16(b"123456789") == 0x29B1  # the catalogue's check value for CRC-16/CCITT-FALSE


@pytest.mark.parametrize(
    ("msg_type", "fields"),
    [
        (p.SET_WHEELS, (350, -120)),
        (p.CONFIG, (250, 100, 1.5, 0.25, 0.0, 2)),
        (p.PING, (0xDEADBEEF,)),
        (p.ESTOP, ()),
        (p.GET_INFO, ()),
        (p.TELEMETRY, (123456, 1000, -20, 512, 498, 10, 20, 250, 30, 5, -35, 420, 7900, p.FLAG_WATCHDOG)),
        (p.INFO, (0, 3, 1, p.PROTOCOL_VERSION, b"pico-001")),
        (p.ACK, (7, p.PING, 0xDEADBEEF)),
        (p.NACK, (8, 0x7F, p.ERR_UNKNOWN_TYPE)),
    ],
)
def test_every_message_round_trips(msg_type: int, fields: tuple[object, ...]) -> None:
    frame = p.pack(msg_type, 42, *fields)
    assert frame.endswith(b"\x00") and 0 not in frame[:-1]
    decoder = p.Decoder()
    [(got_type, seq, got)] = decoder.feed(frame)
    assert (got_type, seq) == (msg_type, 42)
    assert got == pytest.approx(fields) if msg_type == p.CONFIG else got == fields
    assert decoder.frames == 1 and decoder.errors() == 0


def test_log_text_and_byte_by_byte_feeding() -> None:
    decoder = p.Decoder()
    stream = p.pack(p.LOG, 1, "motor driver warm") + p.pack(p.SET_WHEELS, 2, 1, 2)
    messages = [m for byte in stream for m in decoder.feed(bytes([byte]))]
    assert messages == [(p.LOG, 1, (b"motor driver warm",)), (p.SET_WHEELS, 2, (1, 2))]


def test_bad_frames_are_counted_not_raised() -> None:
    decoder = p.Decoder()
    good = p.pack(p.SET_WHEELS, 3, 100, 100)
    bad_crc = bytearray(good)
    bad_crc[3] ^= 0x10
    unknown = p.encode(0x7E, 4, b"")
    short_payload = p.encode(p.SET_WHEELS, 5, b"\x01")
    oversize = b"\x05" * (p.MAX_ENCODED + 10) + b"\x00"
    not_cobs = b"\x09\x01\x02\x00"
    stream = bytes(bad_crc) + unknown + short_payload + oversize + not_cobs + b"\x00\x00" + good
    messages = decoder.feed(stream)
    assert messages == [(p.SET_WHEELS, 3, (100, 100))]
    assert (decoder.crc_errors, decoder.unknown_types, decoder.bad_payloads, decoder.oversize) == (1, 1, 1, 1)
    assert decoder.framing_errors == 1
    with pytest.raises(ValueError):
        p.encode(p.LOG, 0, b"x" * (p.MAX_PAYLOAD + 1))


@given(st.binary(max_size=2000))
def test_garbage_never_crashes_the_decoder(data: bytes) -> None:
    decoder = p.Decoder()
    for message in decoder.feed(data):
        assert message[0] in p.LAYOUTS or message[0] == p.LOG  # only well-formed messages come out


def test_one_percent_corruption_delivers_no_corrupted_command() -> None:
    rng = random.Random(5)
    sent = [(rng.randint(-1000, 1000), rng.randint(-1000, 1000)) for _ in range(5000)]
    stream = bytearray(b"".join(p.pack(p.SET_WHEELS, k % 256, *wheels) for k, wheels in enumerate(sent)))
    for i in rng.sample(range(len(stream)), len(stream) // 100):
        stream[i] ^= rng.randint(1, 255)
    decoder = p.Decoder()
    received = decoder.feed(bytes(stream))
    by_seq: dict[int, set[tuple[int, int]]] = {}
    for k, wheels in enumerate(sent):
        by_seq.setdefault(k % 256, set()).add(wheels)
    assert all(msg_type == p.SET_WHEELS and fields in by_seq[seq] for msg_type, seq, fields in received)
    assert len(received) > 4000  # most frames survive; the rest were counted as dropped
    assert decoder.frames + decoder.errors() >= len(sent) - len(stream) // 100


def test_struct_layouts_fit_the_payload_limit() -> None:
    for layout in p.LAYOUTS.values():
        assert struct.calcsize(layout) <= p.MAX_PAYLOAD
