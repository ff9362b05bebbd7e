"""The serial link between the host and the motor/sensor board: one implementation, both sides.

Runs under MicroPython on the board and under CPython in `hal`, so it uses only `struct`
and builtins (no dataclasses, no typing at run time).

A frame on the wire: COBS( type u8 | seq u8 | payload | crc16 u16 little endian ) 0x00

CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF) covers type, seq and payload.
The zero byte ends every frame and appears nowhere else, so a receiver that joins mid-
stream, or loses bytes, resynchronises at the next zero. `Decoder` never raises: anything
that is not a valid frame (garbage, truncated or oversize frames, a bad CRC, an unknown
type, a payload of the wrong length) is dropped and counted.
"""

import struct

PROTOCOL_VERSION = 1
MAX_PAYLOAD = 64
MAX_ENCODED = MAX_PAYLOAD + 4 + 2 + 2  # type, seq, crc, COBS overhead

# host -> board
SET_WHEELS = 0x01  # left, right wheel speed set-points, mm/s
CONFIG = 0x02  # watchdog ms, telemetry Hz, PID kp ki kd, pin map version
PING = 0x03  # a token the board echoes in its ACK
ESTOP = 0x04  # motors off until ARM
GET_INFO = 0x05  # the board answers INFO
MAINTENANCE = 0x06  # motors off and leave the main loop (before flashing)
ARM = 0x07  # allow the motors to run again after ESTOP
SET_DUTY = 0x08  # open loop, for calibration: left, right duty x 32767 (the PID bypassed; the watchdog holds)
WHEEL_CONFIG = 0x09  # per wheel (left, right): motor sign, encoder sign, dead band duty x 65535, feed-forward
#                      duty per mm/s; then mm per encoder tick (`car calibrate motors` measures them)
# board -> host
TELEMETRY = 0x81
INFO = 0x82
ACK = 0x83  # seq and type of the acknowledged command (PING: plus its token)
NACK = 0x84  # seq, type and an error code
LOG = 0x85  # utf-8 text

# error codes in NACK
ERR_UNKNOWN_TYPE = 1
ERR_BAD_PAYLOAD = 2
ERR_ESTOPPED = 3
ERR_BAD_CONFIG = 4

# telemetry flags
FLAG_ESTOP = 0x01
FLAG_WATCHDOG = 0x02  # motors stopped: no command within the watchdog time
FLAG_LOW_BATTERY = 0x04
FLAG_OBSTACLE = 0x08  # forward motion refused: an obstacle within the stopping distance (brake.py)

LINE_SENSORS = 5
NO_RANGE = 0xFFFF

# payload layouts; LOG's is free text
LAYOUTS = {
    SET_WHEELS: "<hh",
    CONFIG: "<HBfffB",
    PING: "<I",
    ESTOP: "",
    GET_INFO: "",
    MAINTENANCE: "",
    ARM: "",
    SET_DUTY: "<hh",
    WHEEL_CONFIG: "<bbHfbbHff",
    # t ms, ticks left/right, speeds left/right mm/s, 5 line sensors 0-255, yaw mrad/s, range mm, battery mV, flags
    TELEMETRY: "<IiihhBBBBBhHHB",
    INFO: "<BBBB8s",  # firmware major/minor/patch, protocol version, board id
    ACK: "<BBI",  # seq, type, token (PING) or 0
    NACK: "<BBB",  # seq, type, error code
}

_CRC_TABLE = []
for _byte in range(256):
    _crc = _byte << 8
    for _ in range(8):
        _crc = ((_crc << 1) ^ 0x1021) if _crc & 0x8000 else (_crc << 1)
    _CRC_TABLE.append(_crc & 0xFFFF)


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of `data` (bytes-like)."""
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode `data`: the result has no zero byte (the delimiter is not added)."""
    out = bytearray(b"\x00")
    code_at = 0
    code = 1
    for byte in data:
        if byte == 0:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
        else:
            out.append(byte)
            code += 1
            if code == 0xFF:
                out[code_at] = code
                code_at = len(out)
                out.append(0)
                code = 1
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes | None:
    """Undo `cobs_encode`; None when `data` is not valid COBS."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            return None
        chunk = data[i + 1 : end]
        if 0 in chunk:
            return None
        out.extend(chunk)
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame, delimiter included, for a payload already packed."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload too long")
    body = bytes((msg_type & 0xFF, seq & 0xFF)) + bytes(payload)
    return cobs_encode(body + struct.pack("<H", crc16(body))) + b"\x00"


def pack(msg_type: int, seq: int, *fields: object) -> bytes:
    """One frame for a message whose payload layout is in LAYOUTS (LOG: one str or bytes field)."""
    if msg_type == LOG:
        text = fields[0] if fields else b""
        data = text.encode() if isinstance(text, str) else bytes(text)  # type: ignore[call-overload]
        return encode(LOG, seq, data[:MAX_PAYLOAD])
    return encode(msg_type, seq, struct.pack(LAYOUTS[msg_type], *fields))


class Decoder:
    """Turns a byte stream into messages `(type, seq, fields)`; bad input is dropped and counted.

    `fields` is the tuple unpacked with the type's layout (LOG: a 1-tuple of bytes).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._overflow = False
        self.frames = 0  # valid messages decoded
        self.crc_errors = 0
        self.framing_errors = 0  # not COBS, or too short to hold type, seq and CRC
        self.oversize = 0  # longer than MAX_ENCODED before its delimiter
        self.unknown_types = 0
        self.bad_payloads = 0  # known type, wrong payload length

    def errors(self) -> int:
        """Every frame dropped so far."""
        return self.crc_errors + self.framing_errors + self.oversize + self.unknown_types + self.bad_payloads

    def feed(self, data: bytes) -> "list[tuple[int, int, tuple[object, ...]]]":
        """Take received bytes; return the messages they complete."""
        messages = []
        for byte in data:
            if byte != 0:
                if len(self._buffer) < MAX_ENCODED:
                    self._buffer.append(byte)
                else:
                    self._overflow = True
                continue
            if self._overflow:
                self.oversize += 1
            elif self._buffer:
                message = self._frame(bytes(self._buffer))
                if message is not None:
                    messages.append(message)
            self._buffer = bytearray()
            self._overflow = False
        return messages

    def _frame(self, encoded: bytes) -> "tuple[int, int, tuple[object, ...]] | None":
        body = cobs_decode(encoded)
        if body is None or len(body) < 4:
            self.framing_errors += 1
            return None
        if crc16(body[:-2]) != struct.unpack("<H", body[-2:])[0]:
            self.crc_errors += 1
            return None
        msg_type, seq, payload = body[0], body[1], body[2:-2]
        if msg_type == LOG:
            self.frames += 1
            return (msg_type, seq, (payload,))
        layout = LAYOUTS.get(msg_type)
        if layout is None:
            self.unknown_types += 1
            return None
        if len(payload) != struct.calcsize(layout):
            self.bad_payloads += 1
            return None
        self.frames += 1
        return (msg_type, seq, struct.unpack(layout, payload))
