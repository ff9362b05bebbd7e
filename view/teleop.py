"""Driving from the live view: a manual/auto switch and the pages' speed and turn, as wheel commands.

While a page has manual on, the node that feeds the teleop input (`car_io/cmd`: the
controller) has its `manual` parameter set, so it stops commanding, and the view sends
the page's drive into that input 20 times a second (`Publish`, as `car topic pub` does;
without a frame number, so car_io applies it as it comes). When the last manual page goes
away (closed, or silent past the WebSocket's ping timeout) the view sends a stop and then
nothing: the car stands (and car_io's dead-man rule holds it) until someone switches back
to auto.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any

from car.plan.running import RunningGraph
from car.plan.runs import RunError
from car.transport import control
from nodes.teleop import KEYS, MAX_SPEED, MAX_TURN, Drive, apply

PERIOD_S = 0.05  # 20 Hz, as nodes.teleop sends
ACTIONS = set(KEYS.values()) - {"quit"}


@dataclass
class Teleop:
    """The teleop state every page shares."""

    graph: RunningGraph
    target: str  # node/input the commands go into
    wheel_base: float
    commander: str = ""  # the node whose `manual` parameter is switched ("": none found)
    manual_pages: set[str] = field(default_factory=set)
    speed: float = 0.0
    turn: float = 0.0
    published: int = 0
    last: dict[str, float] = field(default_factory=dict)
    error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def find_commander(self) -> None:
        """The node whose output feeds `target` (blocking: a question to the run)."""
        node, _, name = self.target.partition("/")
        try:
            part = self.graph.part_of(node)
            for topic in part.ask(control.ListTopics(), control.Topics).topics:
                if any(r.node == node and r.input == name for r in topic.readers):
                    self.commander = topic.source.partition("/")[0]
        except RunError as exc:
            self.error = str(exc)

    def act(self, page: str, action: Any) -> None:
        """A key or button of a page with manual on: `faster`, `slower`, `left`, `right` or `stop` (nodes.teleop)."""
        if page not in self.manual_pages or action not in ACTIONS:
            return
        with self._lock:
            drive = apply(Drive(self.speed, self.turn), action)
            self.speed, self.turn = drive.speed, drive.turn

    def drive(self, page: str, speed: Any, turn: Any) -> None:
        """A page's drive from a gamepad's sticks (m/s, 1/m), taken while it has manual on."""
        if page not in self.manual_pages or not all(isinstance(v, int | float) for v in (speed, turn)):
            return
        if not (math.isfinite(speed) and math.isfinite(turn)):
            return
        with self._lock:
            self.speed = max(-MAX_SPEED, min(MAX_SPEED, float(speed)))
            self.turn = max(-MAX_TURN, min(MAX_TURN, float(turn)))

    def set_manual(self, page: str, on: bool) -> None:
        """A page switches manual on or off (blocking: it tells the commander)."""
        was = bool(self.manual_pages)
        if on:
            self.manual_pages.add(page)
        else:
            self.manual_pages.discard(page)
        if bool(self.manual_pages) != was:
            with self._lock:
                self.speed = self.turn = 0.0
            self._switch(bool(self.manual_pages))
            if not self.manual_pages:
                self._publish(Drive())

    def page_gone(self, page: str) -> None:
        """A page closed: if it drove, the car stops (and stays stopped, still in manual)."""
        if page in self.manual_pages:
            self.manual_pages.discard(page)
            if not self.manual_pages:
                with self._lock:
                    self.speed = self.turn = 0.0
                self._publish(Drive())

    async def run(self, finished: asyncio.Event) -> None:
        """Send the drive 20 times a second while some page has manual on."""
        while not finished.is_set():
            if self.manual_pages:
                with self._lock:
                    drive = Drive(self.speed, self.turn)
                await asyncio.to_thread(self._publish, drive)
            await asyncio.sleep(PERIOD_S)

    def state(self) -> dict[str, Any]:
        """What the pages show."""
        return {
            "manual": bool(self.manual_pages),
            "speed": self.speed,
            "turn": self.turn,
            "target": self.target,
            "commander": self.commander,
            "published": self.published,
            "last": self.last,
            "error": self.error,
        }

    def _switch(self, manual: bool) -> None:
        if not self.commander:
            return
        try:
            part = self.graph.part_of(self.commander)
            part.ask(control.SetParameter(self.commander, "manual", json.dumps(manual)), control.Done)
            self.error = ""
        except RunError as exc:
            self.error = f"{self.commander} keeps commanding: {exc}"

    def _publish(self, drive: Drive) -> None:
        left, right = drive.wheels(self.wheel_base)
        value = {"left": round(left, 4), "right": round(right, 4)}
        node, _, name = self.target.partition("/")
        try:
            self.graph.part_of(node).ask(control.Publish(node, name, json.dumps(value)), control.Published)
        except RunError as exc:
            self.error = f"could not drive {self.target}: {exc}"
            return
        self.published += 1
        self.last = value
