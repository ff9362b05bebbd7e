"""IR follower: the classic smart-car line follower, on the line-sensor array alone.

The tape's position under the sensor bar (`controller.bar_estimate`), `line_sensor_forward`
metres ahead of the axle, is a line estimate like the camera's, so the same `LineFollower`
steers (pure pursuit with the bar as look-ahead), schedules speed, and searches toward
the side the tape was last seen when it is lost.
"""

from __future__ import annotations

from dataclasses import replace

from hal.description import load_description
from nodes.controller import BAR_PARAMS, LineFollower, bar_estimate
from nodes.messages import Malformed, MessageError, sensor_bar


def main() -> None:
    """The node: `sensors` in (metadata passed through), `cmd` out."""
    from car import Node

    car = load_description()
    lookahead = car.sensors.line_sensor_forward
    follower = LineFollower(replace(BAR_PARAMS, lookahead=lookahead), car.car.wheel_base, lookahead)
    spacing = car.sensors.line_sensor_spacing
    node = Node()
    malformed = Malformed("ir_follower")
    manual = node.declare_parameter("manual", False, "someone drives by hand (the live view): no commands from here")
    for event in node:
        if event.type == "PARAMETER" and event.id == "manual":
            manual = bool(event.value)
        elif event.type == "INPUT" and event.id == "sensors" and not manual:
            try:
                bar = sensor_bar(event.value)
            except MessageError as exc:
                malformed.report("sensors", exc)
                continue
            left, right = follower.update(bar_estimate(bar.line, spacing), bar.t)
            node.send_output("cmd", {"left": round(left, 4), "right": round(right, 4)}, event.metadata)


if __name__ == "__main__":
    main()
