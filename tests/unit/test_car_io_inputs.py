"""car_io's inputs, handled once for both back ends, in-process: commands through the drive policy, the status
line, the pilot's safety events."""

from __future__ import annotations

from typing import Any

import pytest

from car.node.event import Event
from nodes.car_io.inputs import Command, Ended, Inputs
from nodes.car_io.sim import Pacing
from nodes.drive import DriveGuard, DriveLimits
from nodes.messages import Observation
from nodes.safety import SafetyChange, SafetyEvent, SafetyReason


class StatusLine:
    """Stands in for the node: only its status line is used."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def set_status(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture
def inputs() -> Any:
    node = StatusLine()
    said: list[tuple[str, SafetyEvent]] = []
    guard = DriveGuard(DriveLimits(max_wheel_speed=1.0))
    status: list[str | None] = ["lap 1"]
    handled = Inputs(node, guard, lambda: status[0], lambda source, event: said.append((source, event)))  # type: ignore[arg-type]
    return handled, node, said, status


def test_a_command_is_clamped_by_the_drive_policy_and_keeps_the_frame_it_answers(inputs: Any) -> None:
    handled, *_ = inputs
    taken = handled.take(Event("INPUT", "cmd", {"left": 3.0, "right": 0.2}, {"frame": 7}), 1.0)
    assert taken == Command(1.0, 0.2, frame=7)
    assert handled.take(Event("INPUT", "cmd", {"left": 0.1, "right": 0.1}), 1.1) == Command(0.1, 0.1)


def test_a_malformed_command_or_the_pilot_gone_stops_the_wheels(inputs: Any) -> None:
    handled, *_ = inputs
    assert handled.take(Event("INPUT", "cmd", {"left": "fast"}), 1.0) == Command(0.0, 0.0)
    assert handled.take(Event("INPUT_CLOSED", "cmd"), 2.0) == Command(0.0, 0.0, closed=True)
    assert "commands closed" in handled.guard.status()


def test_stop_ends_and_other_events_are_nothing_for_the_back_end(inputs: Any) -> None:
    handled, node, said, _ = inputs
    assert handled.take(Event("STOP", "MANUAL"), 0.0) is Ended.STOP
    assert handled.take(Event("INPUT_CLOSED", "tick"), 0.0) is None
    assert handled.take(Event("INPUT", "unknown", 1), 0.0) is None
    assert node.lines == [] and said == []


def test_a_tick_refreshes_the_status_unless_the_back_end_says_leave_it(inputs: Any) -> None:
    handled, node, _, status = inputs
    handled.take(Event("INPUT", "tick", 1), 0.0)
    status[0] = None  # a lost board's status is its own
    handled.take(Event("INPUT", "tick", 2), 0.0)
    assert node.lines == ["lap 1"]


def test_a_pilots_safety_events_are_read_with_who_said_them_and_bad_ones_ignored(
    inputs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    handled, _, said, _ = inputs
    event = SafetyEvent(SafetyChange.STOP, SafetyReason.OBSTACLE, 3.5, "a box 0.2 m ahead")
    handled.take(Event("INPUT", "safety", event.message(), source="controller/safety"), 3.5)
    handled.take(Event("INPUT", "safety", {"change": "exploded"}, source="controller/safety"), 3.6)
    assert said == [("controller", event)]
    assert "ignored a `safety` message" in capsys.readouterr().err


def test_a_command_says_which_observation_it_answers_and_so_how_the_pilot_is_paced(inputs: Any) -> None:
    handled, *_ = inputs
    pacing = Pacing()
    assert pacing.waits(with_image=True) and not pacing.waits(with_image=False)  # until told: frames only
    reading = handled.take(
        Event("INPUT", "cmd", {"left": 0.2, "right": 0.2}, {"frame": 3, "observation": "sensors"}), 0
    )
    assert reading == Command(0.2, 0.2, frame=3, observation=Observation.SENSORS)
    pacing.answered(reading)
    assert pacing.waits(with_image=False)  # a pilot answering every reading is waited for every cycle
    frame = handled.take(Event("INPUT", "cmd", {"left": 0.2, "right": 0.2}, {"frame": 6, "observation": "image"}), 0)
    pacing.answered(frame)
    assert not pacing.waits(with_image=False) and pacing.waits(with_image=True)  # one answering frames: frame cycles
    pacing.answered(Command(0.1, 0.1))  # free-running (teleop): says nothing about the pilot's pace
    assert not pacing.waits(with_image=False)
    pacing.answered(Command(0.1, 0.1, frame=9, observation=Observation.POSE))  # the simulator's expert: every cycle
    assert pacing.waits(with_image=False)
    pacing.missed(12)  # the pilot went silent: no cycle is waited for until it answers again
    assert not pacing.waits(with_image=True)
    pacing.answered(Command(0.1, 0.1))  # a free-running command is no answer
    assert not pacing.waits(with_image=True)
    pacing.answered(Command(0.1, 0.1, frame=15, observation=Observation.IMAGE))
    assert pacing.waits(with_image=True)
    pacing.missed(18)
    assert (pacing.misses, pacing.first_miss) == (2, 12)


def test_an_unknown_observation_in_the_metadata_is_not_guessed() -> None:
    assert Observation.of({"observation": "lidar"}) is None
    assert Observation.of({}) is None
    assert Observation.of({"observation": "image"}) is Observation.IMAGE
