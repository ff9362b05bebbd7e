"""`python -m nodes.car_io`: run the back end CAR_BACKEND names until STOP (see nodes.car_io)."""

from __future__ import annotations

import importlib
import os
import sys

BACKENDS = {  # CAR_BACKEND -> the module whose `run()` drives the car that way
    "sim": "nodes.car_io.sim",
    "hw": "nodes.car_io.board",
}


def main() -> None:
    """Run the chosen back end (`sim` when CAR_BACKEND is not set)."""
    name = os.environ.get("CAR_BACKEND", "sim")
    module = BACKENDS.get(name)
    if module is None:
        print(f"car_io: no back end `{name}` (back ends: {', '.join(BACKENDS)})", file=sys.stderr)
        raise SystemExit(2)
    importlib.import_module(module).run()


if __name__ == "__main__":
    main()
