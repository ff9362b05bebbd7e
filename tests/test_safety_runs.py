"""The car never runs away, end to end: real `car launch` runs in the simulator, a real replay, and the firmware on
the MicroPython VM. The decisions themselves are tested in process in test_safety_policy.py."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from car.transport import control
from firmware import board_pico
from firmware import protocol as p
from hal.board_client import BoardClient
from sim.board_vm import VmUnavailable, find_micropython
from tests.helpers import ROOT, board_emulator, car, launched, read_recording, run_status, wait_until

FLOW = ROOT / "dataflows" / "follow_line.yml"
FIXTURES = ROOT / "tests" / "fixtures" / "tracks"
STOP_WITHIN_M = 0.5  # a safety stop brings the car to a standstill within this distance
NEAR_THE_LINE_M = 0.5


def rows(name: str) -> dict[str, control.NodeRow]:
    """The run's nodes as the daemon shows them (state, pid, status)."""
    return {n.id: n for n in run_status(name).nodes}


def car_time(name: str) -> float:
    """The simulated clock car_io shows in its status (0 before the first status)."""
    clock = re.match(r"t ([\d.]+) s", rows(name)["car_io"].status)
    return float(clock.group(1)) if clock else 0.0


def said(log: Path, text: str, times: int) -> Callable[[], bool]:
    """Whether the node's log has said `text` `times` times (a status may change before anyone looks)."""
    return lambda: log.is_file() and log.read_text().count(text) >= times


def drove_on(name: str, seconds: float) -> Callable[[], bool]:
    start = car_time(name)
    return lambda: car_time(name) >= start + seconds


def assert_stopped_in_time(report: dict[str, Any], reasons: list[str]) -> list[dict[str, Any]]:
    """The report's stops are these, and after each the car moved at most STOP_WITHIN_M (to a standstill, or
    until the stop ended: a detector back within a few frames)."""
    stops: list[dict[str, Any]] = report["safety_stops"]
    assert [s["reason"] for s in stops] == reasons, stops
    for stop in stops:
        assert stop["moved_m"] is not None and stop["moved_m"] <= STOP_WITHIN_M, stop
    assert report["cross_track_max_m"] <= NEAR_THE_LINE_M, report  # type: ignore[operator]
    return stops


@pytest.mark.slow
def test_a_detector_killed_restarted_and_stopped_while_the_car_drives(tmp_path: Path) -> None:
    name = f"safety-{os.getpid()}"
    report_file = tmp_path / "report.json"
    options = ("--headless", "--sim-time", "120", "--report", str(report_file))
    log = tmp_path / "out" / name / "controller.log"
    with launched(FLOW, name, ("car_io", "line_detector", "controller"), tmp_path, *options):
        wait_until("the car driving for a second", lambda: car_time(name) >= 1.0)
        os.kill(rows(name)["line_detector"].pid, signal.SIGKILL)
        wait_until("the car stopped for stale perception", said(log, "stopped (perception_stale)", 1))
        wait_until("the restarted detector's lines driving it again", said(log, "driving again", 1))
        wait_until("two seconds of driving", drove_on(name, 2.0))
        told = car("param", "set", "controller", "resume_after_stop", "false", "-d", name)
        assert told.returncode == 0, told.stderr
        restarted = car("node", "restart", "line_detector", "-d", name)
        assert restarted.returncode == 0, restarted.stderr
        wait_until("the car stopped again", said(log, "stopped (perception_stale)", 2))
        wait_until("the detector back, and two seconds more", drove_on(name, 2.0))
        assert log.read_text().count("driving again") == 1  # told to stay stopped: it did
        told = car("param", "set", "controller", "resume_after_stop", "true", "-d", name)
        assert told.returncode == 0, told.stderr
        wait_until("driving again once allowed", said(log, "driving again", 2))
        wait_until("two seconds of driving", drove_on(name, 2.0))
        stopped = car("node", "stop", "line_detector", "-d", name)
        assert stopped.returncode == 0, stopped.stderr
        wait_until("the car stopped: perception closed", said(log, "stopped (perception_closed)", 1))
        wait_until("the car standing for a second", drove_on(name, 1.0))
        wait_until(
            "the stop in the controller's status", lambda: "perception_closed" in rows(name)["controller"].status
        )
        info = car("node", "info", "controller", "-d", name)
        assert "Status: stopped (perception_closed)" in info.stdout, info.stdout
    report = json.loads(report_file.read_text())
    stops = assert_stopped_in_time(report, ["perception_stale", "perception_stale", "perception_closed"])
    kill, restart, stop = (float(s["odometer_m"]) for s in stops)  # type: ignore[arg-type]
    assert restart - kill > 0.5 and stop - restart > 0.5  # it drove on after each restart
    assert report["final_speed_mps"] == 0.0 and report["distance_m"] - stop <= STOP_WITHIN_M
    assert log.read_text().count("stopped (perception_closed)") == 1  # said once


@pytest.mark.slow
def test_a_replay_whose_recording_ends_stops_the_car(tmp_path: Path) -> None:
    recording = tmp_path / "drive.mcap"
    made = car(
        "launch",
        str(FLOW),
        "--headless",
        "--sim-time",
        "3",
        "--record",
        str(recording),
        "--out",
        str(tmp_path / "out"),
        timeout=120,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    report_file = tmp_path / "replay.json"
    args = ["replay", str(recording), "--replace", "line_detector", "--headless", "--sim-time", "8"]
    replayed = car(
        *args,
        "--report",
        str(report_file),
        "--record",
        str(tmp_path / "replay.mcap"),
        "--out",
        str(tmp_path / "out"),
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    report = json.loads(report_file.read_text())
    stops: list[dict[str, object]] = report["safety_stops"]
    assert stops and stops[-1]["reason"] == "perception_closed", stops
    assert_stopped_in_time(report, [str(s["reason"]) for s in stops])
    assert report["final_speed_mps"] == 0.0
    events = read_recording(tmp_path / "replay.mcap").get("controller/safety", [])  # recorded like any output
    assert any(value["reason"] == "perception_closed" for _, value, _ in events), events  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.parametrize("track", ["oval_box", str(FIXTURES / "s_curves_box.yml")], ids=["oval_box", "s_curves_box"])
def test_the_car_stops_short_of_a_box_on_the_line_and_waits(tmp_path: Path, track: str) -> None:
    report_file = tmp_path / "box.json"
    args = ["launch", str(FLOW), "--track", track, "--sim-time", "12", "--realtime-factor", "0", "--headless"]
    result = car(*args, "--report", str(report_file), "--out", str(tmp_path / "out"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert report["collisions"] == 0, report
    assert 0.03 <= report["min_obstacle_distance_m"] <= 0.3, report  # stopped short, and close
    stops = assert_stopped_in_time(report, ["obstacle"])
    assert float(stops[0]["t"]) < 8.0 and report["final_speed_mps"] == 0.0  # then waited, seconds on end
    assert report["distance_m"] - float(stops[0]["odometer_m"]) <= STOP_WITHIN_M
    assert "controller: stopped (obstacle): an obstacle" in result.stderr


def test_the_firmware_stops_for_a_box_by_itself_with_the_host_link_frozen(tmp_path: Path) -> None:
    """A straight at whose end stands a box; one command to drive, then the host sends nothing more."""
    try:
        find_micropython()
    except VmUnavailable as exc:
        pytest.skip(f"the MicroPython VM cannot run here: {exc}")
    track = tmp_path / "wall.yml"
    track.write_text(
        "closed: false\nsegments:\n  - straight: 3.0\nobstacles:\n  - {x: 1.2, y: 0, width: 0.1, depth: 0.4}\n"
    )
    stats = tmp_path / "stats.json"
    with (
        board_emulator("--track", str(track), "--vm", "micropython", "--stats", str(stats)) as emulator,
        BoardClient(emulator.port) as board,
    ):
        kp, ki, kd, _ = board_pico.PID_GAINS  # a watchdog long enough for the host's silence to matter
        board.request(p.CONFIG, 5000, 100, kp, ki, kd, board_pico.PIN_MAP_VERSION)
        board.set_wheel_speeds(0.7, 0.7)  # the last word from the host
        wait_until("the board's brake", lambda: bool(board.flags & p.FLAG_OBSTACLE), timeout=30)
        wait_until(
            "the car standing",
            lambda: (r := board.latest()) is not None and max(abs(v) for v in r.wheel_speeds) < 0.01,
            timeout=30,
        )
        reading = board.latest()
        assert reading is not None and reading.range_m is not None and reading.range_m < 0.2
    figures = json.loads(stats.read_text())["run"]
    assert figures["collisions"] == 0 and 0.0 < figures["min_obstacle_distance_m"] < 0.15, figures
    assert figures["distance_m"] > 0.8  # it drove up to the box on its one command
