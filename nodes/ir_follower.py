"""IR follower: the classic smart-car line follower, on the line-sensor array alone.

The tape's position under the sensor bar is the darkness-weighted mean of the sensors'
lateral positions (sensors reading less than FLOOR_LEVEL count as bare floor). That
position, `line_sensor_forward` metres ahead of the axle, is a line estimate like the
camera's, so the same `LineFollower` steers (pure pursuit with the bar as look-ahead),
schedules speed, and searches toward the side the tape was last seen when it is lost.
"""

from __future__ import annotations

from collections.abc import Sequence

from nodes.controller import ControllerParams, LineFollower
from nodes.line_detector import LineEstimate
from sim.sensors import SensorParams

FLOOR_LEVEL = 0.3  # readings below this are bare floor
FOUND_LEVEL = 0.5  # the tape is under the bar when one sensor reads at least this

IR_PARAMS = ControllerParams(
    max_speed=0.45,
    min_speed=0.25,
    slowdown=0.0,
    slowdown_sq=0.004,
    lookahead=SensorParams().line_sensor_forward,
    lookahead_per_speed=0.0,
    lookahead_bend=0.0,
    max_curvature_rate=200.0,
    coast_time=0.1,
    lost_timeout=2.0,
)


def bar_estimate(values: Sequence[float], spacing: float = SensorParams().line_sensor_spacing) -> LineEstimate:
    """Where the tape is under the bar (left positive), as a line estimate."""
    if not values or max(values) < FOUND_LEVEL:
        return LineEstimate(found=False)
    half = (len(values) - 1) / 2
    weights = [max(0.0, v - FLOOR_LEVEL) for v in values]
    position = sum(w * (half - k) * spacing for k, w in enumerate(weights)) / sum(weights)
    return LineEstimate(found=True, offset=position, confidence=1.0)


def main() -> None:
    """The node: `sensors` in (metadata passed through), `cmd` out."""
    from car import Node

    follower = LineFollower(IR_PARAMS)
    node = Node()
    for event in node:
        if event.type == "INPUT" and event.id == "sensors":
            left, right = follower.update(bar_estimate(event.value["line"]), float(event.value["t"]))
            node.send_output("cmd", {"left": round(left, 4), "right": round(right, 4)}, event.metadata)


if __name__ == "__main__":
    main()
