"""The board's behaviour, independent of pins: commands in, wheel duties and telemetry out.

`Firmware` is driven by `main.py` on the board and by the board emulator on a laptop:
give it received bytes (`receive`) and call `step(now_ms)` at least every 10 ms. It talks
to the hardware only through `hw` (see `hardware.Hardware`: set_duty, read_ticks, read_line,
read_yaw_mrad, read_range_mm, read_battery_mv) and writes frames with `write(bytes)`.

Safety: the motors stop when no SET_WHEELS (or SET_DUTY) arrived for the watchdog time (250
ms by default), on ESTOP until ARM, and on MAINTENANCE (which also ends the main loop). The
ranger is read every control period, and `brake.ObstacleBrake` refuses forward motion
within the stopping distance for the measured speed (FLAG_OBSTACLE in the telemetry while
it holds), so the car stops short of a box even when the host stalls or the link drops.

Each wheel's wiring and motor, as `car calibrate motors` measured them (WHEEL_CONFIG): the
motor's sign (-1: wired backwards), the encoder's sign, the dead band (the duty below
which the wheel does not turn, added to every non-zero output) and the feed-forward the
PID starts from; and the distance per encoder tick. SET_DUTY drives the wheels open loop
(signs and dead band not applied) for that measurement.
"""

import protocol
from brake import ObstacleBrake

FIRMWARE_VERSION = (0, 1, 0)
CONTROL_PERIOD_MS = 10
DEFAULT_WATCHDOG_MS = 250
DEFAULT_TELEMETRY_HZ = 100
LOW_BATTERY_MV = 6800


class Firmware:
    """Command handling, the watchdog, per-wheel speed control and telemetry."""

    def __init__(self, hw, write, board_id, mm_per_tick, pid_factory):
        self.hw = hw
        self.write = write
        self.board_id = board_id
        self.mm_per_tick = mm_per_tick
        self.decoder = protocol.Decoder()
        self.pids = (pid_factory(), pid_factory())
        self._pid_factory = pid_factory
        self.targets = (0, 0)  # mm/s
        self.open_loop = None  # (left, right) duty while SET_DUTY drives
        self.motor_signs = (1, 1)
        self.encoder_signs = (1, 1)
        self.dead_bands = (0.0, 0.0)
        self.watchdog_ms = DEFAULT_WATCHDOG_MS
        self.telemetry_ms = 1000 // DEFAULT_TELEMETRY_HZ
        self.estopped = False
        self.running = True  # False after MAINTENANCE: main.py leaves its loop
        self.watchdog_tripped = True  # no command yet: motors off
        self._seq = 0
        self._last_command_ms = None
        self._last_control_ms = None
        self._last_telemetry_ms = None
        self._last_ticks = hw.read_ticks()  # the encoders' signs are +1 until WHEEL_CONFIG
        self.speeds = (0, 0)  # mm/s, measured
        self.brake = ObstacleBrake()
        self.range_mm = protocol.NO_RANGE  # the ranger's latest reading, taken every control period

    def _send(self, msg_type, *fields):
        self._seq = (self._seq + 1) & 0xFF
        self.write(protocol.pack(msg_type, self._seq, *fields))

    def receive(self, data, now_ms):
        """Handle bytes from the host."""
        for msg_type, seq, fields in self.decoder.feed(data):
            self._handle(msg_type, seq, fields, now_ms)

    def _handle(self, msg_type, seq, fields, now_ms):
        if msg_type == protocol.SET_WHEELS:
            if self.estopped:
                self._send(protocol.NACK, seq, msg_type, protocol.ERR_ESTOPPED)
                return
            self.targets = (fields[0], fields[1])
            self.open_loop = None
            self._last_command_ms = now_ms
            self.watchdog_tripped = False
        elif msg_type == protocol.SET_DUTY:
            if self.estopped:
                self._send(protocol.NACK, seq, msg_type, protocol.ERR_ESTOPPED)
                return
            self.open_loop = (max(-1.0, min(1.0, fields[0] / 32767)), max(-1.0, min(1.0, fields[1] / 32767)))
            self._last_command_ms = now_ms
            self.watchdog_tripped = False
        elif msg_type == protocol.WHEEL_CONFIG:
            left_motor, left_encoder, left_band, left_kf, right_motor, right_encoder, right_band, right_kf, per_tick = (
                fields
            )
            signs_ok = all(v in (-1, 1) for v in (left_motor, left_encoder, right_motor, right_encoder))
            if not (signs_ok and 0.0 < per_tick < 100.0 and 0.0 <= left_kf < 1.0 and 0.0 <= right_kf < 1.0):
                self._send(protocol.NACK, seq, msg_type, protocol.ERR_BAD_CONFIG)
                return
            self.motor_signs = (left_motor, right_motor)
            self.encoder_signs = (left_encoder, right_encoder)
            self.dead_bands = (left_band / 65535, right_band / 65535)
            self.pids[0].kf, self.pids[1].kf = left_kf, right_kf
            self.mm_per_tick = per_tick
            self._last_ticks = self.ticks()  # counted afresh with the new signs
            self._send(protocol.ACK, seq, msg_type, 0)
        elif msg_type == protocol.PING:
            self._send(protocol.ACK, seq, msg_type, fields[0])
        elif msg_type == protocol.GET_INFO:
            major, minor, patch = FIRMWARE_VERSION
            self._send(protocol.INFO, major, minor, patch, protocol.PROTOCOL_VERSION, self.board_id)
        elif msg_type == protocol.ESTOP:
            self.estopped = True
            self._stop_motors()
            self._send(protocol.ACK, seq, msg_type, 0)
        elif msg_type == protocol.ARM:
            self.estopped = False
            self._send(protocol.ACK, seq, msg_type, 0)
        elif msg_type == protocol.CONFIG:
            watchdog_ms, telemetry_hz, kp, ki, kd, _pin_map = fields
            if not (20 <= watchdog_ms <= 5000 and 1 <= telemetry_hz <= 200):
                self._send(protocol.NACK, seq, msg_type, protocol.ERR_BAD_CONFIG)
                return
            self.watchdog_ms = watchdog_ms
            self.telemetry_ms = max(1, 1000 // telemetry_hz)
            for pid in self.pids:
                pid.kp, pid.ki, pid.kd = kp, ki, kd
            self._send(protocol.ACK, seq, msg_type, 0)
        elif msg_type == protocol.MAINTENANCE:
            self._stop_motors()
            self.running = False
            self._send(protocol.ACK, seq, msg_type, 0)
        else:
            self._send(protocol.NACK, seq, msg_type, protocol.ERR_UNKNOWN_TYPE)

    def _stop_motors(self):
        self.targets = (0, 0)
        self.open_loop = None
        self.hw.set_duty(0.0, 0.0)
        for pid in self.pids:
            pid.reset()

    def step(self, now_ms):
        """Run the control loop and send telemetry when they are due."""
        if self._last_control_ms is None:
            self._last_control_ms = now_ms
            self._last_telemetry_ms = now_ms
        expired = self._last_command_ms is not None and now_ms - self._last_command_ms > self.watchdog_ms
        if expired and not self.watchdog_tripped:
            self.watchdog_tripped = True
            self._stop_motors()
        elapsed = now_ms - self._last_control_ms
        if elapsed >= CONTROL_PERIOD_MS:
            self._control(elapsed / 1000)
            self._last_control_ms = now_ms
        if now_ms - self._last_telemetry_ms >= self.telemetry_ms:
            self._telemetry(now_ms)
            self._last_telemetry_ms = now_ms

    def ticks(self):
        """Encoder counts since start, forward positive (the encoders' signs applied)."""
        left, right = self.hw.read_ticks()
        return left * self.encoder_signs[0], right * self.encoder_signs[1]

    def _control(self, dt):
        ticks = self.ticks()
        self.speeds = (
            round((ticks[0] - self._last_ticks[0]) * self.mm_per_tick / dt),
            round((ticks[1] - self._last_ticks[1]) * self.mm_per_tick / dt),
        )
        self._last_ticks = ticks
        self.range_mm = self.hw.read_range_mm()
        was_engaged = self.brake.engaged
        engaged = self.brake.update(self.range_mm, (self.speeds[0] + self.speeds[1]) / 2)
        if engaged and not was_engaged:
            for pid in self.pids:  # no wind-up toward the refused speed
                pid.reset()
        if self.estopped or self.watchdog_tripped or not self.running:
            self.hw.set_duty(0.0, 0.0)
            return
        if self.open_loop is not None:
            self.hw.set_duty(*self.brake.limit(self.open_loop[0], self.open_loop[1]))
            return
        target_left, target_right = self.brake.limit(self.targets[0], self.targets[1])
        left = self._wheel_duty(0, self.pids[0].update(target_left, self.speeds[0], dt))
        right = self._wheel_duty(1, self.pids[1].update(target_right, self.speeds[1], dt))
        self.hw.set_duty(left, right)

    def _wheel_duty(self, wheel, duty):
        """The duty a wheel's driver gets: past the dead band, in the motor's own direction."""
        if duty > 0.001:
            duty = min(1.0, duty + self.dead_bands[wheel])
        elif duty < -0.001:
            duty = max(-1.0, duty - self.dead_bands[wheel])
        else:
            duty = 0.0
        return duty * self.motor_signs[wheel]

    def _telemetry(self, now_ms):
        ticks = self.ticks()
        line = self.hw.read_line()
        battery = self.hw.read_battery_mv()
        flags = 0
        if self.estopped:
            flags |= protocol.FLAG_ESTOP
        if self.watchdog_tripped:
            flags |= protocol.FLAG_WATCHDOG
        if battery < LOW_BATTERY_MV:
            flags |= protocol.FLAG_LOW_BATTERY
        if self.brake.engaged:
            flags |= protocol.FLAG_OBSTACLE
        self._send(
            protocol.TELEMETRY,
            now_ms & 0xFFFFFFFF,
            ticks[0],
            ticks[1],
            _clamp16(self.speeds[0]),
            _clamp16(self.speeds[1]),
            line[0],
            line[1],
            line[2],
            line[3],
            line[4],
            _clamp16(self.hw.read_yaw_mrad()),
            self.range_mm,
            battery,
            flags,
        )


def _clamp16(value):
    return max(-32768, min(32767, int(value)))
