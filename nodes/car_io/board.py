"""car_io's board back end (`--hw --port`): the real board, or the board emulator, over the serial link.

Sensor readings go out at 100 Hz (every 10 ms of wall time), camera frames as the camera
gives them (`--camera`), and commands go to the board as they come, through
nodes.drive.DriveGuard. A lost board is waited for (the wheels commanded to stop, the
port reopened) up to `CAR_BOARD_GIVE_UP_S`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict, replace
from typing import NamedTuple

import numpy as np

from car import Node
from hal.board_client import GIVE_UP_S, BoardClient, BoardError, BoardGone
from hal.camera import CameraError, OpenCVCamera
from hal.description import load_description
from hal.interfaces import SensorReading
from nodes.car_io.inputs import Command, Ended, Inputs
from nodes.drive import SENSOR_PERIOD_S, DriveGuard, DriveLimits
from nodes.messages import sensor_message
from nodes.safety import send_safety


class CameraThread(threading.Thread):
    """Reads the camera on a thread of its own, so a frame's wait never holds up commands."""

    def __init__(self, source: str):
        super().__init__(name="camera", daemon=True)
        self.camera = OpenCVCamera(int(source) if source.isdigit() else source)
        self.latest: tuple[np.ndarray, float] | None = None
        self.frames = 0
        self.error = ""
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self.latest = self.camera.read()
                except CameraError as exc:
                    self.error = str(exc)
                    return
                self.frames += 1
        finally:
            self.camera.close()

    def stop(self) -> None:
        """End the thread after its current frame and release the camera: a thread still inside OpenCV
        when the interpreter exits aborts the process (`terminate called without an active exception`)."""
        self._stopping.set()
        self.join(timeout=2.0)


class LinkWatch:
    """Says when the board is lost and when it is back (on stderr and in the node's status)."""

    def __init__(self, node: Node, board: BoardClient, guard: DriveGuard):
        self.node = node
        self.board = board
        self.guard = guard
        self.lost = False

    def check(self, now: float) -> bool:
        """True while the board is lost; a change is reported, and on loss the wheels are told to stop."""
        lost_for = self.board.lost_for()
        if lost_for is not None and not self.lost:
            self.lost = True
            self.board.stop()  # dropped if the board is gone; its watchdog stops the motors anyway
            self.guard.board_lost(
                now,
                f"board lost on {self.board.url} ({self.board.lost_reason}): wheels stopped; "
                f"reconnecting (giving up after {self.board.give_up_s:g} s)",
            )
            self.node.set_status("board lost, reconnecting")
        elif lost_for is None and self.lost:
            self.lost = False
            info = self.board.info
            print(
                f"car_io: board back on {self.board.url}: board {info.board_id}, firmware "
                f"{info.firmware} (reconnection {self.board.reconnects})",
                file=sys.stderr,
            )
            self.guard.board_back(now)
            self.node.set_status("board back")
        return self.lost


def run() -> None:
    """Drive the board named by CAR_PORT until STOP (car_io's `hw` back end)."""
    port = os.environ.get("CAR_PORT", "")
    if not port:
        print("car_io: --hw needs --port PORT: the board's serial port or URL", file=sys.stderr)
        raise SystemExit(2)
    give_up_s = float(os.environ.get("CAR_BOARD_GIVE_UP_S", GIVE_UP_S))
    run_board(Node(), port, os.environ.get("CAR_CAMERA", ""), give_up_s)


def run_board(node: Node, port: str, camera_source: str, give_up_s: float) -> None:
    """Drive the real board (or the board emulator): sensors out at 100 Hz, camera frames as
    they come, commands in; a lost board is waited for up to `give_up_s`."""
    board = BoardClient(port, give_up_s=give_up_s)
    try:
        info = board.open()
    except BoardError as exc:
        print(f"car_io: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"car_io: board {info.board_id}, firmware {info.firmware}, on {port}", file=sys.stderr)
    car = load_description()
    try:  # the wheels as `car calibrate motors` measured them
        board.configure_wheels(car.wheels, car.ticks_per_metre())
    except BoardError as exc:
        print(f"car_io: warning: {exc}; the board drives with its own defaults", file=sys.stderr)
    try:
        serve_board(node, board, camera_source, LineScale(car.sensors.line_floor, car.sensors.line_tape))
    except BoardGone as exc:
        print(f"car_io: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


class LineScale(NamedTuple):
    """Each line sensor's reading over floor and over tape (`car calibrate line-sensors`)."""

    floor: tuple[float, ...]
    tape: tuple[float, ...]

    def apply(self, reading: SensorReading) -> SensorReading:
        """The reading with its line sensors scaled so that floor reads 0 and tape 1."""
        scaled = tuple(
            min(1.0, max(0.0, (value - low) / (high - low))) if high > low else value
            for value, low, high in zip(reading.line_sensors, self.floor, self.tape, strict=False)
        )
        return replace(reading, line_sensors=scaled)


def serve_board(node: Node, board: BoardClient, camera_source: str, line_scale: LineScale) -> None:
    """The loop of `run_board`: BoardGone when the board stays lost too long."""
    camera = None
    if camera_source:
        try:
            camera = CameraThread(camera_source)
        except CameraError as exc:
            board.close()
            print(f"car_io: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        camera.start()
    frame, images, sent_frame = 0, 0, 0
    guard = DriveGuard(DriveLimits.from_env())
    watch = LinkWatch(node, board, guard)

    def status() -> str | None:  # a lost board's status says so already (LinkWatch)
        stats = board.stats()
        return (
            None if watch.lost else guard.status() or f"board: {stats.telemetry} readings, {stats.dropped} bad frames"
        )

    inputs = Inputs(node, guard, status)
    next_publish = time.monotonic()
    try:
        while True:
            event = node.next(timeout=max(0.0, next_publish - time.monotonic()))
            now = time.monotonic()
            watch.check(now)
            taken = inputs.take(event, now) if event is not None else None
            if taken is Ended.STOP:
                break
            if isinstance(taken, Command):
                board.set_wheel_speeds(taken.left, taken.right)
            if guard.expired(now):
                board.stop()
            if now >= next_publish:
                next_publish = now + SENSOR_PERIOD_S
                try:
                    reading = board.read()
                except BoardGone:
                    raise
                except BoardError:
                    reading = None  # no telemetry yet
                if reading is not None and not watch.lost:
                    guard.sensed(reading, now, board.flags)
                    node.send_output("sensors", sensor_message(line_scale.apply(reading)), {"frame": frame})
                    frame += 1
            send_safety(node, guard.take_events())
            if camera is not None and camera.frames > sent_frame and camera.latest is not None:
                sent_frame = camera.frames
                image, captured = camera.latest
                node.send_output("image", image, {"captured": round(captured, 6)})
                images += 1
            if camera is not None and camera.error and not camera.is_alive() and camera.frames == sent_frame:
                print(f"car_io: {camera.error}", file=sys.stderr)
                camera = None
    finally:
        board.close()
        if camera is not None:
            camera.stop()
        print(f"car_io: sent {images} camera frame(s)", file=sys.stderr)
        last = board.latest()
        ticks = last.encoder_ticks if last is not None else (0, 0)
        print(
            f"car_io: board link {json.dumps(asdict(board.stats()))}; encoder ticks {ticks[0]} {ticks[1]}",
            file=sys.stderr,
        )
