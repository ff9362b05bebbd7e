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
import shutil
import signal
import sys
import tempfile
import time
import tty
from pathlib import Path
from typing import Any

from sim import fake_machine
from sim.repl import BoardFilesystem, Repl
from sim.track import TrackError, load_track
from sim.world import World

STEP_MS = 1
IMU_ADDRESS = 0x68
GYRO_Z_REGISTER = 0x47
GYRO_LSB_PER_RAD = 131.0 * 180 / math.pi


FIRMWARE_MODULES = ("protocol", "app", "pid", "hardware", "board_pico", "board_esp32")


class EmulatedBoard:
    """The firmware (from the board's filesystem) and a simulated car, one millisecond at a time.

    While `main.py` runs, bytes from the host go to the firmware; after MAINTENANCE, or
    with no main.py, to the MicroPython REPL (`sim.repl`), which `mpremote` drives.
    """

    def __init__(self, world: World, write: Any, fs_root: Path):
        self.world = world
        self.write = write
        self.fs = BoardFilesystem(fs_root)
        self.repl = Repl(self.fs, write, self.boot)
        self.firmware: Any = None
        self.now_ms = 0
        self.boot()

    def boot(self) -> None:
        """A hard reset: the flashed files load afresh, boot.py runs, then main.py starts the firmware."""
        for name in FIRMWARE_MODULES:
            sys.modules.pop(name, None)
        self.fake = fake_machine.install(self.fs.root)
        self.fake.i2c_devices = [IMU_ADDRESS]
        self.fake.adc = self._adc
        self.fake.echo_us = self._echo_us
        self.firmware = None
        self.repl.run_file("boot.py")
        if not self.fs.host("main.py").is_file():
            self.repl.greet()
            return
        try:  # CPython cannot run MicroPython bytecode: a .mpy-only module fails here, as a bad flash would
            self.pins = importlib.import_module("board_pico")
            hardware = importlib.import_module("hardware")
            app = importlib.import_module("app")
            pid = importlib.import_module("pid")
        except ImportError as exc:
            self.write(f'Traceback (most recent call last):\r\n  File "main.py"\r\nImportError: {exc}\r\n'.encode())
            self.repl.greet()
            return
        self.hw = hardware.Hardware(self.pins)
        self.firmware = app.Firmware(
            self.hw, self.write, b"emulated", self.pins.WHEEL_MM_PER_TICK, lambda: pid.Pid(*self.pins.PID_GAINS)
        )

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
        self.now_ms += STEP_MS
        if self.firmware is None:
            self.world.step(STEP_MS / 1000)
            return
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
        self.firmware.step(self.now_ms)

    def receive(self, data: bytes) -> None:
        """Bytes from the host: to the firmware while it runs, else to the REPL."""
        if self.firmware is None:
            self.repl.feed(data)
            return
        self.firmware.receive(data, self.now_ms)
        if not self.firmware.running:  # MAINTENANCE: main.py has ended, the REPL takes over
            self.firmware = None
            self.world.wheels.stop()
            self.repl.greet()


def seed_filesystem(folder: Path) -> Path:
    """The board's flash: `folder`, given the repository's firmware files if it is empty."""
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.iterdir()):
        for source in fake_machine.FIRMWARE.glob("*.py"):
            if source.name != "__init__.py":
                shutil.copy(source, folder / source.name)
    return folder


def serve(track: str, seed: int, fs_root: Path) -> None:
    """Open a pseudo-terminal, print its path, run the board until SIGTERM."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing: a binary link, as a USB serial port is
    os.set_blocking(master, False)

    def write(data: bytes) -> None:
        try:
            os.write(master, data)
        except OSError:
            pass  # nobody reads, or the buffer is full: a UART drops bytes too

    board = EmulatedBoard(World(load_track(track), seed=seed), write, fs_root)
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
    parser.add_argument("--fs", metavar="DIR", help="the board's filesystem (default: a fresh copy of firmware/)")
    args = parser.parse_args(argv)
    try:
        root = Path(args.fs) if args.fs else Path(tempfile.mkdtemp(prefix="car-board-fs-"))
        serve(args.track, args.seed, seed_filesystem(root))
    except (TrackError, OSError) as exc:  # a clear line, not a traceback
        print(f"board emulator: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
