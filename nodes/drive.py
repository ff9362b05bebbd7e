"""car_io's drive policy, once for both back ends (the simulator and the board): what a `cmd` becomes on the wheels.

python-can's way: `DriveGuard` implements the decisions once, and each back end
(`nodes.car_io.board`'s loop, `nodes.car_io.sim`'s lockstep) only sets the wheels it says,
on its own clock:

- a command is clamped to `max_wheel_speed`, and its forward speed is
  capped so that the car can stop `stand_off_m` in front of what the ranger sees (a second
  line of defence under the pilot's own, nodes.safety, and above the board's brake);
- a malformed command stops the wheels until a good one comes;
- with no command for `deadman_s` the wheels stop (the dead man's switch), and at once when
  the pilot's output closes;
- the board's own brake (its telemetry's FLAG_OBSTACLE) and a lost board are said too.

Each stop is a `nodes.safety.SafetyEvent`: the back end hands it to `nodes.safety.send_safety`
(log, status, car_io's `safety` output) and keeps it for the run report. Times are the car's
clock (simulated time; on the board, the host's monotonic clock).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from firmware import protocol
from hal.interfaces import SensorReading
from nodes.messages import Malformed, MessageError, wheel_speeds
from nodes.safety import (
    RangeFilter,
    SafetyChange,
    SafetyEvent,
    SafetyReason,
    SafetyRecord,
    obstacle_speed_cap,
    slowed,
)

DEADMAN_S = 0.2
SENSOR_PERIOD_S = 0.010  # both back ends send a sensor reading every 10 ms of car time


@dataclass(frozen=True)
class DriveLimits:
    """car_io's bounds (MAX_WHEEL_SPEED from the environment)."""

    max_wheel_speed: float = 1.0  # m/s, either way
    deadman_s: float = DEADMAN_S  # no command this long: the wheels stop
    stand_off_m: float = 0.12  # m from the ranger: closer, no forward motion (the pilots stop at 0.2)
    obstacle_decel: float = 2.0  # m/s^2, the slowing the cap plans for

    @classmethod
    def from_env(cls) -> DriveLimits:
        """The limits, with MAX_WHEEL_SPEED taken from the environment when given."""
        text = os.environ.get("MAX_WHEEL_SPEED")
        return cls(max_wheel_speed=float(text)) if text else cls()


def clamp(value: float, limit: float) -> float:
    """A wheel command within +-limit (a command is finite: nodes.messages.wheel_speeds sees to that)."""
    return max(-limit, min(limit, value))


class DriveGuard(SafetyRecord):
    """What the wheels get from the commands, the sensors and the clock; stops are kept as events."""

    def __init__(self, limits: DriveLimits | None = None, node: str = "car_io"):
        super().__init__()
        self.limits = limits or DriveLimits()
        self.wheels = (0.0, 0.0)  # what the wheels are told now, m/s
        self.last_command_t: float | None = None  # car time of the latest good command
        self.ranger = RangeFilter()
        self.malformed = Malformed(node)
        self._board_braking = False

    def _stop(self, reason: SafetyReason, t: float, detail: str) -> tuple[float, float]:
        self.wheels = (0.0, 0.0)
        self.hold(reason, t, detail)
        return self.wheels

    def command(self, value: Any, t: float) -> tuple[float, float]:
        """A `cmd` message at car time t: the wheel speeds to set now (both 0 for a malformed one)."""
        try:
            speeds = wheel_speeds(value)
        except MessageError as exc:
            self.malformed.report("cmd", exc, "stopped the wheels on")
            return self._stop(SafetyReason.MALFORMED_COMMAND, t, f"a malformed command: {exc}")
        if self.stopped is SafetyReason.BOARD_LOST:  # nothing reaches the board until it is back
            return self.wheels
        limit = self.limits.max_wheel_speed
        left, right = clamp(speeds.left, limit), clamp(speeds.right, limit)
        distance = self.ranger.distance_m
        if distance is not None:
            left, right = slowed(
                left, right, obstacle_speed_cap(distance, self.limits.stand_off_m, self.limits.obstacle_decel)
            )
        self.last_command_t = t
        self.release(t, "good commands again")
        self.wheels = (left, right)
        return self.wheels

    def commands_closed(self, t: float) -> tuple[float, float]:
        """The pilot's output closed: the wheels stop."""
        since = "" if self.last_command_t is None else f"no command since t={self.last_command_t:.3f} s; "
        return self._stop(SafetyReason.COMMANDS_CLOSED, t, f"commands closed: {since}wheels stopped at t={t:.3f} s")

    def expired(self, t: float) -> bool:
        """Whether the dead man's switch stops the wheels at car time t (True once, when it does)."""
        if self.stopped is not None or self.last_command_t is None or t - self.last_command_t <= self.limits.deadman_s:
            return False
        self._stop(
            SafetyReason.NO_COMMAND,
            t,
            f"dead-man: no command since t={self.last_command_t:.3f} s; wheels stopped at t={t:.3f} s",
        )
        return True

    def sensed(self, reading: SensorReading, t: float, board_flags: int = 0) -> None:
        """A sensor reading, at car time t: the ranger for the cap; the board's own brake (its telemetry's flags), said."""
        self.ranger.update(reading.range_m)
        braking = bool(board_flags & protocol.FLAG_OBSTACLE)
        if braking != self._board_braking:
            self._board_braking = braking
            change = SafetyChange.STOP if braking else SafetyChange.RESUME
            distance = "nothing in range" if reading.range_m is None else f"{reading.range_m:.2f} m"
            self.say(SafetyEvent(change, SafetyReason.BOARD_OBSTACLE, t, f"the board's brake; ranger {distance}"))

    def board_lost(self, t: float, detail: str) -> None:
        """The board stopped answering (its own watchdog stops the motors): said as a stop."""
        self._stop(SafetyReason.BOARD_LOST, t, detail)

    def board_back(self, t: float) -> None:
        """The board answers again: the next good command drives."""
        if self.stopped is SafetyReason.BOARD_LOST:
            self.release(t, "the board answers again")
            self.wheels = (0.0, 0.0)
            self.last_command_t = None  # the dead man's switch waits for the next command

    def status(self) -> str:
        """The stop in force, in words ("" while the wheels obey the commands)."""
        return self.stops[-1].text() if self.stopped is not None and self.stops else ""
