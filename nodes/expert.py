"""The simulator's expert driver, for `car collect`: it knows the true pose and the track, and drives well.

It steers along the line the car should drive (a tape track's line, a lane track's
right-hand lane) as a path follower with the whole truth can: the line's own curvature
just ahead, plus corrections for the car's distance from the line and its heading error
that bring it back over `settle` metres without overshoot; at a speed the bends ahead
allow (`max_speed`, and at most `lateral_accel` sideways).

With noise (`EXPERT_NOISE`, the spread of the curvature added, 1/m) what the car
executes is not what the expert says: a slowly wandering error is added to its steering,
and now and then (`EXPERT_EXCURSIONS` a minute) an *excursion* takes over for about
half a second: the car follows the line's bend plus a turn of its own to one side, the
expert's corrections ignored, and leaves its road; then the expert brings it back. The frames off the road
teach the network what being off it looks like (`on_road` false), and the way back. The `label` output is always the expert's own correction for where
the car really is, so a network trained on it learns to come back (as DAgger does), and
says whether the car is still on its road (`on_road`).

Inputs: `pose` (car_io's ground truth, every 10 ms of car time). Outputs: `cmd` (what the
car executes; the pose's metadata passed back, so car_io waits for it every cycle) and
`label` ({"left": m/s, "right": m/s, "on_road": bool}: the expert's command, the same
shape as a `cmd`, with the pose's metadata).

The expert reads what no real car has (the pose and the track): it exists only in the
simulator, to teach.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from sim.track import Track, TrackStyle

ON_TAPE_M = 0.08  # a tape track's car is on its road within this of the line
ON_LANE_SHARE = 0.7  # a lane track's car is on its road within this share of the lane's width of the lane's middle


@dataclass(frozen=True)
class ExpertParams:
    """How the expert drives, and how much noise is put into what the car executes."""

    max_speed: float = 0.75  # m/s
    lateral_accel: float = 1.6  # m/s^2 at most, in the bends ahead
    settle: float = 0.15  # m over which an error is corrected (critically damped)
    feedforward: float = 0.06  # m of line just ahead whose mean curvature the car follows
    bend_window: float = 0.5  # m of line ahead whose tightest bend sets the speed
    noise: float = 0.0  # 1/m: the spread of the slowly wandering steering error (0: the car does what it says)
    noise_time: float = 0.7  # s: how long the wandering error keeps its direction
    excursions_per_minute: float = 0.0  # times a minute the car drives off on an arc of its own
    excursion_curvature: tuple[float, float] = (0.8, 2.0)  # 1/m: the excursion's turn off the line, either way
    excursion_s: tuple[float, float] = (0.4, 0.9)  # how long one lasts
    seed: int = 0


@dataclass(frozen=True)
class Pose:
    """Where the car really is (car_io's `pose`)."""

    t: float
    x: float
    y: float
    heading: float


@dataclass(frozen=True)
class Drive:
    """A command as speed and curvature."""

    speed: float  # m/s
    curvature: float  # 1/m, left positive

    def wheels(self, wheel_base: float) -> tuple[float, float]:
        """Left and right wheel speeds (m/s)."""
        half = self.curvature * wheel_base / 2
        return self.speed * (1 - half), self.speed * (1 + half)


@dataclass(frozen=True)
class Step:
    """The expert's answer to one pose: its correction (the label), what the car executes, and whether it is on
    its road."""

    label: Drive
    executed: Drive
    on_road: bool
    cross_track: float  # m from the line it should drive, left positive


class Expert:
    """Pure pursuit on the true pose, with the noise that teaches recovery."""

    def __init__(self, track: Track, params: ExpertParams):
        self.track = track
        self.params = params
        self._rng = np.random.default_rng(params.seed)
        self._hint: int | None = None
        self._wander = 0.0  # 1/m, the slowly wandering steering error now
        self._excursion: float | None = None  # 1/m, the arc the car drives during an excursion (None: none now)
        self._excursion_until = -1.0
        self._t: float | None = None
        self._bend_ahead = _tightest_ahead(track, params.bend_window)
        self._feedforward_points = max(1, round(params.feedforward / max(track.length / len(track.curvature), 1e-6)))
        self.on_road_m = track.lane_width * ON_LANE_SHARE if track.style is TrackStyle.LANE else ON_TAPE_M

    def step(self, pose: Pose) -> Step:
        """The expert's answer to the car being at `pose`."""
        p, track = self.params, self.track
        dt = 0.0 if self._t is None else max(0.0, pose.t - self._t)
        self._t = pose.t
        projection = track.project(pose.x, pose.y, self._hint)
        index = self._hint = projection.index
        tightest = float(self._bend_ahead[index])
        speed = min(p.max_speed, math.sqrt(p.lateral_accel / tightest) if tightest > 1e-6 else p.max_speed)
        ahead = track.curvature[index : index + self._feedforward_points]
        bend = float(ahead.mean() if len(ahead) else track.curvature[-1])
        line_heading = float(track.heading[min(index, len(track.heading) - 1)])
        heading_error = (pose.heading - line_heading + math.pi) % (2 * math.pi) - math.pi
        label = Drive(speed, bend - projection.cross_track / p.settle**2 - 2 * math.sin(heading_error) / p.settle)
        on_road = abs(projection.cross_track) <= self.on_road_m
        return Step(label, self._executed(label, bend, pose.t, dt), on_road, projection.cross_track)

    def _executed(self, label: Drive, bend: float, t: float, dt: float) -> Drive:
        """What the car does: the expert's command with the wandering error added, or during an excursion the line's
        bend (`bend`, 1/m) with a turn of its own."""
        p = self.params
        if p.noise <= 0:
            return label
        if dt > 0:
            theta = 1 / p.noise_time
            self._wander += -theta * self._wander * dt + p.noise * math.sqrt(2 * theta * dt) * self._rng.normal()
            if t >= self._excursion_until:
                self._excursion = None
                if self._rng.uniform() < p.excursions_per_minute / 60 * dt:
                    side = self._rng.choice((-1.0, 1.0))
                    self._excursion = float(side * self._rng.uniform(*p.excursion_curvature))
                    self._excursion_until = t + self._rng.uniform(*p.excursion_s)
        if self._excursion is not None:
            return Drive(label.speed, bend + self._excursion)
        return Drive(label.speed, label.curvature + self._wander)


def _tightest_ahead(track: Track, window_m: float) -> np.ndarray:
    """For each point of the line, the largest |curvature| within `window_m` ahead of it."""
    bends = np.abs(track.curvature)
    count = max(1, round(window_m / max(track.length / max(len(bends) - 1, 1), 1e-6)))
    n = len(bends)
    padded = (
        np.concatenate([bends, bends[:count]])
        if track.closed
        else np.concatenate([bends, np.repeat(bends[-1:], count)])
    )
    windows = np.lib.stride_tricks.sliding_window_view(padded, count + 1)[:n]
    tightest: np.ndarray = windows.max(axis=1)
    return tightest


def params_from_env(env: dict[str, str] | os._Environ[str]) -> ExpertParams:
    """The expert's parameters from `EXPERT_*` variables (`car collect` sets them)."""
    defaults = ExpertParams()
    return ExpertParams(
        max_speed=float(env.get("EXPERT_MAX_SPEED", defaults.max_speed)),
        noise=float(env.get("EXPERT_NOISE", defaults.noise)),
        excursions_per_minute=float(env.get("EXPERT_EXCURSIONS", defaults.excursions_per_minute)),
        seed=int(env.get("EXPERT_SEED", env.get("CAR_SEED", defaults.seed))),
    )


def main() -> None:
    """The node: `pose` in, `cmd` and `label` out."""
    from car import Node
    from hal.description import load_description
    from nodes.launch_options import TRACK_ENV
    from nodes.messages import Malformed, MessageError, pose_message
    from sim.track import load_track

    expert = Expert(load_track(os.environ.get(TRACK_ENV, "oval")), params_from_env(os.environ))
    wheel_base = load_description().car.wheel_base
    malformed = Malformed("expert")
    node = Node()
    for event in node:
        if event.type != "INPUT" or event.id != "pose":
            continue
        try:
            pose = pose_message(event.value)
        except MessageError as exc:
            malformed.report("pose", exc)
            continue
        step = expert.step(Pose(pose.t, pose.x, pose.y, pose.heading))
        left, right = step.executed.wheels(wheel_base)
        node.send_output("cmd", {"left": round(left, 4), "right": round(right, 4)}, event.metadata)
        left, right = step.label.wheels(wheel_base)
        label = {"left": round(left, 4), "right": round(right, 4), "on_road": step.on_road}
        node.send_output("label", label, event.metadata)


if __name__ == "__main__":
    main()
