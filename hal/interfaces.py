"""What a node may ask of the car: drive the wheels, read the sensors, read the camera.

The simulator (`sim`) and the real car (the board client and the OpenCV camera)
implement these; a node holds one and never knows which. Units are SI: metres, seconds,
radians, volts. Time stamps are seconds on the implementation's clock (simulated time in
`sim`, `time.monotonic()` on the car).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class SensorReading:
    """One reading of every sensor, taken at `t`."""

    t: float
    encoder_ticks: tuple[int, int]  # left, right, counted since start (signed)
    wheel_speeds: tuple[float, float]  # left, right, m/s, from the encoders
    line_sensors: tuple[float, ...]  # reflectance darkness, left to right: 0 = bright floor, 1 = black tape
    yaw_rate: float  # rad/s, counter-clockwise positive (gyro z)
    range_m: float | None  # distance to the nearest obstacle ahead, None when nothing is in range
    battery_v: float


class Wheels(Protocol):
    """The two driven wheels of a differential-drive car."""

    def set_wheel_speeds(self, left: float, right: float) -> None:
        """Ask for wheel surface speeds in m/s (forward positive); the car clamps them to its limits."""

    def stop(self) -> None:
        """Stop both wheels."""


class Sensors(Protocol):
    """The car's sensors, read together."""

    def read(self) -> SensorReading:
        """The latest reading."""
        ...


class Camera(Protocol):
    """A camera looking ahead of the car."""

    def read(self, out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """The latest frame (BGR, uint8, height x width x 3) and the time it was captured.

        `out`: an array of that shape and dtype to write the frame into (for example one
        lent by `Node.allocate_output`, so that sending it copies nothing); the frame
        returned is then `out`.
        """
        ...


def check_frame_array(out: np.ndarray | None, width: int, height: int) -> None:
    """Raise a clear ValueError unless `out` is None or a frame array of this size (height x width x 3 uint8)."""
    if out is not None and (out.shape != (height, width, 3) or out.dtype != np.uint8):
        shape = "x".join(map(str, out.shape))
        raise ValueError(f"a frame is {height}x{width}x3 uint8, not {shape} {out.dtype}: pass an array of that shape")
