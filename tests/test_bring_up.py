"""Bringing up a car built wrong, as docs/tutorials/real-car.md does it against the board emulator: the emulator's
car has a motor and an encoder wired backwards and a weak line sensor; the page's calibrations find each, write the
car file every later `--hw` run uses, and the car then laps the tape."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hal.description import load_description
from tests.test_tutorials import TUTORIALS, run_tutorial

TRUE_TICKS_PER_METRE = 390 / (2 * 3.14159265 * 0.033)  # the emulator's encoders: 390 counts a turn of a 33 mm wheel
TRUE_DEAD_BAND = 0.04  # the simulator's car


@pytest.mark.slow
def test_the_real_car_tutorial_finds_what_was_built_wrong_and_the_car_then_follows_the_line(tmp_path: Path) -> None:
    run_tutorial(TUTORIALS / "real-car.md", tmp_path)  # each command as the page has it, against the emulator
    found = load_description(tmp_path / ".config" / "car" / "car.yml")  # what the calibrations wrote
    wheels = found.wheels
    assert (wheels.left_motor, wheels.right_motor, wheels.left_encoder, wheels.right_encoder) == (-1, 1, 1, -1)
    assert wheels.left_dead_band == pytest.approx(TRUE_DEAD_BAND, abs=0.02) == wheels.right_dead_band
    assert wheels.ticks_per_metre == pytest.approx(TRUE_TICKS_PER_METRE, rel=0.05)
    assert max(found.sensors.line_floor) < 0.1
    assert found.sensors.line_tape[2] == pytest.approx(0.4, abs=0.1)  # the weak one
    assert min(t for k, t in enumerate(found.sensors.line_tape) if k != 2) > 0.85
    camera = found.camera  # from the views rendered through the simulator's camera: 12 cm up, pitched down 35 deg
    assert camera.fx > 0 and camera.mount_height == pytest.approx(0.12, abs=0.005)
    assert camera.tilt_deg == pytest.approx(35.0, abs=1.0)
    summary = (tmp_path / "emulator.log").read_text()
    laps = re.search(r"(\d+) lap\(s\) of small_loop .* max ([\d.]+) mm, ([\d.]+) s off the line", summary)
    assert laps, summary
    assert int(laps.group(1)) >= 1 and float(laps.group(3)) == 0.0
