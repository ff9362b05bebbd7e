"""The messages the car's nodes pass each other, written in one place and read with a clear error when one is
not what it should be.

A node's input can be fed by hand (`car topic pub`), by a replay or by another team's
node: a message without a field, or with a string for a number, must not end the node
with a KeyError. Each reader here returns a typed record or raises `MessageError`
saying what is wrong; `Malformed` tells the node's log about the first few and counts
the rest, so a stream of bad messages does not flood it.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hal.interfaces import SensorReading
from nodes.line_detector import LineEstimate


class MessageError(ValueError):
    """A message that is not what its input takes; the text says which field and what it should be."""


OBSERVATION_KEY = "observation"  # the metadata field naming which of car_io's outputs carried an observation
FRAME_KEY = "frame"  # ... and which of its 10 ms cycles it belongs to


class Observation(Enum):
    """Which of car_io's outputs an observation went out on; a command passes its metadata back, and so says which it
    answers."""

    IMAGE = "image"  # a camera frame, in the cycles where one falls due (30 a second)
    SENSORS = "sensors"  # a sensor reading, every cycle
    POSE = "pose"  # the simulator's ground truth, every cycle (for the simulator's expert only)

    @property
    def every_cycle(self) -> bool:
        """Whether car_io sends one of these in every 10 ms cycle (else only when a camera frame falls due)."""
        return self is not Observation.IMAGE

    @classmethod
    def of(cls, metadata: dict[str, Any]) -> Observation | None:
        """The observation a command's metadata says it answers (None: free-running, or not said)."""
        try:
            return cls(metadata.get(OBSERVATION_KEY))
        except ValueError:
            return None


@dataclass(frozen=True)
class WheelSpeeds:
    """A `cmd` message: each wheel's speed (m/s, forward positive)."""

    left: float
    right: float


@dataclass(frozen=True)
class SensorBar:
    """A `sensors` message's part the pilots use: its time (s), the line sensors' readings, the measured forward
    speed (m/s, None when the message has no wheel speeds) and the ranger's distance (m; None: nothing in range;
    0: a failed reading, as anything that is not a number reads)."""

    t: float
    line: list[float]
    speed: float | None = None
    range_m: float | None = None


def _number(value: Any, name: str) -> float:
    if not isinstance(value, dict) or name not in value:
        raise MessageError(f"no field `{name}` (got {_shown(value)})")
    item = value[name]
    if not _finite(item):
        raise MessageError(f"`{name}` should be a finite number, not {_shown(item)}")
    return float(item)


def _finite(item: Any) -> bool:
    return isinstance(item, int | float) and not isinstance(item, bool) and math.isfinite(item)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def sensor_message(reading: SensorReading) -> dict[str, object]:
    """A sensor reading as car_io's `sensors` output carries it (what `sensor_bar` reads back)."""
    return {
        "t": round(reading.t, 4),
        "ticks": list(reading.encoder_ticks),
        "speeds": [round(v, 4) for v in reading.wheel_speeds],
        "line": [round(v, 3) for v in reading.line_sensors],
        "yaw_rate": round(reading.yaw_rate, 4),
        "range_m": reading.range_m,
        "battery_v": round(reading.battery_v, 3),
    }


def wheel_speeds(value: Any) -> WheelSpeeds:
    """A `cmd` message ({"left": m/s, "right": m/s})."""
    return WheelSpeeds(_number(value, "left"), _number(value, "right"))


def sensor_bar(value: Any) -> SensorBar:
    """A `sensors` message's time, line sensor readings, speed and range ({"t": s, "line": [numbers], "speeds":
    [m/s, m/s], "range_m": m or null, ...})."""
    t = _number(value, "t")
    line = value.get("line")
    if not isinstance(line, list) or not line or not all(_finite(x) for x in line):
        raise MessageError(f"`line` should be a list of finite numbers, not {_shown(line)}")
    speeds = value.get("speeds")
    speed = None
    if isinstance(speeds, list) and len(speeds) == 2 and all(_finite(x) for x in speeds):
        speed = (float(speeds[0]) + float(speeds[1])) / 2
    range_m = value.get("range_m")
    if range_m is not None and not _finite(range_m):
        range_m = 0.0  # unreadable: a failed reading, which the filters leave out
    return SensorBar(t, [float(x) for x in line], speed, None if range_m is None else float(range_m))


@dataclass(frozen=True)
class PoseMessage:
    """A `pose` message (car_io's ground truth in the simulator): car time (s), position (m), heading (rad)."""

    t: float
    x: float
    y: float
    heading: float


def pose_message(value: Any) -> PoseMessage:
    """A `pose` message ({"t": s, "x": m, "y": m, "heading": rad, ...})."""
    return PoseMessage(_number(value, "t"), _number(value, "x"), _number(value, "y"), _number(value, "heading"))


def line_estimate(value: Any) -> LineEstimate:
    """A `line` message (line_detector's: found, offset, heading, curvature, confidence)."""
    if not isinstance(value, dict) or not isinstance(value.get("found"), bool):
        raise MessageError(f"`found` should be true or false (got {_shown(value)})")
    return LineEstimate(
        found=value["found"],
        offset=_number(value, "offset"),
        heading=_number(value, "heading"),
        curvature=_number(value, "curvature"),
        confidence=_number(value, "confidence"),
    )


@dataclass
class Malformed:
    """Tells the log about bad messages a node ignored: the first few of each input, then every hundredth."""

    node: str
    shown: int = 3
    counts: dict[str, int] = field(default_factory=dict)

    def report(self, input_id: str, error: MessageError, what: str = "ignored") -> None:
        """One bad message on `input_id` was `what` (ignored, or the wheels stopped)."""
        count = self.counts[input_id] = self.counts.get(input_id, 0) + 1
        if count <= self.shown or count % 100 == 0:
            print(f"{self.node}: {what} a malformed `{input_id}` message ({count} so far): {error}", file=sys.stderr)
