"""What car_io does with the graph's events, once for both back ends (nodes.car_io.board, nodes.car_io.sim).

`cmd` becomes wheel speeds through the one drive policy (nodes.drive.DriveGuard): clamped,
capped for an obstacle, both 0 for a malformed command; the `cmd` input closing stops the
wheels; `tick` refreshes the node's status line; a pilot's `safety` events are read and
handed on. A back end only says when the wheels get the speeds (the board at once; the
simulator at once, or after the modelled latency when the command answers the observation
it waits for), what its status says, and where the pilot's events go.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from car import Event, Node
from nodes.drive import DriveGuard
from nodes.messages import FRAME_KEY, Observation
from nodes.safety import SafetyEvent, safety_event


class Ended(enum.Enum):
    """The graph said STOP."""

    STOP = "stop"


@dataclass(frozen=True)
class Command:
    """Wheel speeds to set (m/s), from a `cmd` message or its input closing (`closed`: the pilot is gone); `frame` and
    `observation`: the cycle and the output of the observation it answers (its metadata's; None from a free-running
    source such as teleop)."""

    left: float
    right: float
    frame: Any = None
    observation: Observation | None = None
    closed: bool = False


class Inputs:
    """car_io's inputs, handled for either back end."""

    def __init__(
        self,
        node: Node,
        guard: DriveGuard,
        status: Callable[[], str | None],
        pilot_said: Callable[[str, SafetyEvent], None] | None = None,
    ):
        """`status()`: the status line for a `tick` (None: leave it as it is); `pilot_said(node, event)`: a pilot's
        safety event (None: they are not kept)."""
        self.node = node
        self.guard = guard
        self.status = status
        self.pilot_said = pilot_said

    def take(self, event: Event, now: float) -> Command | Ended | None:
        """Act on one event at car time `now`: the wheel speeds it asks for, STOP, or nothing for the back end."""
        if event.type == "STOP":
            return Ended.STOP
        if event.id == "cmd" and event.type == "INPUT_CLOSED":
            return Command(*self.guard.commands_closed(now), closed=True)
        if event.type != "INPUT":
            return None
        if event.id == "cmd":
            metadata = event.metadata
            return Command(
                *self.guard.command(event.value, now),
                frame=metadata.get(FRAME_KEY),
                observation=Observation.of(metadata),
            )
        if event.id == "tick":
            line = self.status()
            if line is not None:
                self.node.set_status(line)
        elif event.id == "safety" and self.pilot_said is not None:
            try:
                self.pilot_said((event.source or "").split("/")[0] or "pilot", safety_event(event.value))
            except ValueError as exc:
                print(f"car_io: ignored a `safety` message: {exc}", file=sys.stderr)
        return None
