"""The learned pilot: camera frames -> a model trained with `car train` -> wheel commands.

    car launch dataflows/pilot.yml --model models/lane.onnx --track lane_loop

It reads only what a real car has: the camera's frames (`image`) and the sensor readings
(`sensors`: the measured wheel speeds and the ranger, for the safety guard). Each frame
goes through the model (nodes.pilot_model, OpenCV's DNN module on one core), whose path
curvature and speed become wheel speeds; the command passes the frame's metadata back, so
the simulator waits for it (nodes.car_io).

Its tunables are `car param`s: `speed_scale` (the model's speed times this) and
`min_confidence` (below it the model counts as unsure of the road). The safety policy is
every pilot's (nodes.safety): no fresh frame for `STALE_FRAMES` frame periods, or the model
unsure for longer than `UNSURE_S` seconds or `UNSURE_M` metres, stops the car and says
why; an obstacle ahead slows and stops it.

The model comes from `CAR_MODEL` (`car launch --model FILE`, checked before anything
starts); a model that cannot be loaded ends the node with one clear line.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import cv2

from nodes.pilot_model import MODEL_ENV, Decision, ModelError, load_model

STALE_FRAMES = 5  # camera frame periods without a frame before the car stops
UNSURE_S = 0.3  # the model may be unsure this long ...
UNSURE_M = 0.15  # ... or over this distance, before the car stops
TUNABLE = {
    "speed_scale": (1.0, (0.0, 2.0), "the model's speed times this"),
    "min_confidence": (0.5, (0.0, 1.0), "below this probability of being on its road the model counts as unsure"),
}


@dataclass(frozen=True)
class Steering:
    """How a decision becomes wheel speeds."""

    wheel_base: float  # m
    speed_scale: float = 1.0

    def wheels(self, decision: Decision) -> tuple[float, float]:
        """Left and right wheel speeds (m/s) for the model's speed and curvature."""
        speed = max(0.0, decision.speed) * self.speed_scale
        half = decision.curvature * self.wheel_base / 2
        return speed * (1 - half), speed * (1 + half)


def main() -> None:
    """The node: `image` and `sensors` in, `cmd` and `safety` out."""
    from dataclasses import replace

    from car import Node
    from hal.description import load_description
    from nodes.messages import Malformed, MessageError, sensor_bar
    from nodes.pilot import Pilot
    from nodes.safety import PilotLimits, SafetyReason

    cv2.setNumThreads(1)  # one core: the rest of the car needs the other
    try:
        model = load_model(os.environ.get(MODEL_ENV, ""))
    except ModelError as exc:
        print(f"learned_pilot: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    car = load_description()
    node = Node()
    limits = PilotLimits(
        STALE_FRAMES / car.camera.fps,
        search_s=UNSURE_S,
        search_m=UNSURE_M,
        off_line_m=None,
        lost_reason=SafetyReason.MODEL_UNSURE,
    )
    pilot = Pilot(node, limits)
    values = {
        name: float(node.declare_parameter(name, default, description, bounds))
        for name, (default, bounds, description) in TUNABLE.items()
    }
    steering = Steering(car.car.wheel_base, values["speed_scale"])
    malformed = Malformed("learned_pilot")
    for event in node:
        if event.type == "PARAMETER":
            if not pilot.parameter(event.id, event.value) and event.id in TUNABLE:
                values[event.id] = float(event.value)
                steering = replace(steering, speed_scale=values["speed_scale"])
            continue
        if event.type == "INPUT_CLOSED" and event.id == "image":
            pilot.guard.perception_closed()
            pilot.drive(0.0, 0.0, pilot.clock)
            continue
        if event.type != "INPUT":
            continue
        if event.id == "sensors":
            try:
                bar = sensor_bar(event.value)
            except MessageError as exc:
                malformed.report("sensors", exc)
                continue
            pilot.sense(bar, None)
            if pilot.guard.stale(bar.t):  # frames stopped coming (a frozen camera): stop, and say so, now
                pilot.drive(0.0, 0.0, bar.t)
        elif event.id == "image":
            frame = event.value
            if not (hasattr(frame, "shape") and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == "uint8"):
                malformed.report("image", MessageError(f"a frame is H x W x 3 bytes, not {type(frame).__name__}"))
                continue
            decision = model.decide(frame)
            seen = float(event.metadata.get("t_sim", pilot.clock))
            pilot.guard.perceived(seen, decision.on_road >= values["min_confidence"])
            pilot.drive(*steering.wheels(decision), seen, event.metadata)


if __name__ == "__main__":
    main()
