"""`car calibrate motors` and `car calibrate line-sensors`: the board's wheels and line sensors, measured.

    car calibrate motors [--port PORT] [--out FILE] [--json]
    car calibrate line-sensors [--port PORT] [--out FILE] [--json]

Put the car on the floor with room to turn (for line-sensors: standing on the tape, the
sensor bar across it). Both talk to the running firmware (`hal.board_client`) and write their
section of the car description (`wheels`, `sensors`; default the user's car file), which
`car launch --hw` hands to the board at start.

motors, per wheel, the other wheel held still: the dead band (duty is raised in steps until
the encoder sees the wheel turn), the speed per duty above it (a straight line through
three steady speeds: the feed-forward the firmware's PID starts from), the encoder's
direction and the motor's (the gyro tells which way the car really turned, so a motor
wired backwards and an encoder wired backwards are told apart); then a turn on the spot
measured by the gyro gives the encoder counts per metre; then both wheels are driven
closed loop at 0.3 m/s with the result, as a check.

line-sensors: the car pivots left and right on the spot so the bar sweeps across the tape;
each sensor's reading over bare floor (its low end) and over tape (its high end) is kept,
and its threshold is midway. A sensor that barely tells them apart is named.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hal.board_client import BoardClient, BoardError
from hal.description import (
    CarDescription,
    DescriptionError,
    WheelParams,
    load_description,
    user_file,
    write_section,
)
from hal.interfaces import SensorReading
from tools.board import board_port

MOVING_MPS = 0.02  # a wheel turning slower than this stands still
DUTY_STEP = 0.02
MAX_SCAN_DUTY = 0.6
FIT_ABOVE = (0.1, 0.25, 0.4)  # duties above the dead band for the speed fit
NO_GYRO_RAD_S = 0.02  # a turn this slow is no turn: the board has no gyro
SPIN_DUTY = (
    0.12  # above the dead band, for the turn on the spot: slow enough for the gyro (an MPU-6050 ends at 4.4 rad/s)
)
CHECK_MPS = 0.3
SWEEP_RAD = math.radians(35)
SWEEP_MPS = 0.08
MIN_RANGE = 0.15  # a line sensor whose tape and floor readings are closer than this is useless


class CalibrationError(Exception):
    """The car did not behave as calibration needs; the message says what to check."""


@dataclass(frozen=True)
class Sample:
    """Telemetry averaged over a while: wheel speeds (m/s, as the encoders count) and yaw rate."""

    speeds: tuple[float, float]
    yaw_rate: float


@dataclass(frozen=True)
class WheelFinding:
    """One wheel, as measured."""

    side: str
    motor: int
    encoder: int
    dead_band: float
    duty_per_mps: float


def hold(board: BoardClient, command: Callable[[], None], seconds: float, settle: float = 0.0) -> list[SensorReading]:
    """Repeat `command` (feeding the watchdog) for settle + seconds; the readings of the last `seconds`."""
    readings: list[SensorReading] = []
    start = time.monotonic()
    while time.monotonic() - start < settle + seconds:
        command()
        reading = board.latest()
        if reading is not None and time.monotonic() - start >= settle and (not readings or reading.t != readings[-1].t):
            readings.append(reading)
        time.sleep(0.01)
    if not readings:
        raise CalibrationError(f"{board.url}: no telemetry while measuring: is the firmware running?")
    return readings


def sample(board: BoardClient, left: float, right: float, seconds: float, settle: float) -> Sample:
    """Open-loop duties held; the mean of what the telemetry says meanwhile."""
    readings = hold(board, lambda: board.set_duty(left, right), seconds, settle)
    speeds = np.mean([r.wheel_speeds for r in readings], axis=0)
    return Sample((float(speeds[0]), float(speeds[1])), float(np.mean([r.yaw_rate for r in readings])))


def stand_still(board: BoardClient, seconds: float = 0.3) -> float:
    """Both wheels off for a while; the gyro's reading at rest (its bias)."""
    return sample(board, 0.0, 0.0, seconds, settle=0.25).yaw_rate


def calibrate_wheel(board: BoardClient, wheel: int, bias: float) -> tuple[WheelFinding, bool]:
    """Dead band, speed per duty and directions of one wheel; also whether the gyro saw it turn the car."""
    side = ("left", "right")[wheel]

    def duties(duty: float) -> tuple[float, float]:
        return (duty, 0.0) if wheel == 0 else (0.0, duty)

    first_moving = None
    duty = DUTY_STEP
    while duty <= MAX_SCAN_DUTY + 1e-9:
        if abs(sample(board, *duties(duty), seconds=0.06, settle=0.12).speeds[wheel]) > MOVING_MPS:
            first_moving = duty
            break
        duty += DUTY_STEP
    if first_moving is None:
        stand_still(board)
        raise CalibrationError(
            f"the {side} wheel did not turn at duty {MAX_SCAN_DUTY:g}, or its encoder counted nothing: check the "
            "motor's wires, its driver, the encoder's wires and the battery"
        )
    points = []
    for above in FIT_ABOVE:
        duty = min(0.95, first_moving + above)
        measured = sample(board, *duties(duty), seconds=0.2, settle=0.25)  # a motor settles in 0.1-0.2 s
        points.append((duty, measured.speeds[wheel], measured.yaw_rate - bias))
    stand_still(board)
    duty_values = np.array([p[0] for p in points])
    speeds = np.array([p[1] for p in points])
    slope, intercept = np.polyfit(duty_values, np.abs(speeds), 1)
    if slope <= 0:
        raise CalibrationError(f"the {side} wheel went no faster at higher duty: check its motor and driver")
    dead_band = min(first_moving, max(0.0, -intercept / slope))
    counted = 1 if float(np.mean(speeds)) > 0 else -1
    yaw = float(np.mean([p[2] for p in points]))
    gyro = abs(yaw) > NO_GYRO_RAD_S
    # a wheel going forward turns the car away from its side: left -> clockwise (negative yaw)
    forward = (yaw < 0 if wheel == 0 else yaw > 0) if gyro else counted > 0
    motor = 1 if forward else -1
    finding = WheelFinding(side, motor, counted * motor, round(float(dead_band), 4), round(float(1 / slope), 4))
    return finding, gyro


def spin_ticks_per_metre(board: BoardClient, left: WheelFinding, right: WheelFinding, wheel_base: float) -> float:
    """A turn on the spot, measured by the gyro: encoder counts per metre of wheel travel."""
    bias = stand_still(board)
    start = board.latest()
    assert start is not None
    duty_left = left.motor * (left.dead_band + SPIN_DUTY)
    duty_right = -right.motor * (right.dead_band + SPIN_DUTY)
    angle, last_t, began = 0.0, start.t, time.monotonic()
    while abs(angle) < 2 * math.pi and time.monotonic() - began < 10:
        board.set_duty(duty_left, duty_right)
        reading = board.latest()
        if reading is not None and reading.t != last_t:
            angle += (reading.yaw_rate - bias) * (reading.t - last_t)
            last_t = reading.t
        time.sleep(0.005)
    end = board.latest()
    assert end is not None
    stand_still(board)
    if abs(angle) < math.pi:
        raise CalibrationError("the car did not turn on the spot (a turn of the gyro's): is it free to turn?")
    counts = (
        abs(end.encoder_ticks[0] - start.encoder_ticks[0]) + abs(end.encoder_ticks[1] - start.encoder_ticks[1])
    ) / 2
    return float(counts / (abs(angle) * wheel_base / 2))


def calibrate_motors(board: BoardClient, car: CarDescription) -> tuple[WheelParams, list[str]]:
    """Every measurement of `car calibrate motors`; the wheels section and what to tell the user."""
    nominal_ticks = CarDescription(car=car.car).ticks_per_metre()
    board.configure_wheels(WheelParams(), nominal_ticks)  # measure the raw car, not a former calibration
    bias = stand_still(board)
    left, gyro_left = calibrate_wheel(board, 0, bias)
    right, gyro_right = calibrate_wheel(board, 1, bias)
    notes = []
    for wheel in (left, right):
        if wheel.motor < 0:
            notes.append(f"the {wheel.side} motor is wired backwards: driven reversed from now on (or swap its wires)")
        if wheel.encoder < 0:
            notes.append(f"the {wheel.side} encoder is wired backwards: counted reversed (or swap its A and B)")
    ticks = nominal_ticks
    if gyro_left and gyro_right:
        ticks = spin_ticks_per_metre(board, left, right, car.car.wheel_base)
    else:
        notes.append(
            "the gyro saw no turn: wheel directions are taken from the encoders and counts per metre from the "
            "wheel radius; check the IMU's wiring"
        )
    wheels = WheelParams(
        left.motor,
        right.motor,
        left.encoder,
        right.encoder,
        left.dead_band,
        right.dead_band,
        left.duty_per_mps,
        right.duty_per_mps,
        round(ticks, 2),
    )
    board.configure_wheels(wheels, ticks)
    readings = hold(board, lambda: board.set_wheel_speeds(CHECK_MPS, CHECK_MPS), seconds=0.5, settle=1.0)
    board.stop()
    speeds = np.mean([r.wheel_speeds for r in readings], axis=0)
    notes.append(f"check: {CHECK_MPS:g} m/s asked of both wheels, {speeds[0]:.3f} and {speeds[1]:.3f} m/s measured")
    if min(speeds) < CHECK_MPS * 0.7:
        raise CalibrationError(
            f"with the result, {CHECK_MPS:g} m/s asked gave {speeds[0]:.3f} and {speeds[1]:.3f} m/s: "
            "run it again on a flat floor with room to turn"
        )
    return wheels, notes


def sweep_line_sensors(board: BoardClient, car: CarDescription) -> list[tuple[float, ...]]:
    """Pivot left and right of where the car stands (by the gyro), reading the line sensors all along."""
    board.configure_wheels(car.wheels, car.ticks_per_metre())
    bias = stand_still(board)
    seen: list[tuple[float, ...]] = []
    heading, widest = 0.0, 0.0
    for target in (SWEEP_RAD, -SWEEP_RAD, 0.0):
        turn = 1.0 if target > heading else -1.0
        began, last = time.monotonic(), board.latest()
        assert last is not None
        while (heading - target) * turn < 0 and time.monotonic() - began < 4:
            board.set_wheel_speeds(-turn * SWEEP_MPS, turn * SWEEP_MPS)
            reading = board.latest()
            if reading is not None and reading.t != last.t:
                heading += (reading.yaw_rate - bias) * (reading.t - last.t)
                widest = max(widest, abs(heading))
                seen.append(reading.line_sensors)
                last = reading
            time.sleep(0.005)
    stand_still(board)
    if widest < SWEEP_RAD / 2:
        raise CalibrationError(
            f"the car did not pivot (the gyro saw {math.degrees(widest):.0f} deg): calibrate the motors first "
            "(`car calibrate motors`), and check that it is free to turn"
        )
    return seen


def line_levels(seen: list[tuple[float, ...]]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each sensor's floor level (its low end) and tape level (its high end); CalibrationError for a useless one."""
    if len(seen) < 20:
        raise CalibrationError("too few readings during the sweep: is the firmware sending telemetry?")
    values = np.array(seen)
    floor = np.percentile(values, 5, axis=0)
    tape = np.sort(values, axis=0)[-2]  # an outer sensor sees the tape only briefly: its top, bar one glitch
    for index, (low, high) in enumerate(zip(floor, tape, strict=True)):
        if high - low < MIN_RANGE:
            raise CalibrationError(
                f"line sensor {index} (0 = leftmost) read {low:.2f} to {high:.2f}: it barely tells tape from "
                "floor. Stand the car on the tape, bar across it; check the sensor's height and wiring"
            )
    return tuple(round(float(v), 3) for v in floor), tuple(round(float(v), 3) for v in tape)


def _open(port: str | None, out: Path) -> tuple[BoardClient, CarDescription]:
    description = load_description(out if out.is_file() else None)
    board = BoardClient(board_port(port))
    board.open()
    return board, description


def _run(
    name: str, argv: list[str] | None, calibrate: Callable[[BoardClient, CarDescription, Path], dict[str, Any]]
) -> None:
    parser = argparse.ArgumentParser(prog=f"car calibrate {name}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", help="the board's serial port (default: the one attached MicroPython board)")
    parser.add_argument("--out", metavar="FILE", help=f"the car description to write (default {user_file()})")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else user_file()
    try:
        board, description = _open(args.port, out)
        try:
            result = calibrate(board, description, out)
        finally:
            board.close()
    except (CalibrationError, BoardError, DescriptionError) as exc:
        print(f"car calibrate {name}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if args.json:
        print(json.dumps(result))
        return
    for line in result["said"]:
        print(f"car calibrate {name}: {line}")
    print(f"car calibrate {name}: wrote the {result['section']} section of {out}")


def _motors(board: BoardClient, description: CarDescription, out: Path) -> dict[str, Any]:
    wheels, notes = calibrate_motors(board, description)
    write_section(out, "wheels", wheels, "car calibrate motors")
    said = [
        f"{side} wheel: dead band {getattr(wheels, side + '_dead_band'):.3f} duty, "
        f"{getattr(wheels, side + '_duty_per_mps'):.3f} duty per m/s above it, "
        f"motor {'+' if getattr(wheels, side + '_motor') > 0 else '-'}, "
        f"encoder {'+' if getattr(wheels, side + '_encoder') > 0 else '-'}"
        for side in ("left", "right")
    ]
    said += [f"{wheels.ticks_per_metre:.1f} encoder counts per metre", *notes]
    return {"section": "wheels", "wheels": dataclasses.asdict(wheels), "said": said}


def _line_sensors(board: BoardClient, description: CarDescription, out: Path) -> dict[str, Any]:
    floor, tape = line_levels(sweep_line_sensors(board, description))
    sensors = dataclasses.replace(description.sensors, line_floor=floor, line_tape=tape)
    write_section(out, "sensors", sensors, "car calibrate line-sensors")
    said = [
        f"sensor {k}: floor {low:.3f}, tape {high:.3f}, threshold {(low + high) / 2:.3f}"
        for k, (low, high) in enumerate(zip(floor, tape, strict=True))
    ]
    return {"section": "sensors", "line_floor": list(floor), "line_tape": list(tape), "said": said}


def motors_main(argv: list[str] | None = None) -> None:
    """`car calibrate motors`."""
    _run("motors", argv, _motors)


def line_sensors_main(argv: list[str] | None = None) -> None:
    """`car calibrate line-sensors`."""
    _run("line-sensors", argv, _line_sensors)
