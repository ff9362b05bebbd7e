"""What every pilot node shares: the `manual` switch, the safety guard between its wishes and the wheels, and
its `cmd` and `safety` outputs.

A pilot (nodes.controller, nodes.ir_follower, a learned pilot) decides wheel speeds from
what it perceives; `Pilot.drive` passes them through its `nodes.safety.PilotGuard` and
sends what the guard allows, with the guard's events said (nodes.safety.send_safety);
`car param set PILOT resume_after_stop false` keeps it stopped after a stop until set true
again. The pilot tells the guard what it perceives (`guard.perceived`, `guard.perception_closed`) and
senses (`sense`), so the policy is the same whichever pilot drives.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from car import Node
from nodes.messages import SensorBar
from nodes.safety import PilotGuard, PilotLimits, send_safety

RESUME = "resume_after_stop"  # the parameter that says whether the pilot drives again by itself after a stop


class Pilot:
    """A pilot node's commands, made safe; `manual` (the live view's switch) silences them."""

    def __init__(self, node: Node, limits: PilotLimits):
        self.node = node
        self.guard = PilotGuard(limits)
        self.manual = bool(
            node.declare_parameter("manual", False, "someone drives by hand (the live view): no commands from here")
        )
        resume = node.declare_parameter(
            RESUME, limits.resume, "after a safety stop, drive again by itself once its cause is gone"
        )
        self.guard.limits = replace(limits, resume=bool(resume))
        self.clock = 0.0  # s, the car's time as the latest sensor reading (or estimate) gave it

    def parameter(self, name: str, value: Any) -> bool:
        """Take a PARAMETER event if it is the pilot's own (`manual`, `resume_after_stop`); whether it was."""
        if name == "manual":
            self.manual = bool(value)
        elif name == RESUME:
            self.guard.limits = replace(self.guard.limits, resume=bool(value))
        else:
            return False
        return True

    def sense(self, bar: SensorBar, tape_seen: bool | None) -> None:
        """A sensor reading: its time, speed and range for the guard, and whether the pilot's line sensors see tape
        (None: the pilot does not judge "off the line" by them)."""
        self.clock = max(self.clock, bar.t)
        self.guard.sensed(bar.t, bar.speed, bar.range_m, tape_seen)

    def drive(self, left: float, right: float, t: float, metadata: dict[str, Any] | None = None) -> None:
        """Command the wheels (m/s) at car time t, as far as the guard allows; the metadata passed on."""
        self.clock = max(self.clock, t)
        if self.manual:  # someone else drives: car_io's guard and the board's brake stand for them
            return
        left, right = self.guard.limit(left, right, t)
        self.node.send_output("cmd", {"left": round(left, 4), "right": round(right, 4)}, metadata)
        send_safety(self.node, self.guard.take_events())
