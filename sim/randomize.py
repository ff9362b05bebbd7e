"""Domain randomisation: a scene drawn at random (seeded), so a model trained on many carries over to a real one.

`--randomize` on a simulated run (`car launch`, `car collect`) draws, from the run's seed:

- the floor's colour and texture (blotches, grain), the lines' colour and wear;
- the light: a brightness gradient across the floor and soft shadows;
- the camera's true pose within what `car calibrate camera` guarantees (`POSE_TOLERANCE`:
  tilt, yaw and roll within 1 degree, height and position within 5 mm), while the nodes
  keep the car description's nominal pose, as on a real car after calibration;
- the sensor: noise, exposure and colour jitter, and motion blur that grows with speed.

The line stays readable: its colour is drawn to keep a contrast of at least
`MIN_CONTRAST` grey levels with the floor, dark tape on a lighter floor, light paint on a
darker road.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hal.description import CameraParams
from sim.floor import FloorLook
from sim.track import Track, TrackStyle

MIN_CONTRAST = 70  # grey levels between the floor and the line, at least


@dataclass(frozen=True)
class PoseTolerance:
    """How far a calibrated camera's pose may be from the truth (tests/test_calibration.py holds calibration to it)."""

    angle_deg: float = 1.0  # tilt, yaw and roll
    position_m: float = 0.005  # height, forward and lateral


POSE_TOLERANCE = PoseTolerance()


@dataclass(frozen=True)
class Scene:
    """What a randomised run looks like: the floor, the camera as it really is, and its motion blur."""

    look: FloorLook
    camera: CameraParams
    motion_blur_px: float  # streak length in pixels at 1 m/s


def plain_scene(track: Track, camera: CameraParams) -> Scene:
    """The track's own look and the nominal camera: what a run without `--randomize` sees."""
    return Scene(FloorLook.plain(track), camera, 0.0)


def random_scene(track: Track, camera: CameraParams, rng: np.random.Generator) -> Scene:
    """A scene drawn at random for this track and camera."""
    return Scene(_look(track, rng), _camera(camera, rng), float(rng.uniform(0.0, 12.0)))


def _grey(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _colour(rng: np.random.Generator, level: tuple[float, float], tint: float) -> tuple[int, int, int]:
    base = rng.uniform(*level)
    r, g, b = (int(np.clip(base + rng.normal(0, tint), 0, 255)) for _ in range(3))
    return (r, g, b)


def _look(track: Track, rng: np.random.Generator) -> FloorLook:
    lane = track.style is TrackStyle.LANE
    for _ in range(100):
        if lane:  # a road: grey to dark, with white or yellowish paint
            floor = _colour(rng, (35, 140), 8)
            line = _colour(rng, (185, 250), 6)
            if rng.uniform() < 0.3:  # yellow paint
                line = (line[0], int(line[1] * 0.85), int(line[2] * 0.3))
        else:  # a room's floor, lighter, under dark tape of some colour
            floor = _colour(rng, (110, 235), 14)
            line = _colour(rng, (5, 70), 18)
        if abs(_grey(floor) - _grey(line)) >= MIN_CONTRAST:
            break
    return FloorLook(
        floor_rgb=floor,
        line_rgb=line,
        blotches=float(rng.uniform(0.02, 0.15)),
        blotch_m=float(rng.uniform(0.05, 0.4)),
        grain=float(rng.uniform(0.01, 0.06)),
        wear=float(rng.uniform(0.0, 0.35)),
        light_gradient=float(rng.uniform(0.0, 0.35)),
        light_angle=float(rng.uniform(0, 2 * np.pi)),
        shadows=int(rng.integers(0, 5)),
        shadow_depth=float(rng.uniform(0.15, 0.5)),
    )


def _camera(nominal: CameraParams, rng: np.random.Generator) -> CameraParams:
    angle, position = POSE_TOLERANCE.angle_deg, POSE_TOLERANCE.position_m
    return dataclasses.replace(
        nominal,
        tilt_deg=nominal.tilt_deg + float(rng.uniform(-angle, angle)),
        yaw_deg=nominal.yaw_deg + float(rng.uniform(-angle, angle)),
        roll_deg=nominal.roll_deg + float(rng.uniform(-angle, angle)),
        mount_height=nominal.mount_height + float(rng.uniform(-position, position)),
        forward=nominal.forward + float(rng.uniform(-position, position)),
        lateral=nominal.lateral + float(rng.uniform(-position, position)),
        noise_std=float(rng.uniform(2.0, 8.0)),
        exposure_jitter=float(rng.uniform(0.02, 0.10)),
        colour_jitter=float(rng.uniform(0.01, 0.05)),
        blur=True,
    )
