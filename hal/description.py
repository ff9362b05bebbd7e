"""The car description: geometry, wheels, motors, camera and sensors of one car, from a YAML file.

The nodes that drive the car (controller, line detector, teleop) and the simulator read
the same description, so the real car's numbers never come from the simulator. The
shipped default, `hal/cars/sim.yml`, is the simulator's car (these classes' defaults,
checked equal by a test); a real car's file (written by calibration, or by hand) names
only what differs:

    car: {wheel_base: 0.16, wheel_radius: 0.034}
    camera: {tilt_deg: 30, mount_height: 0.11}

`car launch FILE --car my_car.yml` hands it to every node (CAR_DESCRIPTION); without
--car, a `--hw` run takes the user's file (`~/.config/car/car.yml`, where `car calibrate`
writes what it measured of the real car) if there is one, and a `--sim` run the shipped
default, so calibrating the real car never changes simulated runs. `SIM_ENV_VAR` (`car launch --sim-car FILE`) gives the
simulator a car of its own: the true car, when the nodes are to use a calibrated model of it.

The camera is a pinhole with OpenCV's distortion model: focal lengths and principal point
in pixels (`fx`, `fy`, `cx`, `cy`; 0 means from `hfov_deg` and the image centre), the
distortion coefficients `k1 k2 p1 p2 k3`, mounted `mount_height` above the floor,
`forward` ahead of the axle and `lateral` to its left, pitched down `tilt_deg`, turned
left `yaw_deg`, rolled clockwise (seen from behind) `roll_deg`. `car calibrate camera`
measures all of them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENV_VAR = "CAR_DESCRIPTION"
SIM_ENV_VAR = "CAR_SIM_DESCRIPTION"
DEFAULT_FILE = Path(__file__).parent / "cars" / "sim.yml"


def user_file() -> Path:
    """Where the user's car description lives: $XDG_CONFIG_HOME/car/car.yml (~/.config/car/car.yml)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "car" / "car.yml"


class DescriptionError(ValueError):
    """A car description that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class CarParams:
    """Everything physical about the car, with defaults for a typical 2WD kit car."""

    wheel_base: float = 0.15  # m, between the left and right wheels
    wheel_radius: float = 0.033  # m
    motor_time_constant: float = 0.06  # s, first-order response of wheel speed to a command
    dead_band: float = 0.04  # m/s, smaller commands do not turn the wheel
    max_wheel_speed: float = 1.0  # m/s with a full battery
    encoder_ticks_per_rev: int = 390  # e.g. 13-pulse hall encoder behind a 1:30 gearbox
    battery_full_v: float = 8.4  # 2S Li-ion, charged
    battery_empty_v: float = 6.6
    battery_capacity_ah: float = 2.0
    battery_internal_ohm: float = 0.25
    idle_current_a: float = 0.15
    motor_current_a_per_mps: float = 0.9  # per wheel, at steady speed
    slip: float = 0.0  # fraction of wheel speed lost between wheel and floor (0..1)
    process_noise: float = 0.0  # m/s per sqrt(s), random walk on each wheel's speed
    body_front: float = 0.09  # m from the axle to the front of the body (the bumper)
    body_rear: float = 0.06  # m from the axle to the back of the body
    body_width: float = 0.17  # m, the body's width (the car's footprint with body_front and body_rear)


@dataclass(frozen=True)
class CameraParams:
    """Mounting, optics and image quality of the camera."""

    width: int = 320
    height: int = 240
    fps: float = 30.0
    mount_height: float = 0.12  # m above the floor
    tilt_deg: float = 35.0  # down from horizontal
    hfov_deg: float = 70.0  # horizontal field of view (when fx is 0)
    forward: float = 0.06  # m ahead of the axle
    lateral: float = 0.0  # m left of the car's centre line
    yaw_deg: float = 0.0  # turned left of straight ahead
    roll_deg: float = 0.0  # rolled clockwise, seen from behind
    fx: float = 0.0  # focal length in pixels, across (0: from hfov_deg)
    fy: float = 0.0  # ... down (0: as fx)
    cx: float = 0.0  # principal point, pixels (0: the image centre)
    cy: float = 0.0
    k1: float = 0.0  # radial distortion (OpenCV's model)
    k2: float = 0.0
    p1: float = 0.0  # tangential distortion
    p2: float = 0.0
    k3: float = 0.0
    noise_std: float = 4.0  # grey levels; 0 turns noise off
    blur: bool = True
    exposure_jitter: float = 0.06  # relative, per frame
    colour_jitter: float = 0.03  # relative, per channel and frame

    @property
    def focal_px(self) -> float:
        """Focal length in pixels, across."""
        return self.fx or (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def distortion(self) -> tuple[float, float, float, float, float]:
        """OpenCV's distortion coefficients (k1, k2, p1, p2, k3)."""
        return (self.k1, self.k2, self.p1, self.p2, self.k3)


@dataclass(frozen=True)
class SensorParams:
    """Placement and quality of the sensors."""

    line_sensor_count: int = 5
    line_sensor_spacing: float = 0.015  # m between neighbouring sensors
    line_sensor_forward: float = 0.07  # m ahead of the axle
    line_sensor_footprint: float = 0.006  # m, diameter of the spot a sensor sees
    line_sensor_noise: float = 0.02
    gyro_bias: float = 0.01  # rad/s, the largest bias a gyro gets (drawn once per seed)
    gyro_noise: float = 0.004  # rad/s
    range_forward: float = 0.08  # m ahead of the axle
    range_max: float = 2.0  # m
    range_min: float = 0.02  # m
    range_cone_deg: float = 15.0  # full angle
    range_noise: float = 0.003  # m
    battery_noise: float = 0.01  # V
    # each line sensor's reading over bare floor and over the tape (`car calibrate line-sensors`);
    # the board's readings are scaled so that floor reads 0 and tape 1, whatever the sensor
    line_floor: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    line_tape: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)


@dataclass(frozen=True)
class WheelParams:
    """Each wheel's wiring and motor as `car calibrate motors` measures them; the board applies them."""

    left_motor: int = 1  # 1, or -1: wired backwards (a forward duty turns the wheel backwards)
    right_motor: int = 1
    left_encoder: int = 1  # 1, or -1: counts down when the wheel goes forward
    right_encoder: int = 1
    left_dead_band: float = 0.0  # duty (0..1) below which the wheel stands still
    right_dead_band: float = 0.0
    left_duty_per_mps: float = 1.0  # feed-forward: the duty (past the dead band) a wheel speed of 1 m/s takes
    right_duty_per_mps: float = 1.0
    ticks_per_metre: float = 0.0  # encoder counts per metre of travel (0: from wheel_radius and encoder_ticks_per_rev)


@dataclass(frozen=True)
class CarDescription:
    """One car: its body and motors, its camera, its sensors."""

    car: CarParams = field(default_factory=CarParams)
    camera: CameraParams = field(default_factory=CameraParams)
    sensors: SensorParams = field(default_factory=SensorParams)
    wheels: WheelParams = field(default_factory=WheelParams)

    def ticks_per_metre(self) -> float:
        """Encoder counts per metre: calibrated, or from the wheel's radius and counts per turn."""
        return self.wheels.ticks_per_metre or self.car.encoder_ticks_per_rev / (2 * math.pi * self.car.wheel_radius)


def default_path() -> Path:
    """The description used when none is named: $CAR_DESCRIPTION, the user's file if it exists, the shipped one."""
    given = os.environ.get(ENV_VAR)
    if given:
        return Path(given)
    mine = user_file()
    return mine if mine.is_file() else DEFAULT_FILE


def load_description(path: str | Path | None = None) -> CarDescription:
    """The description in `path` (None: `default_path()`); DescriptionError if unusable."""
    file = Path(path or default_path())
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DescriptionError(f"{file}: cannot read the car description ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise DescriptionError(f"{file}: not YAML ({str(exc).splitlines()[0]})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise DescriptionError(f"{file}: a car description is a mapping of car, camera and sensors")
    default = CarDescription()
    sections = {f.name: getattr(default, f.name) for f in dataclasses.fields(CarDescription)}
    unknown = set(raw) - set(sections)
    if unknown:
        raise DescriptionError(
            f"{file}: unknown section {', '.join(sorted(map(str, unknown)))} (use {', '.join(sections)})"
        )
    built = {name: _section(file, name, default, raw.get(name) or {}) for name, default in sections.items()}
    description = CarDescription(**built)
    count = description.sensors.line_sensor_count
    for key in ("line_floor", "line_tape"):
        if len(getattr(description.sensors, key)) != count:
            raise DescriptionError(f"{file}: `sensors.{key}` needs one value for each of the {count} line sensors")
    if any(v not in (-1, 1) for v in dataclasses.astuple(description.wheels)[:4]):
        raise DescriptionError(f"{file}: the `wheels` motor and encoder signs are 1 or -1")
    return description


def _section(file: Path, name: str, default: Any, values: Any) -> Any:
    if not isinstance(values, dict):
        raise DescriptionError(f"{file}: `{name}` must be a mapping of key: value")
    fields = {f.name: f for f in dataclasses.fields(default)}
    changes = {}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(fields)
            raise DescriptionError(f"{file}: `{name}` has no key `{key}` (keys: {known})")
        wanted = type(getattr(default, key))
        if wanted is tuple:  # a list of numbers
            if not isinstance(value, list) or not all(_is_number(v) for v in value):
                raise DescriptionError(f"{file}: `{name}.{key}` must be a list of numbers, not {value!r}")
            changes[key] = tuple(float(v) for v in value)
            continue
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not wanted or (wanted is float and not math.isfinite(value)):
            raise DescriptionError(f"{file}: `{name}.{key}` must be a {wanted.__name__}, not {value!r}")
        changes[key] = value
    return dataclasses.replace(default, **changes)


class _Dumper(yaml.SafeDumper):
    """YAML's safe dumper, lists of numbers on one line ([0.0, 0.0, ...])."""


_Dumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _plain(section: Any) -> dict[str, Any]:
    """A section as YAML's safe dumper takes it (lists, not tuples)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(section).items()}


def write_section(path: Path, section: str, values: Any, by: str) -> None:
    """Put one section (a dataclass of this module) into the description at `path`, keeping its other sections.

    A file that is there but not a usable description is refused (DescriptionError), not overwritten.
    """
    raw: dict[str, Any] = {}
    if path.is_file():
        load_description(path)  # refuse to overwrite what cannot be read
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw[section] = _plain(values)
    sections = [f.name for f in dataclasses.fields(CarDescription)]
    ordered = {name: raw[name] for name in sections if name in raw}
    header = f"# A car description (hal/description.py); `{section}` written by `{by}`.\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(header + yaml.dump(ordered, Dumper=_Dumper, sort_keys=False), encoding="utf-8")
    partial.replace(path)


def to_yaml(description: CarDescription) -> str:
    """The description as the YAML `load_description` reads."""
    sections = {f.name: _plain(getattr(description, f.name)) for f in dataclasses.fields(description)}
    return yaml.dump(sections, Dumper=_Dumper, sort_keys=False)
