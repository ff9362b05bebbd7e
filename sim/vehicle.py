"""Differential-drive dynamics of a small kit car, integrated in fixed 1 ms steps.

Each wheel follows its speed command with a first-order lag (`motor_time_constant`); a
command smaller than `dead_band` does not turn the wheel; commands are clamped to the
top speed, which sags with the battery. Ground speed may lose a fraction to `slip`, and
`process_noise` adds a random walk to the wheel speeds. Pose is integrated exactly for
constant wheel speeds over each step, so larger `step(dt)` calls give the same result as
many small ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hal.description import CarParams

SUBSTEP_S = 0.001


@dataclass
class VehicleState:
    """The car's state at time t."""

    t: float = 0.0
    x: float = 0.0
    y: float = 0.0
    heading: float = 0.0
    left_speed: float = 0.0  # wheel surface speed, m/s
    right_speed: float = 0.0
    left_travel: float = 0.0  # wheel surface travel, m (what the encoders count)
    right_travel: float = 0.0
    charge_used_ah: float = 0.0
    current_a: float = 0.0

    @property
    def speed(self) -> float:
        """Forward speed of the car's centre over the floor, m/s (ignoring slip)."""
        return (self.left_speed + self.right_speed) / 2


class Vehicle:
    """Integrates the car's motion; `command` sets the wheel speed set-points."""

    def __init__(self, params: CarParams, pose: tuple[float, float, float], rng: np.random.Generator):
        self.params = params
        self.state = VehicleState(x=pose[0], y=pose[1], heading=pose[2])
        self._rng = rng
        self._target = (0.0, 0.0)
        self._alpha = 1 - math.exp(-SUBSTEP_S / params.motor_time_constant)

    def command(self, left: float, right: float) -> None:
        """Set the wheel speed set-points (m/s); applied from the next step on."""
        self._target = (float(left), float(right))

    def battery_voltage(self) -> float:
        """Terminal voltage: open-circuit voltage by charge left, minus the sag under load."""
        p = self.params
        left = max(0.0, 1 - self.state.charge_used_ah / p.battery_capacity_ah)
        open_circuit = p.battery_empty_v + (p.battery_full_v - p.battery_empty_v) * left
        return open_circuit - self.state.current_a * p.battery_internal_ohm

    def _effective(self, target: float, limit: float) -> float:
        if abs(target) < self.params.dead_band:
            return 0.0
        return max(-limit, min(limit, target))

    def step(self, dt: float) -> None:
        """Advance by dt seconds in fixed sub-steps of 1 ms (the last one may be shorter).

        Set-points, limits and the battery's sag are taken once per call: they change on
        the scale of the control loop (10 ms and more), not within it.
        """
        p, s = self.params, self.state
        limit = p.max_wheel_speed * min(1.0, self.battery_voltage() / p.battery_full_v)
        target_left = self._effective(self._target[0], limit)
        target_right = self._effective(self._target[1], limit)
        grip = 1.0 - p.slip
        remaining = dt
        while remaining > 1e-12:
            h = min(SUBSTEP_S, remaining)
            remaining -= h
            alpha = self._alpha if h == SUBSTEP_S else 1 - math.exp(-h / p.motor_time_constant)
            left = s.left_speed + (target_left - s.left_speed) * alpha
            right = s.right_speed + (target_right - s.right_speed) * alpha
            if p.process_noise:
                kick = self._rng.normal(0.0, p.process_noise * math.sqrt(h), 2)
                left += float(kick[0])
                right += float(kick[1])
            s.left_speed, s.right_speed = left, right
            s.left_travel += left * h
            s.right_travel += right * h
            v = (left + right) / 2 * grip
            w = (right - left) / p.wheel_base * grip
            heading = s.heading
            if abs(w) < 1e-9:
                s.x += v * h * math.cos(heading)
                s.y += v * h * math.sin(heading)
            else:
                turned = heading + w * h
                s.x += v / w * (math.sin(turned) - math.sin(heading))
                s.y -= v / w * (math.cos(turned) - math.cos(heading))
                s.heading = turned
            s.t += h
        if s.heading > math.pi or s.heading < -math.pi:
            s.heading = math.atan2(math.sin(s.heading), math.cos(s.heading))
        s.current_a = p.idle_current_a + p.motor_current_a_per_mps * (abs(s.left_speed) + abs(s.right_speed))
        s.charge_used_ah += s.current_a * dt / 3600
