"""A stand-in for MicroPython's `machine` (and `micropython`) modules: firmware tests and the board emulator.

It keeps the state a test needs to read (pin levels, PWM duties) and lets the test supply
inputs (ADC readings, echo times, I2C registers, encoder edges) through `board`, the one
`FakeBoard` that the module-level classes use. `install()` puts the fakes in sys.modules
and the firmware folder on sys.path, as files sit flat on a real board.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.vm.quadrature import edges
from sim.wiring import h_bridge_duty

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"


class FakeBoard:
    """What the fake peripherals read from and write to."""

    def __init__(self) -> None:
        self.pins: dict[int, Pin] = {}
        self.pwms: dict[int, PWM] = {}
        self.adc: Callable[[int], int] = lambda pin: 0  # pin id -> read_u16 value
        self.echo_us: Callable[[], int] = lambda: -2  # time_pulse_us result: -2 is a timeout
        self.i2c_registers: dict[tuple[int, int], bytes] = {}  # (address, register) -> bytes
        self.i2c_devices: list[int] = []
        self._encoder_counts: dict[int, int] = {}  # channel A pin -> edges driven so far

    def level(self, pin: int) -> int:
        """A pin's level (0 for a pin never made): `sim.wiring.PinLevels`."""
        made = self.pins.get(pin)
        return 0 if made is None else made.level

    def duty_u16(self, pin: int) -> int:
        """The PWM duty on a pin (0 for none): `sim.wiring.PinLevels`."""
        pwm = self.pwms.get(pin)
        return 0 if pwm is None else pwm.duty

    def motor_duty(self, pwm: int, in1: int, in2: int) -> float:
        """The signed duty an H-bridge channel is driven with: PWM magnitude, direction pins."""
        return h_bridge_duty(self.duty_u16(pwm), self.level(in1), self.level(in2))

    def turn_encoder(self, a: int, b: int, count: int) -> None:
        """Drive quadrature edges on pins A and B until the encoder has moved to `count` edges."""
        for level_a, level_b in edges(self._encoder_counts.get(a, 0), count):
            self.pins[b].level = level_b
            self.pins[a].drive(level_a)
        self._encoder_counts[a] = count


board = FakeBoard()


class Pin:
    IN, OUT, PULL_UP, PULL_DOWN = 0, 1, 2, 3
    IRQ_RISING, IRQ_FALLING = 1, 2

    def __init__(self, pin_id: int, mode: int = -1, pull: int = -1) -> None:
        self.id = pin_id
        self.level = 0
        self.handler: Callable[[Pin], None] | None = None
        board.pins[pin_id] = self

    def value(self, level: int | None = None) -> int | None:
        if level is None:
            return self.level
        self.level = 1 if level else 0
        return None

    def irq(self, trigger: int = 0, handler: Callable[[Pin], None] | None = None) -> None:
        self.handler = handler

    def drive(self, level: int) -> None:
        """An input edge from outside: sets the level and runs the interrupt handler."""
        changed = level != self.level
        self.level = level
        if changed and self.handler is not None:
            self.handler(self)


class PWM:
    def __init__(self, pin: Pin) -> None:
        self.pin = pin
        self.duty = 0
        self.frequency = 0
        board.pwms[pin.id] = self

    def freq(self, frequency: int) -> None:
        self.frequency = frequency

    def duty_u16(self, duty: int) -> None:
        self.duty = duty


class ADC:
    def __init__(self, pin: Pin) -> None:
        self.pin = pin

    def read_u16(self) -> int:
        return board.adc(self.pin.id)


class I2C:
    def __init__(self, bus: int, sda: Pin | None = None, scl: Pin | None = None, freq: int = 400000) -> None:
        self.bus = bus

    def scan(self) -> list[int]:
        return list(board.i2c_devices)

    def writeto_mem(self, address: int, register: int, data: bytes) -> None:
        board.i2c_registers[(address, register)] = bytes(data)

    def readfrom_mem(self, address: int, register: int, count: int) -> bytes:
        return board.i2c_registers.get((address, register), bytes(count))[:count]


def time_pulse_us(pin: Pin, level: int, timeout_us: int = 1000000) -> int:
    return board.echo_us()


def unique_id() -> bytes:
    return b"\xe6\x61\x41\x04\x03\x2c\x45\x2a"


def install(firmware: Path = FIRMWARE) -> FakeBoard:
    """Fresh fakes in sys.modules and `firmware` (a folder of board files) first on sys.path."""
    global board
    board = FakeBoard()
    machine = types.ModuleType("machine")
    for name, value in list(globals().items()):
        if name in ("Pin", "PWM", "ADC", "I2C", "time_pulse_us", "unique_id"):
            setattr(machine, name, value)
    micropython: Any = types.ModuleType("micropython")
    micropython.kbd_intr = lambda char: None
    micropython.alloc_emergency_exception_buf = lambda size: None
    sys.modules["machine"] = machine
    sys.modules["micropython"] = micropython
    if str(firmware) in sys.path:
        sys.path.remove(str(firmware))
    sys.path.insert(0, str(firmware))
    return board
