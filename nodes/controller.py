"""Controller: wheel speeds from the detected line.

Steering is pure pursuit: aim at the point of the detected line `lookahead` metres
ahead of the axle and drive the circle arc that reaches it (curvature 2y / d^2). Pure
pursuit is chosen over a PID on offset and heading because the detector already gives
the line's shape ahead in metres: the arc uses that shape directly, curves are followed
without a tuned derivative term, and its single gain (the look-ahead distance) has a
physical meaning that scales with speed.

Speed is scheduled by the curvature ahead (quadratically: tight bends slow the car much more than gentle ones) and the detector's confidence, and both speed
and curvature changes are rate-limited so commands stay smooth. When the line is lost
the car keeps its last arc briefly, then creeps and turns toward the side it was last
seen on; the safety guard (nodes.safety, through nodes.pilot) bounds that search in time
and distance and stops the car, as it does when the detector's estimates stop coming
(stale: five frame periods), its output closes, the sensor bar has seen no tape for half
a metre, or an obstacle is ahead.

The camera cannot see the first ~12 cm in front of the axle, which is where a 0.2 m
hairpin happens. The line-sensor array sees exactly there, so when the camera reports a
bend tighter than `near_bend` (or loses the line), the car steers by the sensor bar, at
most at `near_speed`, while the camera keeps scheduling the speed: sensor fusion by
whichever sensor sees the part of the line that matters.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from hal.description import CarParams, SensorParams, load_description
from nodes.line_detector import LineEstimate
from nodes.messages import Malformed, MessageError, line_estimate, sensor_bar
from nodes.safety import PilotLimits

STALE_FRAMES = 5  # camera frame periods without a line estimate before the car stops

FLOOR_LEVEL = 0.3  # line-sensor readings below this are bare floor
FOUND_LEVEL = 0.5  # the tape is under the bar when one sensor reads at least this


@dataclass(frozen=True)
class ControllerParams:
    """Tuning of the line follower."""

    max_speed: float = 1.0  # m/s on a straight
    min_speed: float = 0.3  # m/s in the tightest bend
    # tuned by bench/lap_sweep.py over the shipped tracks, checked on tracks it never saw (bench/README.md)
    slowdown: float = 0.03  # speed = max / (1 + slowdown |k| + slowdown_sq k^2), k the curvature ahead
    slowdown_sq: float = 0.023  # gentle bends at nearly full speed, tight ones slowly
    lookahead: float = 0.15  # m, at min speed
    lookahead_per_speed: float = 0.05  # m more per m/s
    lookahead_bend: float = 0.05  # look-ahead / (1 + this x |curvature|): cut tight bends less
    accel: float = 2.5  # m/s^2, speeding up
    decel: float = 4.0  # m/s^2, slowing down
    max_curvature_rate: float = 80.0  # 1/m per second
    coast_time: float = 0.25  # s on the last arc after losing the line
    search_speed: float = 0.06  # m/s while searching: nearly a pivot
    search_curvature: float = 15.0  # 1/m toward the side the line was last seen (the guard bounds the search)
    min_confidence: float = 0.25
    unsure_slowdown: float = 0.25  # share of the speed given up as the camera's confidence goes to 0
    near_bend: float = 3.0  # 1/m: in tighter bends, or without the camera's line, steer by the sensor bar
    near_speed: float = 0.75  # m/s, at most, while steering by the sensor bar
    near_confidence: float = 0.5  # camera estimates less sure than this defer to the sensor bar


# What `car param` may tune while the car drives (Node.declare_parameter): field -> (range, description).
TUNABLE: dict[str, tuple[tuple[float, float], str]] = {
    "max_speed": ((0.0, 3.0), "m/s on a straight"),
    "min_speed": ((0.0, 2.0), "m/s in the tightest bend"),
    "lookahead": ((0.05, 1.0), "m ahead of the axle the car aims at, at min speed"),
    "lookahead_per_speed": ((0.0, 1.0), "m more look-ahead per m/s"),
    "slowdown": ((0.0, 1.0), "how much bends slow the car, in proportion to their curvature"),
    "slowdown_sq": ((0.0, 1.0), "how much tight bends slow the car"),
    "accel": ((0.1, 10.0), "m/s^2 speeding up"),
    "max_curvature_rate": ((1.0, 500.0), "1/m per s: how fast the steering may change"),
    "near_speed": ((0.0, 2.0), "m/s, at most, while steering by the sensor bar"),
    "near_bend": ((0.5, 20.0), "1/m: in tighter bends the sensor bar steers"),
    "unsure_slowdown": ((0.0, 1.0), "share of the speed given up as the camera's confidence goes to 0"),
}


# the sensor bar alone: its distance ahead of the axle is the look-ahead
BAR_PARAMS = ControllerParams(
    max_speed=0.45,
    min_speed=0.25,
    slowdown=0.0,
    slowdown_sq=0.004,
    lookahead=SensorParams().line_sensor_forward,
    lookahead_per_speed=0.0,
    lookahead_bend=0.0,
    max_curvature_rate=200.0,
    accel=1.5,
    coast_time=0.1,
)


def params_from_env(env: Mapping[str, str]) -> ControllerParams:
    """The tuning, with any TUNABLE field given in the environment by its name in capitals (MAX_SPEED=0.8,
    LOOKAHEAD=0.2: a dataflow's `env:`, or `bench/lap_sweep.py`); ValueError names a bad one."""
    given = {}
    for name in TUNABLE:
        text = env.get(name.upper())
        if text is not None:
            try:
                given[name] = float(text)
            except ValueError:
                raise ValueError(f"{name.upper()}={text!r}: not a number") from None
    return replace(ControllerParams(), **given)


def bar_estimate(values: Sequence[float], spacing: float = SensorParams().line_sensor_spacing) -> LineEstimate:
    """Where the tape is under the line-sensor bar (left positive), as a line estimate.

    The darkness-weighted mean of the sensors' lateral positions; readings below
    FLOOR_LEVEL count as bare floor.
    """
    if not values or max(values) < FOUND_LEVEL:
        return LineEstimate(found=False)
    half = (len(values) - 1) / 2
    weights = [max(0.0, v - FLOOR_LEVEL) for v in values]
    position = sum(w * (half - k) * spacing for k, w in enumerate(weights)) / sum(weights)
    return LineEstimate(found=True, offset=position, confidence=1.0)


class LineFollower:
    """Turns line estimates into wheel speeds (m/s); call `update` once per estimate."""

    def __init__(
        self,
        params: ControllerParams | None = None,
        wheel_base: float = CarParams().wheel_base,
        bar_lookahead: float = SensorParams().line_sensor_forward,
    ):
        """`wheel_base` and `bar_lookahead` (the line-sensor bar's distance ahead of the axle) from the car description."""
        self.params = params or ControllerParams()
        self.wheel_base = wheel_base
        self.bar_lookahead = bar_lookahead
        self.speed = 0.0
        self.curvature = 0.0
        self._last_t: float | None = None
        self._last_seen_t = 0.0
        self._last_side = 0.0
        self._bar: LineFollower | None = None  # steering by the line-sensor bar, when given

    def update(self, line: LineEstimate, t: float, bar: LineEstimate | None = None) -> tuple[float, float]:
        """Wheel speed set-points (left, right) for an estimate taken at time t (s).

        `bar`, the line-sensor array's estimate at the same time, steers in tight bends.
        """
        left, right = self._follow(line, t)
        if bar is None:
            return left, right
        if self._bar is None:
            bar_params = replace(BAR_PARAMS, max_speed=1.0, min_speed=0.3, lookahead=self.bar_lookahead)
            self._bar = LineFollower(bar_params, self.wheel_base, self.bar_lookahead)
        self._bar.update(bar, t)
        p = self.params
        camera_unsure = not line.found or line.confidence < p.near_confidence or abs(line.curvature) > p.near_bend
        if not (bar.found and camera_unsure):
            return left, right
        self.speed = min(self.speed, p.near_speed)
        half = self._bar.curvature * self.wheel_base / 2
        return self.speed * (1 - half), self.speed * (1 + half)

    def _follow(self, line: LineEstimate, t: float) -> tuple[float, float]:
        p = self.params
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        if line.found and line.confidence >= p.min_confidence:
            self._last_seen_t = t
            ahead = (p.lookahead + p.lookahead_per_speed * self.speed) / (1 + p.lookahead_bend * abs(line.curvature))
            lateral = line.lateral_at(ahead)
            self._last_side = math.copysign(1.0, lateral) if abs(lateral) > 0.005 else self._last_side
            target_curvature = 2 * lateral / (ahead * ahead + lateral * lateral)
            bend = max(abs(line.curvature), abs(target_curvature))
            target_speed = max(p.min_speed, p.max_speed / (1 + p.slowdown * bend + p.slowdown_sq * bend * bend))
            target_speed *= 1.0 - p.unsure_slowdown * (1.0 - line.confidence)
        else:
            lost_for = t - self._last_seen_t
            if lost_for < p.coast_time:
                target_curvature, target_speed = self.curvature, max(p.search_speed, self.speed * 0.7)
            else:
                target_curvature, target_speed = p.search_curvature * self._last_side, p.search_speed
        step = p.max_curvature_rate * dt if dt else math.inf
        self.curvature += max(-step, min(step, target_curvature - self.curvature))
        rate = (p.accel if target_speed > self.speed else p.decel) * dt if dt else math.inf
        self.speed += max(-rate, min(rate, target_speed - self.speed))
        half = self.curvature * self.wheel_base / 2
        return self.speed * (1 - half), self.speed * (1 + half)


def main() -> None:
    """The node: `line` and `sensors` in, `cmd` out ({"left": m/s, "right": m/s}, the metadata passed through),
    `safety` out (nodes.safety's events).

    With `sensors` wired in, it answers every reading (100 Hz); a reading that follows a
    camera frame waits for that frame's line while the estimates are fresh, so a simulated
    run stays reproducible. Without `sensors`, it answers every line (the camera's rate).
    """
    from car import Node
    from nodes.pilot import Pilot

    params = params_from_env(os.environ)
    car = load_description()
    follower = LineFollower(params, car.car.wheel_base, car.sensors.line_sensor_forward)
    spacing = car.sensors.line_sensor_spacing
    line = LineEstimate(found=False)
    waiting: tuple[float, LineEstimate, dict[str, object]] | None = None  # a reading waiting for its frame's line
    line_frame: object = None  # the frame of the latest line (a line can arrive before its frame's reading)

    node = Node()
    with_bar = "sensors" in node.config.inputs
    pilot = Pilot(node, PilotLimits(STALE_FRAMES / car.camera.fps, off_line_m=0.5 if with_bar else None))

    def answer(t: float, bar: LineEstimate | None, metadata: dict[str, object]) -> None:
        left, right = follower.update(line, t, bar)
        pilot.drive(left, right, t, metadata)

    malformed = Malformed("controller")
    for name, (bounds, description) in TUNABLE.items():
        value = node.declare_parameter(name, float(getattr(params, name)), description, bounds)
        follower.params = replace(follower.params, **{name: value})
    for event in node:
        if event.type == "PARAMETER":
            if not pilot.parameter(event.id, event.value):  # `car param set controller NAME VALUE`
                follower.params = replace(follower.params, **{event.id: event.value})
            continue
        if event.type == "INPUT_CLOSED" and event.id == "line":
            pilot.guard.perception_closed()  # the next reading's answer stops the car and says why
            if not with_bar:  # no reading will come: said now
                pilot.drive(0.0, 0.0, pilot.clock)
            continue
        if event.type != "INPUT":
            continue
        if event.id == "sensors":  # 100 Hz: steer with the latest line and this reading's sensor bar
            try:
                bar = sensor_bar(event.value)
            except MessageError as exc:
                malformed.report("sensors", exc)
                continue
            reading = (bar.t, bar_estimate(bar.line, spacing), event.metadata)
            pilot.sense(bar, reading[1].found)
            frame_line_came = event.metadata.get("frame") == line_frame  # it may overtake the reading
            if event.metadata.get("image") and not frame_line_came and not pilot.guard.stale(bar.t):
                waiting = reading  # a camera frame went out just before: answer with its line
            else:
                waiting = None  # a frame whose line never came is not waited for any longer
                answer(*reading)
        elif event.id == "line":
            line_frame = event.metadata.get("frame")
            for_waiting = waiting is not None and waiting[2].get("frame") == line_frame
            try:
                line = line_estimate(event.value)
            except MessageError as exc:
                malformed.report("line", exc)
                if waiting is not None and for_waiting:  # answered with the last good line
                    answer(*waiting)
                    waiting = None
                continue
            if with_bar:  # the estimate is as fresh as the reading its frame went out with
                seen = waiting[0] if waiting is not None and for_waiting else pilot.clock
            else:
                seen = float(event.metadata.get("t_sim", event.timestamp.wall_ns / 1e9 if event.timestamp else 0.0))
            pilot.guard.perceived(seen, line.found and line.confidence >= follower.params.min_confidence)
            if waiting is not None and for_waiting:
                answer(*waiting)
                waiting = None
            elif not with_bar:  # camera only: one command per frame
                answer(seen, None, event.metadata)


if __name__ == "__main__":
    main()
