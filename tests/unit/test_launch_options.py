"""The smart car's `car launch` options, in-process: which car description a run gets, what it warns of."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from car.spec.loader import load_dataflow
from hal.description import DEFAULT_FILE, user_file
from nodes.launch_options import OPTIONS

ROOT = Path(__file__).resolve().parent.parent.parent


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    OPTIONS.add_arguments(parser.add_argument_group("smartcar"))
    return parser.parse_args(list(argv))


@pytest.fixture
def calibrated() -> Path:
    """A user's car file, as `car calibrate` writes it (the test's own $XDG_CONFIG_HOME: tests/conftest.py)."""
    path = user_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("car: {wheel_base: 0.17}\n")
    return path


def test_a_simulated_run_keeps_the_simulators_car_whatever_was_calibrated(calibrated: Path) -> None:
    assert OPTIONS.environment(parsed("--sim"))["CAR_DESCRIPTION"] == str(DEFAULT_FILE)
    assert OPTIONS.environment(parsed())["CAR_DESCRIPTION"] == str(DEFAULT_FILE)


def test_a_run_on_the_real_car_takes_what_was_calibrated(calibrated: Path) -> None:
    assert OPTIONS.environment(parsed("--hw", "--port", "/dev/ttyACM0"))["CAR_DESCRIPTION"] == str(calibrated)


def test_a_named_car_file_wins_over_both(calibrated: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.yml"
    mine.write_text("car: {wheel_base: 0.18}\n")
    for backend in (["--sim"], ["--hw", "--port", "p"]):
        assert OPTIONS.environment(parsed(*backend, "--car", str(mine)))["CAR_DESCRIPTION"] == str(mine.resolve())


def test_the_real_car_without_a_camera_is_warned_of_only_for_a_graph_that_reads_frames() -> None:
    args = parsed("--hw", "--port", "/dev/ttyACM0")
    by_camera = OPTIONS.warnings(args, load_dataflow(ROOT / "dataflows" / "follow_line.yml"))
    by_sensors = OPTIONS.warnings(args, load_dataflow(ROOT / "dataflows" / "follow_line_ir.yml"))
    assert len(by_camera) == 1 and "--hw without --camera" in by_camera[0]
    assert by_sensors == []
    with_camera = parsed("--hw", "--port", "/dev/ttyACM0", "--camera", "0")
    assert OPTIONS.warnings(with_camera, load_dataflow(ROOT / "dataflows" / "follow_line.yml")) == []
