"""The car's safety policy for every pilot: stop when perception is lost or stale, bound the search for a
lost line, stop when off the line, slow and stop for obstacles; and say why, once.

A pilot (the controller, the IR follower, any pilot built later) turns what it perceives
into wheel speeds; `PilotGuard` stands between it and the wheels, so the rules live here
once and not in each pilot:

- **Perception stale or closed.** The pilot declares how fresh its perception must be
  (`PilotLimits.perception_timeout_s`: a few frame periods). With no estimate for longer,
  or once its perception input closes, the wheels stop; fresh estimates (a restarted
  detector) let it drive again, unless `resume` is off.
- **Line lost, or the model unsure.** While the estimates say the line is not in view the
  pilot may search for it, for at most `search_s` seconds and `search_m` metres (said
  once); then it stops until the line is seen again, `FOUND_AFTER` estimates in a row (a
  detection that flickers on a floor without tape does not start the search afresh). A learned pilot says instead whether
  its model is sure of the road (`PilotLimits.lost_reason` is `MODEL_UNSURE`): unsure past
  the same bounds, it stops until the model is sure again.
- **Off the line.** A pilot with a line-sensor bar under the car (`off_line_m` set) stops
  when the bar has seen no tape over that distance, whatever its camera claims (a replayed
  or wrong perception drives the car away from the tape).
- **Obstacles.** The ranger's distance (the median of the last three readings, dropouts
  left out: firmware.brake's filter) caps the speed so that the car can stop `stand_off_m`
  in front of it, slowing at `obstacle_decel`; at the stand-off it stops, and goes on when
  the way is clear again. The board's own brake (firmware.brake) is the last resort below
  this, and car_io's `DriveGuard` a second one (nodes.drive).

Every stop is a `SafetyEvent` (the pilot's `safety` output, its log and status, the run
report, the recording, the live view); so is the start of a search and the resumption.
Times are the car's clock: the sensor readings' `t` (simulated time, or the board's).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from firmware.brake import NO_RANGE, RangeMedian

if TYPE_CHECKING:
    from car import Node

SEARCH_SAID_AFTER_S = 0.1  # a line out of view this long is a search worth saying (not one noisy frame)
FOUND_AFTER = 3  # estimates in a row with the line in view end a search: a flickering detection does not
ACCEL_AFTER_STOP = 3.0  # m/s^2: after a stop the speed the guard lets through comes back no faster than this


class SafetyReason(Enum):
    """Why a pilot or car_io stopped the car (or searched)."""

    PERCEPTION_STALE = "perception_stale"  # no fresh estimate within the pilot's bound
    PERCEPTION_CLOSED = "perception_closed"  # the perception input closed (its node stopped)
    LINE_LOST = "line_lost"  # the line out of view past the search's bounds
    OFF_LINE = "off_line"  # the line sensors saw no tape over the bound
    OBSTACLE = "obstacle"  # something ahead within the stand-off
    NO_COMMAND = "no_command"  # car_io: no command for the dead-man time
    COMMANDS_CLOSED = "commands_closed"  # car_io: the pilot's output closed
    MALFORMED_COMMAND = "malformed_command"  # car_io: a command it could not read
    BOARD_OBSTACLE = "board_obstacle"  # the board's own brake refuses forward motion
    BOARD_LOST = "board_lost"  # car_io: the board stopped answering
    MODEL_UNSURE = "model_unsure"  # a learned pilot's model not sure of the road past the search's bounds


LOST_WHAT = {  # what "not in view" means, in words, for each reason a guard's search can end in
    SafetyReason.LINE_LOST: "the line out of view",
    SafetyReason.MODEL_UNSURE: "the model unsure of the road",
}


class SafetyChange(Enum):
    """What a safety event says happened."""

    STOP = "stop"  # the wheels were stopped for the reason
    SEARCH = "search"  # the line is out of view: searching, within bounds
    RESUME = "resume"  # the reason is gone: driving again


@dataclass(frozen=True)
class SafetyEvent:
    """One stop, search or resumption: what, why, when (s, the car's clock) and in words."""

    change: SafetyChange
    reason: SafetyReason
    t: float
    detail: str

    def message(self) -> dict[str, Any]:
        """The event as the `safety` output carries it."""
        return {"change": self.change.value, "reason": self.reason.value, "t": round(self.t, 4), "detail": self.detail}

    def text(self) -> str:
        """One line for a log or a status."""
        said = {SafetyChange.STOP: "stopped", SafetyChange.SEARCH: "searching", SafetyChange.RESUME: "driving again"}
        return f"{said[self.change]} ({self.reason.value}): {self.detail}"


def safety_event(value: Any) -> SafetyEvent:
    """A `safety` message read back; ValueError names what is wrong with it."""
    if not isinstance(value, dict):
        raise ValueError(f"a safety event is a mapping, not {type(value).__name__}")
    try:
        change, reason = SafetyChange(value.get("change")), SafetyReason(value.get("reason"))
    except ValueError as exc:
        raise ValueError(f"a safety event's change or reason: {exc}") from None
    t, detail = value.get("t"), value.get("detail", "")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or not isinstance(detail, str):
        raise ValueError("a safety event's `t` is a finite number and its `detail` a string")
    return SafetyEvent(change, reason, float(t), detail)


def send_safety(node: Node, events: list[SafetyEvent]) -> None:
    """Say safety events: a line each in the node's log, the latest as its status (`car node list`, `car top`),
    and on its `safety` output when the dataflow declares one (the report, the recording, the live view)."""
    for event in events:
        print(f"{node.id}: {event.text()}", file=sys.stderr, flush=True)
        node.set_status(event.text())
        if "safety" in node.config.outputs:
            node.send_output("safety", event.message())


def obstacle_speed_cap(distance_m: float, stand_off_m: float, decel: float) -> float:
    """The fastest speed (m/s) from which slowing at `decel` stops the car `stand_off_m` short of an obstacle."""
    return math.sqrt(2 * decel * max(0.0, distance_m - stand_off_m))


class RangeFilter:
    """The ranger's distance in metres, filtered as the board's brake filters it (firmware.brake.RangeMedian)."""

    def __init__(self) -> None:
        self.median = RangeMedian()
        self.distance_m: float | None = None  # None: nothing in range (or too few readings yet)

    def update(self, range_m: float | None) -> float | None:
        """Take one reading (m; None for nothing in range, 0 or less for a failed one); the filtered distance."""
        if range_m is None or (math.isinf(range_m) and range_m > 0):
            range_mm = NO_RANGE
        elif not range_m > 0:  # 0, negative or NaN: a failed reading
            range_mm = 0
        else:
            range_mm = max(1, round(min(range_m, (NO_RANGE - 1) / 1000) * 1000))
        if self.median.update(range_mm):
            distance = self.median.distance_mm
            self.distance_m = None if distance >= NO_RANGE else distance / 1000
        return self.distance_m


def slowed(left: float, right: float, cap: float) -> tuple[float, float]:
    """Wheel speeds whose forward speed is at most `cap` (m/s), the arc kept; backing up is left alone."""
    forward = (left + right) / 2
    if forward <= cap:
        return left, right
    if cap <= 0:
        return left - forward, right - forward  # what is left is the turn on the spot, if any
    scale = cap / forward
    return left * scale, right * scale


@dataclass(frozen=True)
class PilotLimits:
    """The bounds a pilot declares (and the defaults every pilot shares)."""

    perception_timeout_s: float  # no fresh estimate for this long: stop (a few of its perception's periods)
    search_s: float = 2.0  # the longest search for a lost line
    search_m: float = 0.35  # ... and the farthest (coasting on the last arc included)
    off_line_m: float | None = 0.5  # the line sensors saw no tape over this distance: stop (None: no bar, or no tape)
    stand_off_m: float = 0.2  # m from the ranger where the car stops for an obstacle
    obstacle_decel: float = 1.5  # m/s^2 the car slows at for an obstacle ahead
    clear_m: float = 0.05  # an obstacle this much beyond the stand-off lets the car go on
    resume: bool = True  # drive again when the cause is gone (perception back, line found, way clear)
    lost_reason: SafetyReason = SafetyReason.LINE_LOST  # what an estimate without the line means (or MODEL_UNSURE)


class SafetyRecord:
    """What both guards keep (`PilotGuard` and car_io's `nodes.drive.DriveGuard`): the stop in force, every stop,
    and the events said since the caller last took them."""

    def __init__(self) -> None:
        self.stopped: SafetyReason | None = None  # why the wheels are held at zero now
        self.stops: list[SafetyEvent] = []  # every stop so far
        self.events: list[SafetyEvent] = []  # new since `take_events`

    def take_events(self) -> list[SafetyEvent]:
        """The events since the last call (to send, log and show)."""
        events, self.events = self.events, []
        return events

    def say(self, event: SafetyEvent) -> None:
        """An event to send; a stop is kept among the stops."""
        self.events.append(event)
        if event.change is SafetyChange.STOP:
            self.stops.append(event)

    def hold(self, reason: SafetyReason, t: float, detail: str) -> None:
        """The wheels stop for `reason` (said when it is a new reason)."""
        if self.stopped is not reason:
            self.stopped = reason
            self.say(SafetyEvent(SafetyChange.STOP, reason, t, detail))

    def release(self, t: float, detail: str) -> None:
        """The stop in force, if any, ends (said)."""
        if self.stopped is not None:
            self.say(SafetyEvent(SafetyChange.RESUME, self.stopped, t, detail))
            self.stopped = None


class PilotGuard(SafetyRecord):
    """The safety policy between a pilot and the wheels; `limit` every command, send `take_events` after."""

    def __init__(self, limits: PilotLimits):
        super().__init__()
        self.limits = limits
        self.ranger = RangeFilter()
        self._perceived_t: float | None = None  # car time of the latest fresh estimate
        self._closed = False
        self._lost_since: float | None = None  # car time the line went out of view
        self._in_view = 0  # estimates in a row with the line in view
        self._lost_m = 0.0  # metres driven since
        self._search_said = False
        self._no_tape_m = 0.0  # metres driven with the line sensors seeing no tape
        self._tape_seen: bool | None = None  # what the line sensors saw last (None: no bar)
        self._clock: float | None = None  # the latest car time seen
        self._measured: float | None = None  # m/s, the car's measured forward speed (None: nothing measures it)
        self._forward = 0.0  # m/s, the forward speed let through last
        self._limited_t: float | None = None  # car time of the last `limit`

    # -- what the pilot tells the guard ----------------------------------------------------------

    def perceived(self, t: float, line_in_view: bool) -> None:
        """The pilot's perception gave a fresh estimate, taken at car time t; whether it has the line."""
        self._advance(t)
        self._perceived_t = t
        self._closed = False
        self._in_view = self._in_view + 1 if line_in_view else 0
        if self._in_view >= FOUND_AFTER or (line_in_view and self._lost_since is None):
            self._lost_since, self._lost_m, self._search_said = None, 0.0, False
        elif not line_in_view and self._lost_since is None:
            self._lost_since = t

    def stale(self, t: float) -> bool:
        """Whether, at car time t, the perception's latest estimate is older than the declared bound (False before
        the first: the car stands still until then, and nothing is said)."""
        return self._perceived_t is not None and t - self._perceived_t > self.limits.perception_timeout_s

    def perception_closed(self) -> None:
        """The perception input closed: nothing fresh will come until it opens again."""
        self._closed = True

    def sensed(self, t: float, speed: float | None, range_m: float | None, tape_seen: bool | None) -> None:
        """A sensor reading at car time t: measured forward speed (m/s; None: the commands stand in for it), the
        ranger's distance (m; None nothing in range, 0 a failed reading) and whether the line sensors see tape
        (None: no bar)."""
        self._advance(t)
        if speed is not None and math.isfinite(speed):
            self._measured = speed
        self._tape_seen = tape_seen
        if tape_seen is not False:
            self._no_tape_m = 0.0
        self.ranger.update(range_m)

    def _advance(self, t: float) -> None:
        """Move the guard's clock to t, counting the metres driven since into a search and a stretch without tape."""
        dt = 0.0 if self._clock is None else max(0.0, t - self._clock)
        self._clock = t if self._clock is None else max(self._clock, t)
        speed = self._measured if self._measured is not None else self._forward
        travelled = abs(speed) * dt
        if self._lost_since is not None:
            self._lost_m += travelled
        if self._tape_seen is False:
            self._no_tape_m += travelled

    # -- the rule book ---------------------------------------------------------------------------

    def _cause(self, t: float) -> tuple[SafetyReason, str] | None:
        """Why the car must stand still now, if it must."""
        limits = self.limits
        if self._closed:
            return SafetyReason.PERCEPTION_CLOSED, "the perception input closed: no estimates will come"
        if self._perceived_t is not None and self.stale(t):
            return (
                SafetyReason.PERCEPTION_STALE,
                f"no fresh estimate for {t - self._perceived_t:.2f} s (bound {limits.perception_timeout_s:g} s)",
            )
        if self._lost_since is not None:
            lost_for = t - self._lost_since
            if lost_for > limits.search_s or self._lost_m > limits.search_m:
                return (
                    limits.lost_reason,
                    f"{LOST_WHAT[limits.lost_reason]} for {lost_for:.2f} s and {self._lost_m:.2f} m "
                    f"(search bound {limits.search_s:g} s, {limits.search_m:g} m)",
                )
        if limits.off_line_m is not None and self._no_tape_m > limits.off_line_m:
            return SafetyReason.OFF_LINE, f"the line sensors saw no tape for {self._no_tape_m:.2f} m"
        distance = self.ranger.distance_m
        if distance is not None:
            held = self.stopped is SafetyReason.OBSTACLE
            if distance <= limits.stand_off_m + (limits.clear_m if held else 0.0):
                return SafetyReason.OBSTACLE, f"an obstacle {distance:.2f} m ahead (stand-off {limits.stand_off_m:g} m)"
        return None

    def limit(self, left: float, right: float, t: float) -> tuple[float, float]:
        """The wheel speeds (m/s) the pilot may command at car time t for the ones it asks for."""
        before, self._limited_t = self._limited_t, t
        self._advance(t)
        if self._perceived_t is None and not self._closed:  # not started: nothing perceived yet
            return 0.0, 0.0
        cause = self._cause(t)
        if cause is None and self.stopped is not None and not self.limits.resume:
            cause = (self.stopped, "held: this pilot does not drive again by itself")
        if cause is not None:
            self.hold(cause[0], t, cause[1])
            self._forward = 0.0
            return 0.0, 0.0
        self.release(t, "the cause is gone")
        if self._lost_since is not None and not self._search_said and t - self._lost_since >= SEARCH_SAID_AFTER_S:
            self._search_said = True
            self.say(
                SafetyEvent(
                    SafetyChange.SEARCH,
                    self.limits.lost_reason,
                    t,
                    f"{LOST_WHAT[self.limits.lost_reason]}: going on for at most {self.limits.search_s:g} s "
                    f"and {self.limits.search_m:g} m",
                )
            )
        cap = math.inf
        distance = self.ranger.distance_m
        if distance is not None:
            cap = obstacle_speed_cap(distance, self.limits.stand_off_m, self.limits.obstacle_decel)
        if before is not None:  # speed comes back gently after a stop
            cap = min(cap, self._forward + ACCEL_AFTER_STOP * max(0.0, t - before))
        left, right = slowed(left, right, cap)
        self._forward = max(0.0, (left + right) / 2)
        return left, right
