"""A simulated car on a track: physics, sensors, camera and the ground truth to judge a run.

    world = World(load_track("oval"), seed=1)
    world.wheels.set_wheel_speeds(0.4, 0.4)
    world.step(0.01)
    frame, t = world.camera.read()
    world.truth().cross_track

With `board_brake` the world also plays the motor board's automatic emergency braking
(firmware.brake, on the ranger's readings every step): the simulator stands in for the
board under `car launch --sim`. The board emulator runs the firmware itself and leaves it
off. Collisions between the car's body and the track's boxes are counted (sim.contact).

With `randomize` the scene (floor, light, the camera's true pose, noise and motion blur)
is drawn at random (sim.randomize). Every random thing (the scene, floor texture, camera
noise, sensor noise, process noise) draws from its own generator spawned from `seed`, so the same seed gives the same run whatever the
order in which a caller reads the sensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from firmware.brake import NO_RANGE, ObstacleBrake
from hal.description import CameraParams, CarParams, SensorParams
from sim.camera import SimCamera
from sim.contact import ContactJudge
from sim.floor import draw_floor
from sim.randomize import plain_scene, random_scene
from sim.sensors import SimSensors, SimWheels
from sim.track import Track
from sim.vehicle import Vehicle

OFF_LINE_M = 0.05  # |cross-track| above this counts as off the line
TRAIL_PERIOD_S = 0.02


@dataclass(frozen=True)
class GroundTruth:
    """What really happened, for judging a run (never given to the nodes on the car)."""

    t: float
    x: float
    y: float
    heading: float
    speed: float
    cross_track: float  # m, positive left of the line
    progress: float  # m along the line since the start, laps included
    laps: int
    lap_times: tuple[float, ...]
    distance: float  # m travelled over the floor
    time_off_line: float  # s in total with |cross_track| > OFF_LINE_M
    longest_off_line: float  # s, the longest such stretch
    max_cross_track: float  # m, largest |cross_track| so far
    cross_track_rms: float  # m
    collisions: int = 0  # contacts between the car's body and a box
    min_obstacle_distance: float | None = None  # m, the least gap between body and box (None: no boxes)
    board_brakes: int = 0  # times the board's obstacle brake engaged (with board_brake)


@dataclass
class _Judge:
    hint: int = 0
    progress: float = 0.0
    last_progress: float = 0.0
    laps: int = 0
    lap_starts: list[float] = field(default_factory=lambda: [0.0])
    distance: float = 0.0
    off_line: float = 0.0
    stretch: float = 0.0
    longest: float = 0.0
    max_cte: float = 0.0
    sum_sq: float = 0.0
    samples: int = 0
    cte: float = 0.0


class World:
    """One car on one track."""

    def __init__(
        self,
        track: Track,
        car_params: CarParams | None = None,
        seed: int = 0,
        camera: CameraParams | None = None,
        sensors: SensorParams | None = None,
        px_per_m: float = 500.0,
        start_offset: float = 0.0,
        board_brake: bool = False,
        randomize: bool = False,
    ):
        """`randomize`: a scene drawn from `seed` (sim.randomize) instead of the track's own look."""
        self.track = track
        self.seed = seed
        floor_rng, vehicle_rng, camera_rng, sensor_rng, scene_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
        )
        nominal = camera or CameraParams()
        self.scene = random_scene(track, nominal, scene_rng) if randomize else plain_scene(track, nominal)
        self.floor = draw_floor(track, px_per_m, seed=int(floor_rng.integers(2**31)), look=self.scene.look)
        self.vehicle = Vehicle(car_params or CarParams(), track.pose_at(0.0, start_offset), vehicle_rng)
        self.wheels = SimWheels(self.vehicle)
        self.camera = SimCamera(self.scene.camera, self.floor, self.vehicle, camera_rng, self.scene.motion_blur_px)
        self.sensors = SimSensors(
            sensors or SensorParams(),
            self.vehicle,
            self.floor,
            track.obstacles,
            sensor_rng,
        )
        self._judge = _Judge()
        self.contact = ContactJudge(self.vehicle.params, track.obstacles)
        self.brake = ObstacleBrake() if board_brake else None
        self.trail: list[tuple[float, float, float]] = []  # (x, y, cross_track) every TRAIL_PERIOD_S
        self._next_trail = 0.0
        self._update_truth(0.0)

    @property
    def t(self) -> float:
        """Simulated time in seconds."""
        return self.vehicle.state.t

    def step(self, dt: float) -> None:
        """Advance the simulation by dt seconds (physics in 1 ms steps, truth once per call)."""
        before = (self.vehicle.state.x, self.vehicle.state.y)
        if self.brake is not None and self.track.obstacles:
            self._board_brake()
        self.vehicle.step(dt)
        s = self.vehicle.state
        self._judge.distance += math.hypot(s.x - before[0], s.y - before[1])
        self._update_truth(dt)

    def _board_brake(self) -> None:
        """The board's obstacle brake on this step's ranger reading: the set-points it lets through."""
        assert self.brake is not None
        s = self.vehicle.state
        reading = self.sensors.range_to_obstacle(s.x, s.y, s.heading)
        self.brake.update(NO_RANGE if reading is None else round(reading * 1000), s.speed * 1000)
        self.vehicle.command(*self.brake.limit(*self.wheels.requested))

    def _update_truth(self, dt: float) -> None:
        j, s, track = self._judge, self.vehicle.state, self.track
        projection = track.project(s.x, s.y, j.hint)
        j.hint = projection.index
        delta = projection.progress - j.last_progress
        if track.closed:
            delta = (delta + track.length / 2) % track.length - track.length / 2
        j.last_progress = projection.progress
        j.progress += delta
        if track.closed and j.progress >= (j.laps + 1) * track.length:
            j.laps += 1
            j.lap_starts.append(s.t)
        j.cte = projection.cross_track
        magnitude = abs(j.cte)
        j.max_cte = max(j.max_cte, magnitude)
        j.sum_sq += j.cte * j.cte
        j.samples += 1
        if magnitude > OFF_LINE_M:
            j.off_line += dt
            j.stretch += dt
            j.longest = max(j.longest, j.stretch)
        else:
            j.stretch = 0.0
        if self.track.obstacles:
            self.contact.update(s.x, s.y, s.heading)
        if s.t >= self._next_trail:
            self.trail.append((s.x, s.y, j.cte))
            self._next_trail = s.t + TRAIL_PERIOD_S

    def truth(self) -> GroundTruth:
        """The ground truth now."""
        j, s = self._judge, self.vehicle.state
        return GroundTruth(
            t=s.t,
            x=s.x,
            y=s.y,
            heading=s.heading,
            speed=s.speed,
            cross_track=j.cte,
            progress=j.progress,
            laps=j.laps,
            lap_times=tuple(b - a for a, b in zip(j.lap_starts, j.lap_starts[1:], strict=False)),
            distance=j.distance,
            time_off_line=j.off_line,
            longest_off_line=j.longest,
            max_cross_track=j.max_cte,
            cross_track_rms=math.sqrt(j.sum_sq / j.samples) if j.samples else 0.0,
            collisions=self.contact.collisions,
            min_obstacle_distance=self.contact.min_distance,
            board_brakes=self.brake.engagements if self.brake is not None else 0,
        )
