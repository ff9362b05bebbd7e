"""Bringing up a car built wrong: the board emulator's car has a motor and an encoder wired backwards, motors
with a wide dead band and a weak line sensor; calibration finds each, and the car then follows the line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hal.description import load_description
from tests.helpers import ROOT, board_emulator, car

SMALL_LOOP = ROOT / "tests" / "fixtures" / "tracks" / "small_loop.yml"  # 3.1 m: a lap in 8 s at the IR pace
FAULTS = ("--fault", "left-motor-reversed", "--fault", "right-encoder-reversed", "--fault", "line-sensor-2=0.4")
TRUE_TICKS_PER_METRE = 390 / (2 * 3.14159265 * 0.033)  # the emulator's encoders: 390 counts a turn of a 33 mm wheel


def emulator(tmp_path: Path) -> object:
    """The faulty car, standing on the tape at the start of a small loop (a fresh emulator: the car put back)."""
    built_wrong = tmp_path / "built_wrong.yml"
    built_wrong.write_text("car: {dead_band: 0.12}\n")
    return board_emulator(
        *("--car", str(built_wrong), "--fs", str(tmp_path / "fs"), "--link", str(tmp_path / "board"), *FAULTS),
        *("--vm", "micropython"),  # the firmware on the real MicroPython VM, no fallback
        *("--track", str(SMALL_LOOP)),
        capture_stderr=True,
    )


def run_ir(tmp_path: Path, description: Path, seconds: int) -> str:
    """follow_line_ir on the faulty car for `seconds`; the emulator's summary line."""
    with emulator(tmp_path) as running:  # type: ignore[attr-defined]
        launched = subprocess.run(
            [
                *(sys.executable, "-m", "car", "launch", str(ROOT / "dataflows" / "follow_line_ir.yml")),
                *("--hw", "--port", str(tmp_path / "board"), "--car", str(description)),
                *("--duration", str(seconds), "--out", str(tmp_path / "out")),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert launched.returncode == 0, launched.stderr[-2000:]
        link = re.search(r'"dropped": (\d+)', launched.stderr)
        assert link and link.group(1) == "0", launched.stderr[-2000:]  # every frame over the pty arrived whole
        running.process.terminate()
        _, said = running.process.communicate(timeout=10)
    return str(said)


@pytest.mark.slow
def test_calibration_finds_what_was_built_wrong_and_the_car_then_follows_the_line(tmp_path: Path) -> None:
    description = tmp_path / "car.yml"
    with emulator(tmp_path):
        motors = car("calibrate", "motors", "--port", str(tmp_path / "board"), "--out", str(description), "--json")
    assert motors.returncode == 0, motors.stderr
    said = json.loads(motors.stdout)["said"]
    assert "the left motor is wired backwards: driven reversed from now on (or swap its wires)" in said
    assert "the right encoder is wired backwards: counted reversed (or swap its A and B)" in said
    wheels = load_description(description).wheels
    assert (wheels.left_motor, wheels.right_motor, wheels.left_encoder, wheels.right_encoder) == (-1, 1, 1, -1)
    assert wheels.left_dead_band == pytest.approx(0.12, abs=0.02) == wheels.right_dead_band
    assert wheels.ticks_per_metre == pytest.approx(TRUE_TICKS_PER_METRE, rel=0.05)
    assert any(line.startswith("check: 0.3 m/s asked of both wheels") for line in said)

    with emulator(tmp_path):  # the car put back on the tape
        sensors = car("calibrate", "line-sensors", "--port", str(tmp_path / "board"), "--out", str(description))
    assert sensors.returncode == 0, sensors.stderr
    found = load_description(description)
    assert max(found.sensors.line_floor) < 0.1
    assert found.sensors.line_tape[2] == pytest.approx(0.4, abs=0.1)  # the weak one
    assert min(t for k, t in enumerate(found.sensors.line_tape) if k != 2) > 0.85
    assert found.wheels == wheels  # the motors' section stays

    summary = run_ir(tmp_path, description, 11)
    laps = re.search(r"(\d+) lap\(s\) of small_loop .* max ([\d.]+) mm, ([\d.]+) s off the line", summary)
    assert laps, summary
    assert int(laps.group(1)) >= 1 and float(laps.group(3)) == 0.0
