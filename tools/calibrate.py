"""`car calibrate`: measure the real car; each writes its section of the car description.

    car calibrate camera (--images DIR | --camera SOURCE) [...]   lens and pose (tools.calibrate_camera)
    car calibrate motors [--port PORT] [...]                      wheels: directions, dead band, speed per duty
    car calibrate line-sensors [--port PORT] [...]                each sensor over floor and over tape
    car calibrate scene [--car FILE] [--out DIR]                  the simulator's pictures for `camera`

The results go to the user's car file (~/.config/car/car.yml, or --out), which `car launch`
hands to every node and the simulator.
"""

from __future__ import annotations

from tools.command_group import dispatch


def main(argv: list[str] | None = None) -> None:
    """`car calibrate NAME ARGS`: the installed command `calibrate-NAME`."""
    dispatch("calibrate", argv, "\n\n".join(__doc__.split("\n\n")[:2]))
