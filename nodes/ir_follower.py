"""IR follower: the classic smart-car line follower, on the line-sensor array alone.

The tape's position under the sensor bar (`controller.bar_estimate`), `line_sensor_forward`
metres ahead of the axle, is a line estimate like the camera's, so the same `LineFollower`
steers (pure pursuit with the bar as look-ahead), schedules speed, and searches toward
the side the tape was last seen when it is lost, within the bounds of the safety guard
every pilot shares (nodes.safety through nodes.pilot: a bounded search, obstacles).
"""

from __future__ import annotations

from dataclasses import replace

from hal.description import load_description
from nodes.controller import BAR_PARAMS, LineFollower, bar_estimate
from nodes.messages import Malformed, MessageError, sensor_bar
from nodes.safety import PilotLimits

STALE_READINGS = 10  # sensor periods (10 ms) without a reading before the car stops


def main() -> None:
    """The node: `sensors` in (metadata passed through), `cmd` and `safety` out."""
    from car import Node
    from nodes.pilot import Pilot

    car = load_description()
    lookahead = car.sensors.line_sensor_forward
    follower = LineFollower(replace(BAR_PARAMS, lookahead=lookahead), car.car.wheel_base, lookahead)
    spacing = car.sensors.line_sensor_spacing
    node = Node()
    pilot = Pilot(node, PilotLimits(STALE_READINGS * 0.01, off_line_m=None))  # the bar is its perception
    malformed = Malformed("ir_follower")
    for event in node:
        if event.type == "PARAMETER":
            pilot.parameter(event.id, event.value)
        elif event.type == "INPUT_CLOSED" and event.id == "sensors":  # car_io is gone: nothing left to drive
            pilot.guard.perception_closed()
        elif event.type == "INPUT" and event.id == "sensors":
            try:
                bar = sensor_bar(event.value)
            except MessageError as exc:
                malformed.report("sensors", exc)
                continue
            estimate = bar_estimate(bar.line, spacing)
            pilot.sense(bar, None)  # the bar is its perception: a lost line is a search, not "off the line"
            pilot.guard.perceived(bar.t, estimate.found)
            left, right = follower.update(estimate, bar.t)
            pilot.drive(left, right, bar.t, event.metadata)


if __name__ == "__main__":
    main()
