"""The firmware's logic under CPython: the real app, pid and hardware modules on a fake `machine`."""

from __future__ import annotations

import importlib
import random
from itertools import pairwise
from typing import Any

import pytest

from firmware import protocol as p
from sim import fake_machine


class Car:
    """The firmware on a fake board, with a simple motor model turning duty into encoder edges."""

    def __init__(self) -> None:
        self.board = fake_machine.install()
        hardware = importlib.import_module("hardware")
        app = importlib.import_module("app")
        pid = importlib.import_module("pid")
        board_pico = importlib.import_module("board_pico")
        self.pins = board_pico
        self.hw = hardware.Hardware(board_pico)
        self.sent = bytearray()
        self.firmware = app.Firmware(
            self.hw,
            self.sent.extend,
            b"testcar1",
            board_pico.WHEEL_MM_PER_TICK,
            lambda: pid.Pid(*board_pico.PID_GAINS),
        )
        self.decoder = p.Decoder()
        self.now = 0
        self.speed = [0.0, 0.0]  # mm/s of each modelled wheel
        self.travel = [0.0, 0.0]  # mm
        self.seq = 0

    def duty(self, side: int) -> float:
        return self.board.motor_duty(*(self.pins.MOTOR_LEFT if side == 0 else self.pins.MOTOR_RIGHT))

    def command(self, msg_type: int, *fields: Any) -> None:
        self.seq += 1
        self.firmware.receive(p.pack(msg_type, self.seq, *fields), self.now)

    def run(self, ms: int) -> list[tuple[int, int, tuple[Any, ...]]]:
        """Advance time 1 ms at a time: motors respond (tau 50 ms, 1000 mm/s at full duty), encoders tick."""
        for _ in range(ms):
            self.now += 1
            for side in (0, 1):
                self.speed[side] += (self.duty(side) * 1000 - self.speed[side]) * 0.02
                self.travel[side] += self.speed[side] / 1000
                a, b = self.pins.ENCODER_LEFT if side == 0 else self.pins.ENCODER_RIGHT
                self.board.turn_encoder(a, b, int(self.travel[side] / self.pins.WHEEL_MM_PER_TICK))
            self.firmware.step(self.now)
        messages = self.decoder.feed(bytes(self.sent))
        self.sent.clear()
        return messages


def test_wheel_commands_reach_the_motors_and_the_pid_holds_speed() -> None:
    car = Car()
    car.command(p.SET_WHEELS, 400, -250)
    for _ in range(8):  # keep the watchdog fed for 0.8 s
        car.run(100)
        car.command(p.SET_WHEELS, 400, -250)
    assert car.duty(0) > 0 and car.duty(1) < 0
    assert car.speed[0] == pytest.approx(400, rel=0.1)
    assert car.speed[1] == pytest.approx(-250, rel=0.1)
    assert car.firmware.speeds[0] == pytest.approx(400, rel=0.15)  # measured from the encoders


def test_watchdog_stops_the_motors_250_ms_after_the_last_command() -> None:
    car = Car()
    car.command(p.SET_WHEELS, 300, 300)
    car.run(240)
    assert car.duty(0) > 0
    telemetry = [m for m in car.run(20) if m[0] == p.TELEMETRY]
    assert car.duty(0) == 0 and car.duty(1) == 0
    assert telemetry[-1][2][-1] & p.FLAG_WATCHDOG


def test_telemetry_streams_at_100_hz() -> None:
    car = Car()
    frames = [m for m in car.run(1000) if m[0] == p.TELEMETRY]
    assert 99 <= len(frames) <= 101
    stamps = [frame[2][0] for frame in frames]  # t ms: every 10 ms
    assert all(b - a == 10 for a, b in pairwise(stamps))
    assert len(frames[-1][2]) == 14


def test_estop_blocks_commands_until_armed() -> None:
    car = Car()
    car.command(p.SET_WHEELS, 300, 300)
    car.run(50)
    car.command(p.ESTOP)
    replies = car.run(20)
    assert car.duty(0) == 0
    car.command(p.SET_WHEELS, 300, 300)
    replies += car.run(20)
    assert any(m[0] == p.NACK and m[2][2] == p.ERR_ESTOPPED for m in replies)
    assert car.duty(0) == 0 and any(m[0] == p.TELEMETRY and m[2][-1] & p.FLAG_ESTOP for m in replies)
    car.command(p.ARM)
    car.command(p.SET_WHEELS, 300, 300)
    car.run(30)
    assert car.duty(0) > 0


def test_ping_info_config_and_unknown_commands() -> None:
    car = Car()
    car.command(p.PING, 0xC0FFEE)
    car.command(p.GET_INFO)
    car.command(p.CONFIG, 500, 50, 0.002, 0.01, 0.0, 1)
    car.command(p.CONFIG, 5, 50, 0.002, 0.01, 0.0, 1)  # watchdog too short
    car.firmware.receive(p.encode(0x7A, 98, b""), car.now)  # unknown: dropped and counted by the decoder
    car.firmware.receive(p.pack(p.INFO, 99, 0, 0, 0, 1, b"notme..."), car.now)  # known, but not for the board
    replies = [m for m in car.run(1) if m[0] != p.TELEMETRY]
    assert car.firmware.decoder.unknown_types == 1
    assert (replies[0][0], replies[0][2]) == (p.ACK, (1, p.PING, 0xC0FFEE))
    assert replies[1][0] == p.INFO and replies[1][2][3] == p.PROTOCOL_VERSION and replies[1][2][4] == b"testcar1"
    assert replies[2][0] == p.ACK and car.firmware.watchdog_ms == 500 and car.firmware.telemetry_ms == 20
    assert replies[3][0] == p.NACK and replies[3][2][2] == p.ERR_BAD_CONFIG
    assert replies[4][0] == p.NACK and replies[4][2] == (99, p.INFO, p.ERR_UNKNOWN_TYPE)


def test_set_duty_drives_open_loop_until_the_watchdog() -> None:
    car = Car()
    car.command(p.SET_DUTY, 16383, -32767)  # half forward, full backward
    car.run(20)
    assert car.duty(0) == pytest.approx(0.5, abs=0.01) and car.duty(1) == pytest.approx(-1.0, abs=0.01)
    car.run(250)
    assert car.duty(0) == 0 and car.duty(1) == 0  # no command for 250 ms
    car.command(p.ESTOP)
    car.command(p.SET_DUTY, 16383, 16383)
    replies = car.run(20)
    assert car.duty(0) == 0 and any(m[0] == p.NACK and m[2][2] == p.ERR_ESTOPPED for m in replies)


def test_wheel_config_turns_a_backwards_motor_and_encoder_and_adds_the_dead_band() -> None:
    car = Car()
    # left motor wired backwards, right encoder backwards, a dead band of 0.1 on both, 0.8 duty per m/s
    car.command(p.WHEEL_CONFIG, -1, 1, 6554, 0.0008, 1, -1, 6554, 0.0008, car.pins.WHEEL_MM_PER_TICK)
    replies = car.run(5)
    assert any(m[0] == p.ACK and m[2][1] == p.WHEEL_CONFIG for m in replies)
    car.command(p.SET_WHEELS, 100, 0)
    car.run(10)
    left = car.duty(0)
    assert left < -0.1  # driven backwards on the wire: forward on the floor; past the dead band
    car.firmware.encoder_signs = (1, 1)
    raw = car.firmware.ticks()
    car.firmware.encoder_signs = (1, -1)
    assert car.firmware.ticks() == (raw[0], -raw[1])  # counts reported forward positive
    car.command(p.WHEEL_CONFIG, 2, 1, 0, 0.001, 1, 1, 0, 0.001, 0.5)  # a sign of 2 is no sign
    replies = car.run(2)
    assert any(m[0] == p.NACK and m[2][1:] == (p.WHEEL_CONFIG, p.ERR_BAD_CONFIG) for m in replies)


def test_garbage_never_moves_a_motor() -> None:
    car = Car()
    rng = random.Random(11)
    for _ in range(200):
        car.firmware.receive(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))), car.now)
        car.run(2)
        assert car.duty(0) == 0 and car.duty(1) == 0
    assert car.firmware.decoder.errors() > 0


def test_maintenance_stops_the_motors_and_ends_the_loop() -> None:
    car = Car()
    car.command(p.SET_WHEELS, 300, 300)
    car.run(50)
    car.command(p.MAINTENANCE)
    car.run(5)
    assert car.firmware.running is False and car.duty(0) == 0


def test_sensors_through_the_pins() -> None:
    car = Car()
    levels = {0: 0x1000, 1: 0x8000, 2: 0xF000, 3: 0x8000, 4: 0x1000}  # dark means a low reading

    def line_adc(pin: int) -> int:
        if pin == car.pins.BATTERY_ADC:
            return int(7.6 / car.pins.BATTERY_DIVIDER / 3.3 * 65535)
        channel = sum(car.board.pins[s].level << bit for bit, s in enumerate(car.pins.LINE_MUX_SELECT))
        return 0xFFFF - levels[channel]

    car.board.adc = line_adc
    assert car.hw.read_line() == [16, 128, 240, 128, 16]
    assert car.hw.read_battery_mv() == pytest.approx(7600, abs=2)
    assert car.hw.read_range_mm() == p.NO_RANGE
    car.board.echo_us = lambda: 2915  # 0.5 m there and back
    assert car.hw.read_range_mm() == pytest.approx(500, abs=1)
    assert car.hw.read_yaw_mrad() == 0  # no IMU on the bus


def _echo_for(distance_mm: float) -> int:
    return int(distance_mm * 2 / 0.343)  # the ranger's round trip in µs


def test_the_board_brakes_for_an_obstacle_on_its_own_and_says_so() -> None:
    car = Car()
    wall = [1500.0]  # mm ahead of the ranger; the modelled car closes in on it
    car.board.echo_us = lambda: _echo_for(wall[0])
    telemetry = []
    for _ in range(300):  # 3 s, commands kept coming: the host wants to drive on
        car.command(p.SET_WHEELS, 600, 600)
        before = sum(car.travel) / 2
        telemetry += [m for m in car.run(10) if m[0] == p.TELEMETRY]
        wall[0] -= sum(car.travel) / 2 - before
    assert wall[0] > 5, f"the car hit the obstacle ({wall[0]:.0f} mm left)"
    assert wall[0] < 300  # it did drive up to it
    assert abs(car.speed[0]) < 30 and abs(car.speed[1]) < 30
    assert telemetry[-1][2][-1] & p.FLAG_OBSTACLE and telemetry[-1][2][11] == pytest.approx(wall[0], abs=3)
    assert not telemetry[0][2][-1] & p.FLAG_OBSTACLE
    car.command(p.SET_WHEELS, -300, -300)  # backing away is allowed
    car.run(200)
    assert car.speed[0] < -100 and car.speed[1] < -100


def test_the_brake_ignores_a_lone_spike_and_dropouts() -> None:
    brake = importlib.import_module("brake")
    guard = brake.ObstacleBrake()
    readings = [800, 0, 60, 790, 0xFFFF, 780, 0, 0, 770, 30, 760]  # 0: a failed echo; 60, 30: lone spikes
    assert not any(guard.update(r, 1000) for r in readings)
    for r in (150, 140, 130):
        guard.update(r, 1000)
    assert guard.engaged and guard.engagements == 1
    assert guard.limit(500, 300) == (100, -100)  # turning on the spot is left, moving forward is not
    assert guard.limit(-200, -200) == (-200, -200)
    for r in (200, 200):
        guard.update(r, 0)
    assert not guard.engaged
