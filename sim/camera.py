"""A forward-looking pinhole camera over the floor, rendered by one perspective warp.

The camera sits `forward` metres ahead of the axle at `height`, tilted `tilt_deg` down,
with a horizontal field of view `hfov_deg`. Each frame is the floor map warped by the
homography from floor to image for the car's pose (OpenCV `warpPerspective`), then given
exposure and colour jitter, sensor noise and a slight blur. The noise comes from a bank of
frames made once per camera, so a noisy frame costs one more pass, not a random draw per
pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from hal.interfaces import check_frame_array
from sim.track import FloorMap
from sim.vehicle import Vehicle

NOISE_BANK = 16


@dataclass(frozen=True)
class CameraParams:
    """Mounting, optics and image quality of the camera."""

    width: int = 320
    height: int = 240
    fps: float = 30.0
    mount_height: float = 0.12  # m above the floor
    tilt_deg: float = 35.0  # down from horizontal
    hfov_deg: float = 70.0  # horizontal field of view
    forward: float = 0.06  # m ahead of the axle
    noise_std: float = 4.0  # grey levels; 0 turns noise off
    blur: bool = True
    exposure_jitter: float = 0.06  # relative, per frame
    colour_jitter: float = 0.03  # relative, per channel and frame

    @property
    def focal_px(self) -> float:
        """Focal length in pixels."""
        return (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)


def camera_axes(params: CameraParams, x: float, y: float, heading: float) -> tuple[np.ndarray, np.ndarray]:
    """The camera's rotation (rows: image right, image down, optical axis) and its position."""
    tilt = math.radians(params.tilt_deg)
    c, s = math.cos(heading), math.sin(heading)
    ct, st = math.cos(tilt), math.sin(tilt)
    right = (s, -c, 0.0)
    axis = (ct * c, ct * s, -st)
    down = (-st * c, -st * s, -ct)  # axis x right
    position = (x + params.forward * c, y + params.forward * s, params.mount_height)
    return np.array([right, down, axis]), np.array(position)


def floor_to_image(params: CameraParams, x: float, y: float, heading: float) -> np.ndarray:
    """3x3 homography taking floor points (metres, homogeneous) to image pixels for a car pose."""
    rotation, position = camera_axes(params, x, y, heading)
    f = params.focal_px
    intrinsics = np.array([[f, 0, params.width / 2], [0, f, params.height / 2], [0, 0, 1]])
    extrinsic = np.column_stack([rotation[:, 0], rotation[:, 1], -rotation @ position])
    homography: np.ndarray = intrinsics @ extrinsic
    return homography


def project(params: CameraParams, pose: tuple[float, float, float], point: tuple[float, float]) -> tuple[float, float]:
    """Image pixel (column, row) where a floor point appears for a car pose."""
    u, v, w = floor_to_image(params, *pose) @ np.array([point[0], point[1], 1.0])
    return u / w, v / w


class SimCamera:
    """Renders what the camera sees; implements `hal.interfaces.Camera`."""

    def __init__(self, params: CameraParams, floor: FloorMap, vehicle: Vehicle, rng: np.random.Generator):
        self.params = params
        self._floor = floor
        self._pixels_from_world = np.linalg.inv(floor.world_to_pixel_matrix())
        self._vehicle = vehicle
        self._rng = rng
        self._noise = [
            np.clip(rng.normal(128, params.noise_std, (params.height, params.width, 3)), 0, 255).astype(np.uint8)
            for _ in range(NOISE_BANK if params.noise_std > 0 else 0)
        ]
        self.frames = 0

    def render(self, x: float, y: float, heading: float, out: np.ndarray | None = None) -> np.ndarray:
        """The frame for a car pose (noise and jitter included when configured), written into `out` if given."""
        p = self.params
        check_frame_array(out, p.width, p.height)
        jitter = bool(p.exposure_jitter or p.colour_jitter)
        noise = bool(self._noise)
        homography = floor_to_image(p, x, y, heading) @ self._pixels_from_world
        # nearest-neighbour sampling costs a quarter of bilinear; the blur below hides the difference
        interpolation = cv2.INTER_NEAREST if p.blur else cv2.INTER_LINEAR
        # the last step of the chain writes into `out`
        frame = cv2.warpPerspective(
            self._floor.image,
            homography,
            (p.width, p.height),
            dst=None if jitter or noise or p.blur else out,
            flags=interpolation,
            borderValue=(90, 90, 90),
        )
        if jitter:
            gain = 1 + self._rng.normal(0, p.exposure_jitter) + self._rng.normal(0, p.colour_jitter, 3)
            frame = cv2.transform(frame, np.diag(gain), dst=None if noise or p.blur else out)
        if noise:
            grain = self._noise[int(self._rng.integers(len(self._noise)))]
            frame = cv2.addWeighted(frame, 1.0, grain, 1.0, -128.0, dst=None if p.blur else out)
        if p.blur:
            frame = cv2.GaussianBlur(frame, (3, 3), 0.6, dst=out)
        self.frames += 1
        return frame

    def read(self, out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """The frame at the world's current pose and simulated time (hal.interfaces.Camera)."""
        state = self._vehicle.state
        return self.render(state.x, state.y, state.heading, out), state.t
