"""Board emulator: the real firmware on a pseudo-terminal, its pins wired to a simulated car.

    python -m sim.board [--track oval] [--seed 0]

prints the terminal's device path (/dev/pts/N) on its first line, then serves it until
SIGTERM or Ctrl-C. The host opens that path like a USB serial board. Inside, `firmware/`
runs unchanged under CPython on `sim.fake_machine`: PWM duty drives the simulated motors,
encoder pins tick with the simulated wheels, the multiplexed ADC reads the simulated line
sensors, the ranger's echo time and the gyro's registers come from the world, and time
advances in 1 ms steps paced to the wall clock.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import select
import signal
import sys
import time
import tty
from typing import Any

from sim import fake_machine
from sim.track import TrackError, load_track
from sim.world import World

STEP_MS = 1
IMU_ADDRESS = 0x68
GYRO_Z_REGISTER = 0x47
GYRO_LSB_PER_RAD = 131.0 * 180 / math.pi


class EmulatedBoard:
    """The firmware and a simulated car, advanced together one millisecond at a time."""

    def __init__(self, world: World, write: Any):
        self.world = world
        self.fake = fake_machine.install()
        self.fake.i2c_devices = [IMU_ADDRESS]
        self.pins = importlib.import_module("board_pico")
        hardware = importlib.import_module("hardware")
        app = importlib.import_module("app")
        pid = importlib.import_module("pid")
        self.fake.adc = self._adc
        self.fake.echo_us = self._echo_us
        self.hw = hardware.Hardware(self.pins)
        self.firmware = app.Firmware(
            self.hw, write, b"emulated", self.pins.WHEEL_MM_PER_TICK, lambda: pid.Pid(*self.pins.PID_GAINS)
        )
        self.now_ms = 0

    def _adc(self, pin: int) -> int:
        state = self.world.vehicle.state
        if pin == self.pins.BATTERY_ADC:
            volts = self.world.vehicle.battery_voltage() / self.pins.BATTERY_DIVIDER
            return max(0, min(0xFFFF, int(volts / 3.3 * 0xFFFF)))
        channel = sum(self.fake.pins[p].level << bit for bit, p in enumerate(self.pins.LINE_MUX_SELECT))
        darkness = self.world.sensors.line_values(state.x, state.y, state.heading)[channel]
        return int((1.0 - darkness) * 0xFFFF)  # a dark surface reflects little: a low reading

    def _echo_us(self) -> int:
        state = self.world.vehicle.state
        distance = self.world.sensors.range_to_obstacle(state.x, state.y, state.heading)
        return -2 if distance is None else int(distance * 2 / 0.000343)

    def _tick_encoders(self) -> None:
        state = self.world.vehicle.state
        for travel, (a, b) in (
            (state.left_travel, self.pins.ENCODER_LEFT),
            (state.right_travel, self.pins.ENCODER_RIGHT),
        ):
            self.fake.turn_encoder(a, b, math.floor(travel * 1000 / self.pins.WHEEL_MM_PER_TICK))

    def step(self) -> None:
        """One millisecond: motors follow the PWM, the car moves, sensors update, firmware runs."""
        top = self.world.vehicle.params.max_wheel_speed
        self.world.wheels.set_wheel_speeds(
            self.fake.motor_duty(*self.pins.MOTOR_LEFT) * top, self.fake.motor_duty(*self.pins.MOTOR_RIGHT) * top
        )
        self.world.step(STEP_MS / 1000)
        self._tick_encoders()
        state = self.world.vehicle.state
        yaw = (state.right_speed - state.left_speed) / self.world.vehicle.params.wheel_base
        raw = max(-32768, min(32767, int(yaw * GYRO_LSB_PER_RAD))) & 0xFFFF
        self.fake.i2c_registers[(IMU_ADDRESS, GYRO_Z_REGISTER)] = bytes([raw >> 8, raw & 0xFF])
        self.now_ms += STEP_MS
        self.firmware.step(self.now_ms)

    def receive(self, data: bytes) -> None:
        """Bytes from the host."""
        self.firmware.receive(data, self.now_ms)


def serve(track: str, seed: int) -> None:
    """Open a pseudo-terminal, print its path, run the board until SIGTERM."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing: a binary link, as a USB serial port is
    os.set_blocking(master, False)

    def write(data: bytes) -> None:
        try:
            os.write(master, data)
        except OSError:
            pass  # nobody reads, or the buffer is full: a UART drops bytes too

    board = EmulatedBoard(World(load_track(track), seed=seed), write)
    print(os.ttyname(slave), flush=True)
    running = True

    def finish(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    start = time.monotonic()
    while running:
        due = start + board.now_ms / 1000
        wait = max(0.0, due - time.monotonic())
        if select.select([master], [], [], wait)[0]:
            try:
                board.receive(os.read(master, 4096))
            except OSError:
                pass  # the host closed its end; it may open it again
        behind = 0
        while time.monotonic() >= start + board.now_ms / 1000 and behind < 50:
            board.step()
            behind += 1
        if behind == 50:  # too slow to keep up: let simulated time slip rather than spiral
            start = time.monotonic() - board.now_ms / 1000
    os.close(master)
    os.close(slave)


def main(argv: list[str] | None = None) -> None:
    """`python -m sim.board` (also `car board-emulator`)."""
    parser = argparse.ArgumentParser(prog="car board-emulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--track", default="oval", help="a track name or file (default oval)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        serve(args.track, args.seed)
    except (TrackError, OSError) as exc:  # a clear line, not a traceback
        print(f"board emulator: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
