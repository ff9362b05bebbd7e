"""The boards' pin maps: no pin wired twice, inputs and ADCs on pins that can be, and the wiring tables of the bring-up tutorial (docs/tutorials/real-car.md)."""

from __future__ import annotations

import importlib
import re
from types import ModuleType

import pytest

from tests.helpers import ROOT

# what each chip's pins can do (RP2040 datasheet; ESP32 datasheet, DevKit v1 pins)
CHIPS = {
    "pico": {
        "gpio": set(range(0, 29)),
        "adc": {26, 27, 28},
        "input_only": set(),
        "i2c0": ({0, 4, 8, 12, 16, 20}, {1, 5, 9, 13, 17, 21}),
    },
    "esp32": {
        "gpio": {0, 2, 4, 5, *range(12, 20), 21, 22, 23, 25, 26, 27, 32, 33, 34, 35, 36, 39},
        "adc": {32, 33, 34, 35, 36, 39},  # ADC1: ADC2 is taken by Wi-Fi
        "input_only": {34, 35, 36, 39},
        "i2c0": (None, None),  # any pin
    },
}


def pins_of(board: ModuleType) -> dict[str, int]:
    """Every pin a board file wires, by what it is for."""
    named = {
        "left motor PWM": board.MOTOR_LEFT[0],
        "left motor IN1": board.MOTOR_LEFT[1],
        "left motor IN2": board.MOTOR_LEFT[2],
        "right motor PWM": board.MOTOR_RIGHT[0],
        "right motor IN1": board.MOTOR_RIGHT[1],
        "right motor IN2": board.MOTOR_RIGHT[2],
        "motor driver STBY": board.MOTOR_STANDBY,
        "left encoder A": board.ENCODER_LEFT[0],
        "left encoder B": board.ENCODER_LEFT[1],
        "right encoder A": board.ENCODER_RIGHT[0],
        "right encoder B": board.ENCODER_RIGHT[1],
        "line mux S0": board.LINE_MUX_SELECT[0],
        "line mux S1": board.LINE_MUX_SELECT[1],
        "line mux S2": board.LINE_MUX_SELECT[2],
        "line mux output (ADC)": board.LINE_MUX_ADC,
        "ranger TRIG": board.RANGE_TRIG,
        "ranger ECHO": board.RANGE_ECHO,
        "IMU SDA": board.IMU_I2C[1],
        "IMU SCL": board.IMU_I2C[2],
        "battery divider (ADC)": board.BATTERY_ADC,
    }
    return named


OUTPUTS = ("PWM", "IN1", "IN2", "STBY", "mux S", "TRIG", "SDA", "SCL")


@pytest.mark.parametrize("name", ["pico", "esp32"])
def test_every_pin_is_wired_once_and_can_do_its_job(name: str) -> None:
    board = importlib.import_module(f"firmware.board_{name}")
    chip = CHIPS[name]
    pins = pins_of(board)
    used: dict[int, str] = {}
    for role, pin in pins.items():
        assert pin not in used, f"{name}: GPIO {pin} is both {used[pin]} and {role}"
        used[pin] = role
        assert pin in chip["gpio"], f"{name}: {role} on GPIO {pin}, which the chip does not bring out"
        if "ADC" in role:
            assert pin in chip["adc"], f"{name}: {role} on GPIO {pin}, which has no (usable) ADC"
        if any(word in role for word in OUTPUTS):
            assert pin not in chip["input_only"], f"{name}: {role} drives GPIO {pin}, which is input only"
        if "encoder" in role:
            assert pin not in chip["input_only"], f"{name}: {role} on GPIO {pin}, which has no pull-up"
    sda, scl = chip["i2c0"]
    if sda is not None:
        assert board.IMU_I2C[1] in sda and board.IMU_I2C[2] in scl, f"{name}: the IMU is not on I2C0's pins"


@pytest.mark.parametrize("name", ["pico", "esp32"])
def test_the_bring_up_tutorials_wiring_table_is_the_pin_map(name: str) -> None:
    board = importlib.import_module(f"firmware.board_{name}")
    readme = (ROOT / "docs" / "tutorials" / "real-car.md").read_text()
    table = readme.split(f"<!-- wiring: {name} -->")[1].split("<!-- end -->")[0]
    rows = dict(re.findall(r"^\| ([^|]+?) \| GP(?:IO)?(\d+) \|", table, flags=re.MULTILINE))
    assert {role: int(pin) for role, pin in rows.items()} == pins_of(board)
