"""Teleop: drive the car from the keyboard of the terminal this node runs in.

    w / up arrow      faster (+0.1 m/s)         a / left arrow    turn more to the left
    s / down arrow    slower (-0.1 m/s)         d / right arrow   turn more to the right
    space             stop                      q                 quit (stops the dataflow)

It needs a terminal, so it is a dynamic node: launch `dataflows/teleop.yml`, then in a
second terminal `car run-node teleop -- python -m nodes.teleop`. It sends its command at
every `tick` (20 Hz), so the car's dead-man rule holds while the keys are idle.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from dataclasses import dataclass, replace

from hal.description import CarParams, load_description

SPEED_STEP = 0.1
TURN_STEP = 1.0  # 1/m of curvature per key press
MAX_SPEED = 0.8
MAX_TURN = 6.0
KEYS = {
    "w": "faster",
    "\x1b[A": "faster",
    "s": "slower",
    "\x1b[B": "slower",
    "a": "left",
    "\x1b[D": "left",
    "d": "right",
    "\x1b[C": "right",
    " ": "stop",
    "q": "quit",
}


@dataclass(frozen=True)
class Drive:
    """What the driver asked for: forward speed (m/s) and curvature (1/m, left positive)."""

    speed: float = 0.0
    turn: float = 0.0

    def wheels(self, wheel_base: float = CarParams().wheel_base) -> tuple[float, float]:
        """Left and right wheel speeds."""
        half = self.turn * wheel_base / 2
        return self.speed * (1 - half), self.speed * (1 + half)


def apply(drive: Drive, action: str) -> Drive:
    """The drive after one key's action."""
    if action == "faster":
        return replace(drive, speed=min(MAX_SPEED, round(drive.speed + SPEED_STEP, 3)))
    if action == "slower":
        return replace(drive, speed=max(-MAX_SPEED, round(drive.speed - SPEED_STEP, 3)))
    if action == "left":
        return replace(drive, turn=min(MAX_TURN, drive.turn + TURN_STEP))
    if action == "right":
        return replace(drive, turn=max(-MAX_TURN, drive.turn - TURN_STEP))
    if action == "stop":
        return Drive()
    return drive


def actions(text: str) -> list[str]:
    """The actions in a burst of typed characters (arrow keys are 3-character sequences)."""
    found, i = [], 0
    while i < len(text):
        sequence = text[i : i + 3]
        if sequence in KEYS:
            found.append(KEYS[sequence])
            i += 3
        else:
            if text[i] in KEYS:
                found.append(KEYS[text[i]])
            i += 1
    return found


def main() -> None:
    """The node: reads keys at every `tick`, sends `cmd`."""
    from car import Node

    if not os.isatty(sys.stdin.fileno()):
        print("teleop needs a terminal: run it with `car run-node teleop -- python -m nodes.teleop`", file=sys.stderr)
        raise SystemExit(2)
    node = Node()
    saved = termios.tcgetattr(sys.stdin.fileno())
    tty.setcbreak(sys.stdin.fileno())
    drive = Drive()
    wheel_base = load_description().car.wheel_base
    print(__doc__.split("\n\n")[1], flush=True)
    try:
        for event in node:
            if event.type != "INPUT" or event.id != "tick":
                continue
            typed = ""
            while select.select([sys.stdin], [], [], 0)[0]:
                chunk = os.read(sys.stdin.fileno(), 64).decode(errors="replace")
                if not chunk:
                    break
                typed += chunk
            for action in actions(typed):
                if action == "quit":
                    node.send_output("cmd", {"left": 0.0, "right": 0.0})
                    node.stop_dataflow("teleop quit")
                    return
                drive = apply(drive, action)
            left, right = drive.wheels(wheel_base)
            node.send_output("cmd", {"left": round(left, 3), "right": round(right, 3)})
            print(f"\rspeed {drive.speed:+.1f} m/s  turn {drive.turn:+.1f} 1/m   ", end="", flush=True)
    finally:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        print()


if __name__ == "__main__":
    main()
