"""Sensor models: line-sensor array, wheel encoders, yaw-rate gyro, ultrasonic ranger, battery.

`SimSensors` implements `hal.interfaces.Sensors` and `SimWheels` implements
`hal.interfaces.Wheels` over a `sim.vehicle.Vehicle`; all noise comes from the generator
they are given, so a seed fixes every reading.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from hal.description import SensorParams
from hal.interfaces import SensorReading
from sim.floor import FloorMap
from sim.track import Obstacle
from sim.vehicle import Vehicle


class SimWheels:
    """`hal.interfaces.Wheels` for the simulated car."""

    def __init__(self, vehicle: Vehicle):
        self._vehicle = vehicle
        self.requested = (0.0, 0.0)  # the latest set-points, m/s (what a board's brake may then limit)

    def set_wheel_speeds(self, left: float, right: float) -> None:
        """Set-points in m/s; the car applies dead band and limits."""
        self.requested = (float(left), float(right))
        self._vehicle.command(left, right)

    def stop(self) -> None:
        """Both wheels to zero."""
        self.set_wheel_speeds(0.0, 0.0)


class SimSensors:
    """`hal.interfaces.Sensors` for the simulated car."""

    def __init__(
        self,
        params: SensorParams,
        vehicle: Vehicle,
        floor: FloorMap,
        obstacles: tuple[Obstacle, ...],
        rng: np.random.Generator,
    ):
        self.params = params
        self._vehicle = vehicle
        self._floor = floor
        self._obstacles = obstacles
        self._rng = rng
        # calibrated like a real array: 0 over the bare floor, 1 over the line (dark tape or white paint)
        grey = cv2.cvtColor(floor.image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        bare, line = _grey(floor.floor_rgb), _grey(floor.line_rgb)
        contrast = line - bare if abs(line - bare) >= 1.0 else -1.0
        darkness = np.clip((grey - bare) / contrast, 0.0, 1.0)
        spot = max(1, round(params.line_sensor_footprint * floor.px_per_m))
        self._seen = cv2.blur(darkness, (spot, spot))  # what a sensor sees: the mean over its spot
        self._bias = float(rng.uniform(-params.gyro_bias, params.gyro_bias))
        self._last_ticks = (0, 0)
        self._last_t = 0.0
        self._speeds = (0.0, 0.0)

    def line_values(self, x: float, y: float, heading: float) -> tuple[float, ...]:
        """Darkness under each line sensor, left to right, noise included (0 floor .. 1 tape)."""
        p = self.params
        cx = x + p.line_sensor_forward * math.cos(heading)
        cy = y + p.line_sensor_forward * math.sin(heading)
        lx, ly = -math.sin(heading), math.cos(heading)  # to the car's left
        half = (p.line_sensor_count - 1) / 2
        height, width = self._seen.shape
        noise = self._rng.normal(0, p.line_sensor_noise, p.line_sensor_count)
        values = []
        for k in range(p.line_sensor_count):
            offset = (half - k) * p.line_sensor_spacing
            u, v = self._floor.to_pixel(cx + offset * lx, cy + offset * ly)
            col, row = round(u), round(v)
            dark = float(self._seen[row, col]) if 0 <= row < height and 0 <= col < width else 0.0
            values.append(min(1.0, max(0.0, dark + float(noise[k]))))
        return tuple(values)

    def encoder_ticks(self) -> tuple[int, int]:
        """Ticks counted on each wheel since start (whole ticks, signed)."""
        p = self._vehicle.params
        per_metre = p.encoder_ticks_per_rev / (2 * math.pi * p.wheel_radius)
        s = self._vehicle.state
        return math.floor(s.left_travel * per_metre), math.floor(s.right_travel * per_metre)

    def range_to_obstacle(self, x: float, y: float, heading: float) -> float | None:
        """Distance to the nearest obstacle in the ranger's cone, or None beyond range."""
        p = self.params
        ox = x + p.range_forward * math.cos(heading)
        oy = y + p.range_forward * math.sin(heading)
        half = math.radians(p.range_cone_deg) / 2
        nearest = math.inf
        for k in range(7):
            angle = heading - half + 2 * half * k / 6
            dx, dy = math.cos(angle), math.sin(angle)
            for box in self._obstacles:
                hit = _ray_box(ox, oy, dx, dy, box)
                if hit is not None and hit < nearest:
                    nearest = hit
        if nearest > p.range_max:
            return None
        return max(p.range_min, nearest + float(self._rng.normal(0, p.range_noise)))

    def read(self) -> SensorReading:
        """Every sensor at the current simulated time (hal.interfaces.Sensors)."""
        s, p = self._vehicle.state, self.params
        ticks = self.encoder_ticks()
        if s.t > self._last_t:
            metres_per_tick = (
                2 * math.pi * self._vehicle.params.wheel_radius / self._vehicle.params.encoder_ticks_per_rev
            )
            dt = s.t - self._last_t
            self._speeds = (
                (ticks[0] - self._last_ticks[0]) * metres_per_tick / dt,
                (ticks[1] - self._last_ticks[1]) * metres_per_tick / dt,
            )
            self._last_ticks, self._last_t = ticks, s.t
        yaw_rate = (s.right_speed - s.left_speed) / self._vehicle.params.wheel_base * (1 - self._vehicle.params.slip)
        return SensorReading(
            t=s.t,
            encoder_ticks=ticks,
            wheel_speeds=self._speeds,
            line_sensors=self.line_values(s.x, s.y, s.heading),
            yaw_rate=yaw_rate + self._bias + float(self._rng.normal(0, p.gyro_noise)),
            range_m=self.range_to_obstacle(s.x, s.y, s.heading),
            battery_v=self._vehicle.battery_voltage() + float(self._rng.normal(0, p.battery_noise)),
        )


def _grey(rgb: tuple[int, int, int]) -> float:
    """OpenCV's grey level of an RGB colour."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _ray_box(ox: float, oy: float, dx: float, dy: float, box: Obstacle) -> float | None:
    """Distance along a ray to an axis-aligned box (slab method), None when it misses."""
    t_near, t_far = -math.inf, math.inf
    for origin, direction, low, high in (
        (ox, dx, box.x - box.width / 2, box.x + box.width / 2),
        (oy, dy, box.y - box.depth / 2, box.y + box.depth / 2),
    ):
        if abs(direction) < 1e-12:
            if not low <= origin <= high:
                return None
            continue
        t1, t2 = (low - origin) / direction, (high - origin) / direction
        t_near, t_far = max(t_near, min(t1, t2)), min(t_far, max(t1, t2))
    if t_near > t_far or t_far < 0:
        return None
    return max(t_near, 0.0)
