"""A forward-looking pinhole camera over the floor, rendered by one perspective warp.

The camera sits `forward` metres ahead of the axle at `height`, tilted `tilt_deg` down,
with a horizontal field of view `hfov_deg`. Each frame is the floor map warped by the
homography from floor to image for the car's pose (OpenCV `warpPerspective`, nearest
neighbour), then as a camera makes it: the lens's slight blur (times the frame's exposure
gain, in the same separable filter), then the sensor's noise with a colour cast.

Speed matters (`car collect` renders as fast as the graph takes frames; bench/sim_speed.py
holds a noisy frame to at most 3x the bare warp): the homography is the car's pose times
one matrix made once; the noise comes from a bank made once per camera, each frame split
into what it adds and what it takes away, so noise is two saturating byte additions; and
the colour cast (`colour_jitter`) is an offset per channel baked into each bank frame.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from hal.camera_model import floor_to_image, is_distorted, undistort_pixels
from hal.description import CameraParams
from hal.interfaces import check_frame_array
from sim.floor import FloorMap
from sim.vehicle import Vehicle

NOISE_BANK = 16
BLUR_SIGMA_PX = 0.6  # the lens's blur, pixels


class SimCamera:
    """Renders what the camera sees; implements `hal.interfaces.Camera`."""

    def __init__(
        self,
        params: CameraParams,
        floor: FloorMap,
        vehicle: Vehicle,
        rng: np.random.Generator,
        motion_blur_px: float = 0.0,
    ):
        """`motion_blur_px`: streaks this many pixels long, up and down the image, at 1 m/s (0: none)."""
        self.params = params
        self._floor = floor
        # floor pixels -> image pixels for a car at the origin facing +x; a pose is one more 3x3 on the right
        self._car_to_image = floor_to_image(params, 0.0, 0.0, 0.0)
        self._pixels_from_world = np.linalg.inv(floor.world_to_pixel_matrix())
        self._vehicle = vehicle
        self._rng = rng
        self._lens_kernel = cv2.getGaussianKernel(3, BLUR_SIGMA_PX)
        self._motion_blur_px = motion_blur_px
        self._raised: list[np.ndarray] = []  # the noise bank: what each frame adds ...
        self._lowered: list[np.ndarray] = []  # ... and takes away
        if params.noise_std > 0 or params.colour_jitter > 0:
            shape = (params.height, params.width, 3)
            for _ in range(NOISE_BANK):
                cast = rng.normal(0, params.colour_jitter * 128, 3)  # a colour cast, grey levels per channel
                noise = np.rint(rng.normal(0, params.noise_std, shape) + cast)
                self._raised.append(np.clip(noise, 0, 255).astype(np.uint8))
                self._lowered.append(np.clip(-noise, 0, 255).astype(np.uint8))
        self._lens = lens_maps(params) if is_distorted(params) else None
        self.frames = 0

    def homography(self, x: float, y: float, heading: float) -> np.ndarray:
        """Floor-map pixels to image pixels for a car pose."""
        c, s = math.cos(heading), math.sin(heading)
        world_to_car = np.array([[c, s, -(c * x + s * y)], [-s, c, s * x - c * y], [0.0, 0.0, 1.0]])
        homography: np.ndarray = self._car_to_image @ world_to_car @ self._pixels_from_world
        return homography

    def render(
        self, x: float, y: float, heading: float, out: np.ndarray | None = None, speed: float = 0.0
    ) -> np.ndarray:
        """The frame for a car pose (blur, exposure, noise included when configured), written into `out` if given;
        `speed` (m/s) streaks it when the camera has motion blur."""
        p = self.params
        check_frame_array(out, p.width, p.height)
        gain = 1 + self._rng.normal(0, p.exposure_jitter) if p.exposure_jitter else 1.0
        streak = self._motion_blur_px * abs(speed)
        filtered = p.blur or gain != 1.0 or streak >= 1
        noise = bool(self._raised)
        # each step writes into `out` when it is the last
        frame = cv2.warpPerspective(
            self._floor.image,
            self.homography(x, y, heading),
            (p.width, p.height),
            dst=None if filtered or noise or self._lens is not None else out,
            flags=cv2.INTER_NEAREST,  # a quarter of bilinear's cost; the lens's blur hides the difference
            borderValue=(90, 90, 90),
        )
        if self._lens is not None:  # the lens bends the pinhole's image
            frame = cv2.remap(frame, *self._lens, cv2.INTER_LINEAR, dst=None if filtered or noise else out)
        if filtered:
            across = self._lens_kernel if p.blur else np.array([[1.0]])
            down = self._vertical_kernel(streak, p.blur)
            frame = cv2.sepFilter2D(frame, -1, across * gain, down, dst=None if noise else out)
        if noise:
            k = int(self._rng.integers(len(self._raised)))
            frame = cv2.add(frame, self._raised[k], dst=out)
            frame = cv2.subtract(frame, self._lowered[k], dst=out)
        self.frames += 1
        return frame

    def _vertical_kernel(self, streak: float, lens: bool) -> np.ndarray:
        """The filter's vertical part: the lens's blur, drawn out into a streak at speed."""
        length = int(streak)
        if length < 2:
            return self._lens_kernel if lens else np.array([[1.0]])
        box = np.full((length, 1), 1.0 / length)
        return np.convolve(box[:, 0], self._lens_kernel[:, 0])[:, None] if lens else box

    def read(self, out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """The frame at the world's current pose and simulated time (hal.interfaces.Camera)."""
        state = self._vehicle.state
        return self.render(state.x, state.y, state.heading, out, state.speed), state.t


def lens_maps(params: CameraParams) -> tuple[np.ndarray, np.ndarray]:
    """For `cv2.remap`: where each pixel of the distorted image comes from in the pinhole image."""
    columns, rows = np.meshgrid(np.arange(params.width, dtype=np.float64), np.arange(params.height, dtype=np.float64))
    ideal = undistort_pixels(params, np.column_stack([columns.ravel(), rows.ravel()]))
    shape = (params.height, params.width)
    return ideal[:, 0].reshape(shape).astype(np.float32), ideal[:, 1].reshape(shape).astype(np.float32)
