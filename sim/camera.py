"""A forward-looking pinhole camera over the floor, rendered by one perspective warp.

The camera sits `forward` metres ahead of the axle at `height`, tilted `tilt_deg` down,
with a horizontal field of view `hfov_deg`. Each frame is the floor map warped by the
homography from floor to image for the car's pose (OpenCV `warpPerspective`), then given
exposure and colour jitter, sensor noise and a slight blur. The noise comes from a bank of
frames made once per camera, so a noisy frame costs one more pass, not a random draw per
pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from hal.camera_model import floor_to_image, is_distorted, undistort_pixels
from hal.description import CameraParams
from hal.interfaces import check_frame_array
from sim.floor import FloorMap
from sim.vehicle import Vehicle

NOISE_BANK = 16


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
        self._lens = lens_maps(params) if is_distorted(params) else None
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
            dst=None if jitter or noise or p.blur or self._lens else out,
            flags=interpolation,
            borderValue=(90, 90, 90),
        )
        if self._lens is not None:  # the lens bends the pinhole's image
            frame = cv2.remap(frame, *self._lens, cv2.INTER_LINEAR, dst=None if jitter or noise or p.blur else out)
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


def lens_maps(params: CameraParams) -> tuple[np.ndarray, np.ndarray]:
    """For `cv2.remap`: where each pixel of the distorted image comes from in the pinhole image."""
    columns, rows = np.meshgrid(np.arange(params.width, dtype=np.float64), np.arange(params.height, dtype=np.float64))
    ideal = undistort_pixels(params, np.column_stack([columns.ravel(), rows.ravel()]))
    shape = (params.height, params.width)
    return ideal[:, 0].reshape(shape).astype(np.float32), ideal[:, 1].reshape(shape).astype(np.float32)
