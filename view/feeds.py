"""What the live view shows, taken from a running graph's outputs by subscribers (car.node.subscriber).

A listener (view.listen: a subscriber and a thread per part) keeps the newest camera frame (copied out of
shared memory at once, so the sender's slot is free again) and turns the other outputs
into samples for the plots: cross-track error (`car_io/pose`, simulator), line offset and
heading (`line_detector/line`), commanded wheel speeds (`controller/cmd`), the safety stops in
force (any node's `safety` output: nodes.safety's events, shown as a banner), measured wheel
speeds (`car_io/sensors`, which also give the trail by odometry on a real car, where no
`pose` comes) and the control loop's latency (a command's timestamp minus
that of the frame it answers, matched by the frame number in their metadata). Nothing
here waits on the graph: a subscriber that falls behind loses messages, counted.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

from car.plan.running import RunningGraph
from nodes.safety import SafetyChange, SafetyEvent, safety_event
from view.listen import Listener

SAMPLES = 20_000  # samples kept for a page that connects late (about 30 s of every series)
TRAIL = 6000  # poses kept for the trail (60 s at 100 Hz)
PENDING_FRAMES = 64  # frames whose command the loop latency still waits for
ODOMETRY_EVERY = 5  # readings (10 ms each) per odometry trail point


@dataclass(frozen=True)
class Frame:
    """The newest camera frame and what the view draws over it."""

    number: int  # counts frames received, so a page asks only for a newer one
    image: np.ndarray[Any, Any]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Sample:
    """One value of one plotted series at a wall-clock time (seconds since the epoch)."""

    t: float
    series: str
    value: float


class Pose(NamedTuple):
    """Where the car was: x, y (m) and heading (rad)."""

    x: float
    y: float
    heading: float


class Reading(NamedTuple):
    """A sensor reading's time (s, the car's clock) and measured wheel speeds (m/s)."""

    t: float
    left: float
    right: float


def odometry_step(pose: Pose, dt: float, left: float, right: float, wheel_base: float) -> Pose:
    """Where a differential-drive car at `pose` is after `dt` seconds at these wheel speeds (exact for arcs)."""
    speed, turn = (left + right) / 2, (right - left) / wheel_base
    heading = pose.heading + turn * dt
    if abs(turn) < 1e-9:
        return Pose(pose.x + speed * dt * math.cos(pose.heading), pose.y + speed * dt * math.sin(pose.heading), heading)
    radius = speed / turn
    x = pose.x + radius * (math.sin(heading) - math.sin(pose.heading))
    y = pose.y - radius * (math.cos(heading) - math.cos(pose.heading))
    return Pose(x, y, heading)


T = TypeVar("T")


class Kept(Generic[T]):
    """The newest `size` (to 2 x `size`) of a series of items, and how many there have been: each reader asks
    for what came after what it has, in time proportional to that."""

    def __init__(self, size: int):
        self.size = size
        self.items: list[T] = []
        self.first = 0  # the number of items forgotten

    def append(self, item: T) -> None:
        """One more item (the oldest `size` are forgotten once there are twice as many)."""
        self.items.append(item)
        if len(self.items) > 2 * self.size:
            del self.items[: self.size]
            self.first += self.size

    def since(self, seen: int) -> tuple[int, list[T]]:
        """How many items there have been, and those after the first `seen` still kept."""
        return self.first + len(self.items), self.items[max(0, seen - self.first) :]


@dataclass
class Feeds:
    """The newest frame, the series' samples and the trail of a running graph, kept up to date by threads."""

    graph: RunningGraph
    image_source: str = "car_io/image"
    frame: Frame | None = None
    samples: Kept[Sample] = field(default_factory=lambda: Kept(SAMPLES))
    trail: Kept[Pose] = field(default_factory=lambda: Kept(TRAIL))
    latest_line: dict[str, Any] | None = None  # the newest detection (`line_detector/line`)
    wheel_base: float = 0.14  # m, for odometry (the car description's)
    trail_kind: str = ""  # "pose" (the simulator's), "odometry" (the measured wheel speeds), "" (none yet)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last_reading: Reading | None = None
    _odometry_pose: Pose = field(default_factory=lambda: Pose(0.0, 0.0, 0.0))
    _odometry_count: int = 0
    _frame_stamps: dict[Any, int] = field(default_factory=dict)
    _lines: dict[Any, dict[str, Any]] = field(default_factory=dict)
    _safety: dict[str, SafetyEvent] = field(default_factory=dict)  # each node's latest safety event

    def __post_init__(self) -> None:
        self.listener = Listener(self.graph, self._take, "view")

    def start(self) -> None:
        """Subscribe to every output of every part, a receiving thread each."""
        self.listener.start()

    def stop(self) -> None:
        """End the subscriptions."""
        self.listener.stop()

    @property
    def ended(self) -> bool:
        """Whether the run ended."""
        return self.listener.ended

    @property
    def lost(self) -> int:
        """Messages the view's subscribers lost (they fell behind)."""
        return self.listener.lost

    def samples_since(self, seen: int) -> tuple[int, list[Sample]]:
        """How many samples there have been, and those after the first `seen` (the oldest may be forgotten)."""
        with self._lock:
            return self.samples.since(seen)

    def trail_since(self, seen: int) -> tuple[int, list[Pose]]:
        """How many poses there have been, and those after the first `seen`."""
        with self._lock:
            return self.trail.since(seen)

    def safety(self) -> dict[str, SafetyEvent]:
        """The stops and searches in force, by the node that said them (a node's later resumption ends its own)."""
        with self._lock:
            return {node: event for node, event in self._safety.items() if event.change is not SafetyChange.RESUME}

    def line_of(self, frame: Frame) -> dict[str, Any] | None:
        """The detection made from `frame`, once it has come (None until then)."""
        with self._lock:
            return self._lines.get(frame.metadata.get("frame"))

    def _take(self, source: str, value: Any, metadata: dict[str, Any], stamp_ns: int) -> None:
        """One message: the frame kept, or its figures added to the series."""
        t = stamp_ns / 1e9
        frame_id = metadata.get("frame")
        if source == self.image_source and isinstance(value, np.ndarray):
            image = np.array(value)  # out of shared memory now
            with self._lock:
                number = self.frame.number + 1 if self.frame is not None else 1
                self.frame = Frame(number, image, dict(metadata))
                self._remember(self._frame_stamps, frame_id, stamp_ns)
            return
        if not isinstance(value, dict):
            return
        if source.endswith("/safety"):
            try:
                event = safety_event(value)
            except ValueError:
                return
            with self._lock:
                self._safety[source.split("/")[0]] = event
        elif source.endswith("/line"):
            with self._lock:
                self._remember(self._lines, frame_id, value)
                self.latest_line = value
            self._add(t, "offset_mm", value.get("offset"), 1000)
            self._add(t, "heading_deg", value.get("heading"), 180 / math.pi)
        elif source.endswith("/pose"):
            self._add(t, "cross_track_mm", value.get("cross_track"), 1000)
            if _finite(value.get("x")) and _finite(value.get("y")):
                with self._lock:
                    if self.trail_kind != "pose":  # a pose, from the simulator: better than odometry
                        self.trail, self.trail_kind = Kept(TRAIL), "pose"
                    self.trail.append(Pose(float(value["x"]), float(value["y"]), float(value.get("heading") or 0.0)))
        elif source.endswith("/cmd"):
            self._add(t, "cmd_left", value.get("left"))
            self._add(t, "cmd_right", value.get("right"))
            sent = self._frame_stamps.get(frame_id) if frame_id is not None else None
            if sent is not None:
                self._add(t, "loop_ms", (stamp_ns - sent) / 1e6)
        elif source.endswith("/sensors"):
            speeds = value.get("speeds")
            if isinstance(speeds, list) and len(speeds) == 2 and all(_finite(v) for v in speeds):
                self._add(t, "speed_left", speeds[0])
                self._add(t, "speed_right", speeds[1])
                if self.trail_kind != "pose" and _finite(value.get("t")):  # the real car: a trail by odometry
                    self._odometry(float(value["t"]), float(speeds[0]), float(speeds[1]))

    def _odometry(self, t: float, left: float, right: float) -> None:
        """Dead reckoning from the measured wheel speeds, one reading after another (a new trail each 10th)."""
        with self._lock:
            if self._last_reading is not None and 0 < t - self._last_reading.t < 1.0:
                moved = odometry_step(self._odometry_pose, t - self._last_reading.t, left, right, self.wheel_base)
                self._odometry_pose = moved
                self._odometry_count += 1
                if self._odometry_count % ODOMETRY_EVERY == 0:
                    self.trail.append(moved)
                    self.trail_kind = "odometry"
            self._last_reading = Reading(t, left, right)

    def _add(self, t: float, series: str, value: Any, scale: float = 1.0) -> None:
        if _finite(value):
            with self._lock:
                self.samples.append(Sample(t, series, round(float(value) * scale, 3)))

    @staticmethod
    def _remember(table: dict[Any, Any], key: Any, value: Any) -> None:
        """Keep `value` under `key` (a frame number) in a table that forgets its oldest beyond PENDING_FRAMES."""
        if key is None:
            return
        table[key] = value
        if len(table) > PENDING_FRAMES:
            del table[next(iter(table))]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
