"""The simulated car as the board's pins see it: the wiring of `firmware/board_pico.py`.

Both board emulator back ends (the firmware on the MicroPython VM, or under CPython)
drive the same car through this: the H-bridges' PWM duty and direction pins turn the
wheels, the encoders count the wheels' travel, the multiplexed ADC reads the line sensors,
the ranger's echo time and the gyro's registers come from the world. The wiring is the
car's, not the firmware's: a firmware flashed with another pin map finds the car wired
as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from firmware import board_pico as WIRING
from sim.world import World

IMU_ADDRESS = 0x68
GYRO_Z_REGISTER = 0x47
GYRO_LSB_PER_RAD = 131.0 * 180 / math.pi
SOUND_M_PER_US = 0.000343


class PinLevels(Protocol):
    """What the board's firmware drives: pin levels and PWM duties."""

    def level(self, pin: int) -> int:
        """0 or 1 (0 for a pin never driven)."""
        ...

    def duty_u16(self, pin: int) -> int:
        """The PWM duty on a pin, 0..65535 (0 for none)."""
        ...


class FaultError(ValueError):
    """A fault the emulator does not know; the message lists those it does."""


@dataclass(frozen=True)
class WiringFaults:
    """How a real car may be put together wrong, for calibration to find (`car board emulator --fault`).

    `left-motor-reversed` / `right-motor-reversed`: the motor's two wires swapped;
    `left-encoder-reversed` / `right-encoder-reversed`: its channels swapped;
    `line-sensor-N=F`: sensor N (0 = leftmost) sees only the fraction F of the tape's darkness.
    """

    reversed_motors: frozenset[str] = frozenset()
    reversed_encoders: frozenset[str] = frozenset()
    weak_line_sensors: dict[int, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, names: list[str]) -> WiringFaults:
        """From the --fault values; FaultError for one it does not know."""
        motors, encoders, weak = set(), set(), {}
        for name in names:
            side, _, rest = name.partition("-")
            if side in ("left", "right") and rest == "motor-reversed":
                motors.add(side)
            elif side in ("left", "right") and rest == "encoder-reversed":
                encoders.add(side)
            elif name.startswith("line-sensor-") and "=" in name:
                index, _, fraction = name.removeprefix("line-sensor-").partition("=")
                try:
                    weak[int(index)] = float(fraction)
                except ValueError:
                    raise FaultError(f"--fault {name}: give line-sensor-N=F, e.g. line-sensor-2=0.4") from None
            else:
                raise FaultError(
                    f"--fault {name}: not a fault the emulator knows (left-motor-reversed, right-motor-reversed, "
                    "left-encoder-reversed, right-encoder-reversed, line-sensor-N=F)"
                )
        return cls(frozenset(motors), frozenset(encoders), weak)


class EncoderCount(NamedTuple):
    """One encoder: its channel pins and how far it has counted."""

    a: int
    b: int
    position: int  # A edges counted, forward positive


def h_bridge_duty(duty_u16: int, forward: int, backward: int) -> float:
    """The signed duty an H-bridge channel drives: PWM magnitude, direction from its two pins."""
    if forward == backward:
        return 0.0  # brake (or coast)
    return duty_u16 / 65535 if forward else -duty_u16 / 65535


class CarWiring:
    """The board's view of a `World`: call `step` once per millisecond."""

    def __init__(self, world: World, faults: WiringFaults | None = None, dead_band: float = 0.0):
        """`dead_band`: the duty below which a motor stands still (give the world's car none of its own)."""
        self.world = world
        self.faults = faults or WiringFaults()
        self.dead_band = dead_band
        self.i2c_devices = [IMU_ADDRESS]
        self.i2c_registers: dict[tuple[int, int], bytes] = {}  # (address, register) -> bytes
        self._baseline = (0, 0)
        self.reset_encoders()

    def reset_encoders(self) -> None:
        """Count from here: a board that restarts starts its encoder counts at zero."""
        self._baseline = self._travel_counts()

    def _travel_counts(self) -> tuple[int, int]:
        state = self.world.vehicle.state
        per_tick = WIRING.WHEEL_MM_PER_TICK
        return math.floor(state.left_travel * 1000 / per_tick), math.floor(state.right_travel * 1000 / per_tick)

    def encoder_counts(self) -> tuple[EncoderCount, EncoderCount]:
        """Both encoders' counts since the last `reset_encoders`."""
        left, right = self._travel_counts()
        left_sign = -1 if "left" in self.faults.reversed_encoders else 1
        right_sign = -1 if "right" in self.faults.reversed_encoders else 1
        return (
            EncoderCount(*WIRING.ENCODER_LEFT, left_sign * (left - self._baseline[0])),
            EncoderCount(*WIRING.ENCODER_RIGHT, right_sign * (right - self._baseline[1])),
        )

    def adc(self, pins: PinLevels, pin: int) -> int:
        """What `ADC(pin).read_u16()` reads: the battery divider, or the line sensor the multiplexer selects."""
        if pin == WIRING.BATTERY_ADC:
            volts = self.world.vehicle.battery_voltage() / WIRING.BATTERY_DIVIDER
            return max(0, min(0xFFFF, int(volts / 3.3 * 0xFFFF)))
        if pin != WIRING.LINE_MUX_ADC:
            return 0
        channel = sum(pins.level(p) << bit for bit, p in enumerate(WIRING.LINE_MUX_SELECT))
        state = self.world.vehicle.state
        values = self.world.sensors.line_values(state.x, state.y, state.heading)
        if channel >= len(values):
            return 0xFFFF  # an unconnected multiplexer input reads like bright floor
        darkness = values[channel] * self.faults.weak_line_sensors.get(channel, 1.0)
        return int((1.0 - darkness) * 0xFFFF)  # a dark surface reflects little: a low reading

    def echo_us(self) -> int:
        """What `time_pulse_us(echo, 1)` measures: the ranger's round trip, or -2 (timeout) with nothing in range."""
        state = self.world.vehicle.state
        distance = self.world.sensors.range_to_obstacle(state.x, state.y, state.heading)
        return -2 if distance is None else int(distance * 2 / SOUND_M_PER_US)

    def motor_duties(self, pins: PinLevels) -> tuple[float, float]:
        """The signed duties the left and right motors get (a motor wired backwards turns the other way)."""
        left = h_bridge_duty(pins.duty_u16(WIRING.MOTOR_LEFT[0]), *(pins.level(p) for p in WIRING.MOTOR_LEFT[1:]))
        right = h_bridge_duty(pins.duty_u16(WIRING.MOTOR_RIGHT[0]), *(pins.level(p) for p in WIRING.MOTOR_RIGHT[1:]))
        return (
            -left if "left" in self.faults.reversed_motors else left,
            -right if "right" in self.faults.reversed_motors else right,
        )

    def _past_dead_band(self, duty: float) -> float:
        """A motor's share of its top speed: nothing within the dead band, then in proportion to the duty past it."""
        if abs(duty) <= self.dead_band:
            return 0.0
        return math.copysign((abs(duty) - self.dead_band) / (1.0 - self.dead_band), duty)

    def step(self, pins: PinLevels | None, seconds: float) -> None:
        """Motors follow the duties (`pins` None: nothing drives them), the car moves, the gyro updates."""
        if pins is not None:
            top = self.world.vehicle.params.max_wheel_speed
            left, right = (self._past_dead_band(d) for d in self.motor_duties(pins))
            self.world.wheels.set_wheel_speeds(left * top, right * top)
        self.world.step(seconds)
        state = self.world.vehicle.state
        yaw = (state.right_speed - state.left_speed) / self.world.vehicle.params.wheel_base
        raw = max(-32768, min(32767, int(yaw * GYRO_LSB_PER_RAD))) & 0xFFFF
        self.i2c_registers[(IMU_ADDRESS, GYRO_Z_REGISTER)] = bytes([raw >> 8, raw & 0xFF])
