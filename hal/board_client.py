"""The host's client for the motor/sensor board, over pyserial.

    board = BoardClient("/dev/ttyACM0")      # or a pty path, or any serial_for_url URL
    board.open()                             # handshake: GET_INFO, protocol version checked
    board.set_wheel_speeds(0.3, 0.3)         # m/s (hal.interfaces.Wheels)
    reading = board.read()                   # latest telemetry (hal.interfaces.Sensors)
    board.close()

A reader thread turns the byte stream into telemetry; `stats()` counts frames, CRC and
other errors, frames lost on the way (by the board's sequence numbers), reconnections and the last ping round
trip.

A board that goes away (unplugged, reset, silent for SILENT_S) is *lost*, not an error:
`lost_for()` says for how long, commands meanwhile are dropped (its watchdog has stopped
the motors), and the reader reopens the same path (give a stable one, such as
`/dev/serial/by-id/...`, so a board that comes back under another ttyACM number is found)
and handshakes again until the board answers. Only after `give_up_s` lost does a command
or `read()` raise `BoardGone`.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import serial

from firmware import protocol
from hal.description import WheelParams
from hal.interfaces import SensorReading
from hal.serial_port import open_port, read_some

BAUD = 115200
SILENT_S = 0.5  # no frame for this long: the board is gone
HANDSHAKE_S = 2.0
HANDSHAKE_TRIES = 4
REOPEN_S = 0.5
GIVE_UP_S = 10.0  # lost this long: BoardGone


class BoardError(Exception):
    """The board could not be reached or is not one this host can drive; the message says what to do."""


class BoardGone(BoardError):
    """The board was lost for longer than the client waits for it."""


@dataclass(frozen=True)
class BoardInfo:
    """What the board says of itself in the handshake (INFO)."""

    firmware: str  # MAJOR.MINOR.PATCH
    protocol: int
    board_id: str


@dataclass(frozen=True, kw_only=True)
class LinkStats:
    """How the serial link has done so far."""

    telemetry: int  # telemetry frames received
    frames: int  # frames decoded
    crc_errors: int
    framing_errors: int
    dropped: int  # bytes or frames the decoder threw away
    lost_frames: int  # sequence gaps in telemetry
    rtt_ms: float | None  # the last PING's round trip
    connected: bool
    reconnects: int


class BoardClient:
    """`hal.interfaces.Wheels` and `Sensors` over the serial link."""

    def __init__(self, url: str, baud: int = BAUD, give_up_s: float = GIVE_UP_S):
        self.url = url
        self.baud = baud
        self.give_up_s = give_up_s
        self.info = BoardInfo("", 0, "")
        self.connected = False
        self.lost_reason = ""
        self.reconnects = 0
        self._lost_since: float | None = None
        self._refused = ""  # a board that came back speaking another protocol
        self._in_maintenance = False  # MAINTENANCE sent: the firmware has left, the REPL has the port
        self._port: Any = None
        self._decoder = protocol.Decoder()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._seq = 0
        self._reading: SensorReading | None = None
        self._last_frame = 0.0
        self._last_seq: int | None = None  # of the board's last frame, whatever its type
        self._lost_frames = 0
        self._telemetry = 0
        self._pings: dict[int, float] = {}  # token -> when sent
        self._ping_token = 0
        self._pong = threading.Event()  # an ACK to a PING came
        self._replies: dict[int, tuple[int, int]] = {}  # seq of a command -> (ACK or NACK, its code)
        self._replied = threading.Condition()
        self._rtt: float | None = None
        self._info_event = threading.Event()
        self._running = False
        self._thread: threading.Thread | None = None
        self.log: list[str] = []
        self.flags = 0  # the flags of the latest telemetry (protocol.FLAG_*)

    # -- life cycle -----------------------------------------------------------------
    def open(self) -> BoardInfo:
        """Open the port, check the board's protocol version, start the reader; returns INFO."""
        self._open_port()
        self._running = True
        self._thread = threading.Thread(target=self._read_loop, name="board-reader", daemon=True)
        self._thread.start()
        for _ in range(HANDSHAKE_TRIES):  # a request can be lost on a noisy line: ask again
            if self._info_event.wait(HANDSHAKE_S / HANDSHAKE_TRIES):
                break
            self._send(protocol.GET_INFO)
        if not self._info_event.is_set():
            self.close()
            raise BoardError(
                f"{self.url}: no answer to GET_INFO within {HANDSHAKE_S:g} s; is the car firmware on the board? "
                "(flash it with `car flash`)"
            )
        if self.info.protocol != protocol.PROTOCOL_VERSION:
            version = self.info.protocol
            self.close()
            raise BoardError(
                f"{self.url}: the board speaks protocol {version}, this host {protocol.PROTOCOL_VERSION}: "
                "flash matching firmware with `car flash`"
            )
        return self.info

    def _open_port(self) -> None:
        try:
            self._port = open_port(self.url, baudrate=self.baud, timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise BoardError(f"cannot open {self.url}: {exc}") from None
        self._decoder = protocol.Decoder()
        self._last_seq = None  # a board reopened (perhaps restarted) numbers afresh
        self._info_event.clear()
        try:  # a zero ends whatever partial frame the board holds (say, bytes a REPL tool left)
            self._port.write(b"\x00")
        except (serial.SerialException, OSError) as exc:
            raise BoardError(f"{self.url}: write failed: {exc}") from None
        self._send(protocol.GET_INFO)

    def close(self) -> None:
        """Stop the wheels, stop the reader, release the port (so `car flash` can use it)."""
        if self._port is not None and self.connected and not self._in_maintenance:
            try:
                self.stop()
            except BoardError:
                pass
        self._running = False
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        if self._port is not None:
            self._port.close()
            self._port = None
        self.connected = False

    def __enter__(self) -> BoardClient:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ----------------------------------------------------------------------
    def _send(self, msg_type: int, *fields: Any) -> int:
        """Send a command; while the board is lost it is dropped (BoardGone once given up)."""
        self._check_not_gone()
        with self._write_lock:
            self._seq = (self._seq + 1) & 0xFF
            frame = protocol.pack(msg_type, self._seq, *fields)
            port = self._port
            if port is None:
                return self._seq  # lost: the reader is reopening the port
            try:
                port.write(frame)
            except (serial.SerialException, OSError) as exc:
                self._mark_lost(f"write failed: {exc}")
            return self._seq

    def lost_for(self) -> float | None:
        """Seconds since the board was lost, None while it is connected."""
        since = self._lost_since
        return None if since is None else time.monotonic() - since

    def _mark_lost(self, reason: str) -> None:
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            self.lost_reason = reason
        self.connected = False

    def _check_not_gone(self) -> None:
        if self._refused:
            raise BoardGone(self._refused)
        lost = self.lost_for()
        if lost is not None and lost > self.give_up_s:
            raise BoardGone(
                f"{self.url}: the board has been gone for {self.give_up_s:g} s ({self.lost_reason}); "
                "check its USB cable and power, then start again"
            )

    def set_wheel_speeds(self, left: float, right: float) -> None:
        """Wheel speed set-points in m/s (sent as mm/s; the board clamps to its limits)."""
        self._send(protocol.SET_WHEELS, _mm(left), _mm(right))

    def stop(self) -> None:
        """Both wheels to zero."""
        self._send(protocol.SET_WHEELS, 0, 0)

    def estop(self) -> None:
        """Motors off until `arm`."""
        self._send(protocol.ESTOP)

    def arm(self) -> None:
        """Allow the motors to run after `estop`."""
        self._send(protocol.ARM)

    def set_duty(self, left: float, right: float) -> None:
        """Open-loop duties in [-1, 1] (for calibration): the PID, signs and dead band are bypassed."""
        self._send(protocol.SET_DUTY, _duty(left), _duty(right))

    def configure_wheels(self, wheels: WheelParams, ticks_per_metre: float) -> None:
        """Tell the board each wheel's signs, dead band and feed-forward, and the distance per tick;
        BoardError if it refuses (a firmware from before WHEEL_CONFIG: flash it)."""
        self.request(
            protocol.WHEEL_CONFIG,
            wheels.left_motor,
            wheels.left_encoder,
            round(min(1.0, max(0.0, wheels.left_dead_band)) * 65535),
            wheels.left_duty_per_mps / 1000,
            wheels.right_motor,
            wheels.right_encoder,
            round(min(1.0, max(0.0, wheels.right_dead_band)) * 65535),
            wheels.right_duty_per_mps / 1000,
            1000 / ticks_per_metre,
        )

    def request(self, msg_type: int, *fields: Any, timeout: float = 1.0) -> None:
        """Send a command and wait for its ACK; BoardError for a NACK (named) or no answer."""
        seq = self._send(msg_type, *fields)
        deadline = time.monotonic() + timeout
        with self._replied:
            while seq not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BoardError(f"{self.url}: no answer to command 0x{msg_type:02x} within {timeout:g} s")
                self._replied.wait(left)
            kind, code = self._replies.pop(seq)
        if kind == protocol.NACK:
            reason = {
                protocol.ERR_UNKNOWN_TYPE: "this firmware does not know the command: flash the current one (`car flash`)",
                protocol.ERR_BAD_CONFIG: "values out of range",
                protocol.ERR_ESTOPPED: "the board is emergency-stopped (ARM it first)",
            }.get(code, f"error {code}")
            raise BoardError(f"{self.url}: the board refused command 0x{msg_type:02x}: {reason}")

    def ping(self) -> int:
        """Send a PING; its round trip shows in `stats().rtt_ms`. Returns its token."""
        self._ping_token = (self._ping_token + 1) & 0xFFFFFFFF
        token = self._ping_token
        self._pings[token] = time.monotonic()
        self._send(protocol.PING, token)
        return token

    def round_trip(self, timeout: float = 1.0) -> float | None:
        """Seconds from a PING to its ACK, waited for; None if no answer within `timeout`."""
        self._pong.clear()
        token = self.ping()
        deadline = time.monotonic() + timeout
        while token in self._pings and self._pong.wait(max(0.0, deadline - time.monotonic())):
            self._pong.clear()
            if time.monotonic() >= deadline:
                break
        return None if token in self._pings else self._rtt

    def maintenance(self) -> None:
        """Motors off and the firmware leaves its main loop (the REPL is free for flashing).

        Nothing more is sent after it: the REPL would take the bytes as typing.
        """
        self._send(protocol.MAINTENANCE)
        self._in_maintenance = True

    # -- telemetry ----------------------------------------------------------------------
    def read(self) -> SensorReading:
        """The latest telemetry (hal.interfaces.Sensors); BoardError before the first, BoardGone once given up."""
        self._check_not_gone()
        with self._lock:
            if self._reading is None:
                raise BoardError(f"{self.url}: no telemetry yet")
            return self._reading

    def latest(self) -> SensorReading | None:
        """The latest telemetry, if any, whatever the link's state (for a summary at the end)."""
        with self._lock:
            return self._reading

    def stats(self) -> LinkStats:
        """Link statistics."""
        d = self._decoder
        return LinkStats(
            telemetry=self._telemetry,
            frames=d.frames,
            crc_errors=d.crc_errors,
            framing_errors=d.framing_errors,
            dropped=d.errors(),
            lost_frames=self._lost_frames,
            rtt_ms=None if self._rtt is None else round(self._rtt * 1000, 2),
            connected=self.connected,
            reconnects=self.reconnects,
        )

    def _read_loop(self) -> None:
        while self._running:
            port = self._port
            if port is None:
                self._reconnect()
                continue
            try:
                data = read_some(port, 256)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                self._mark_lost(f"read failed: {exc}")
                self._reconnect()
                continue
            now = time.monotonic()
            if data:
                for message in self._decoder.feed(data):
                    self._last_frame = now
                    if self._lost_since is not None:
                        self._lost_since = None
                        self.reconnects += 1
                    self.connected = True
                    self._count_lost(message[1])
                    self._handle(*message)
            elif self.connected and now - self._last_frame > SILENT_S:
                self._mark_lost(f"no frame for {SILENT_S:g} s")
            if not self.connected and now - self._last_frame > SILENT_S + REOPEN_S:
                self._reconnect()

    def _reconnect(self) -> None:
        """Close the port and open it again (the same path), handshake included; retried every REOPEN_S."""
        if not self._running:
            return
        with self._write_lock:  # no send writes to the port while it is closed under it
            if self._port is not None:
                try:
                    self._port.close()
                except (serial.SerialException, OSError):
                    pass
            self._port = None
        try:
            self._open_port()
        except BoardError:
            time.sleep(REOPEN_S)
        self._last_frame = time.monotonic() - SILENT_S  # give the reopened port its own grace

    def _count_lost(self, seq: int) -> None:
        """The board numbers every frame it sends: a jump means frames lost on the way."""
        if self._last_seq is not None:
            self._lost_frames += ((seq - self._last_seq) & 0xFF) - 1 if seq != self._last_seq else 0
        self._last_seq = seq

    def _handle(self, msg_type: int, seq: int, fields: tuple[Any, ...]) -> None:
        if msg_type == protocol.TELEMETRY:
            self._telemetry += 1
            t_ms, tl, tr, sl, sr, l0, l1, l2, l3, l4, yaw, range_mm, battery, flags = fields
            reading = SensorReading(
                t=t_ms / 1000,
                encoder_ticks=(tl, tr),
                wheel_speeds=(sl / 1000, sr / 1000),
                line_sensors=tuple(v / 255 for v in (l0, l1, l2, l3, l4)),
                yaw_rate=yaw / 1000,
                range_m=None if range_mm == protocol.NO_RANGE else range_mm / 1000,
                battery_v=battery / 1000,
            )
            with self._lock:
                self._reading = reading
                self.flags = flags
        elif msg_type == protocol.INFO:
            major, minor, patch, version, board_id = fields
            self.info = BoardInfo(
                f"{major}.{minor}.{patch}", version, board_id.rstrip(b"\x00").decode(errors="replace")
            )
            if self.reconnects and version != protocol.PROTOCOL_VERSION:
                self._refused = (
                    f"{self.url}: the board came back speaking protocol {version}, this host "
                    f"{protocol.PROTOCOL_VERSION}: flash matching firmware with `car flash`"
                )
            self._info_event.set()
        elif msg_type == protocol.ACK and fields[1] == protocol.PING:
            sent = self._pings.pop(fields[2], None)
            if sent is not None:
                self._rtt = time.monotonic() - sent
                self._pong.set()
        elif msg_type in (protocol.ACK, protocol.NACK):
            with self._replied:
                self._replies[fields[0]] = (msg_type, fields[2])
                if len(self._replies) > 64:  # answers nobody waited for (ESTOP, ARM): keep the last few
                    del self._replies[next(iter(self._replies))]
                self._replied.notify_all()
        elif msg_type == protocol.LOG:
            self.log.append(fields[0].decode(errors="replace"))


def _duty(duty: float) -> int:
    if math.isnan(duty):
        return 0
    return round(max(-1.0, min(1.0, duty)) * 32767)


def _mm(speed: float) -> int:
    if math.isnan(speed):
        return 0
    return max(-32768, min(32767, round(speed * 1000)))
