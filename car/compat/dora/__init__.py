"""`from dora import Node` for Python nodes written for dora 1.x, run unchanged by car.

The daemon puts `car/compat` on the PYTHONPATH of the nodes it starts (and `car run-node`
of the commands it runs), so this package stands in for dora's there: the same `Node`
(car.compat.dora.node), `DoraStatus`, `build` and `run`, `dora.testing.MockNode` and
`dora.builder`. Values are pyarrow arrays whose Arrow types travel exactly. It needs
pyarrow (`pip install smartcar[dora]`), as dora's nodes do. ROS 2 bridging is not here.
"""

from __future__ import annotations

import enum
import subprocess
import sys

from car.compat.dora.node import Node
from car.compat.dora.sample import SampleHandler

__all__ = ["DoraStatus", "Node", "SampleHandler", "__version__", "build", "run"]

__version__ = "1.1.0"  # the dora Python node API this package provides
__author__ = "smartcar (a dora-compatible API)"


class DoraStatus(enum.Enum):
    """What a dora operator's `on_input` returns: go on, stop it, or stop the dataflow."""

    CONTINUE = 0
    STOP = 1
    STOP_ALL = 2


def build(
    dataflow_path: str,
    uv: bool | None = None,
    coordinator_addr: str | None = None,
    coordinator_port: int | None = None,
    force_local: bool = False,
) -> None:
    """Run every node's `build` command, as `car build` (and `dora build`) does; the other arguments are unused."""
    _car("build", dataflow_path)


def run(dataflow_path: str, uv: bool | None = None, stop_after: float | None = None) -> None:
    """Run a dataflow on this machine until it ends, as `car launch` (and `dora run`) does."""
    _car("launch", dataflow_path, *(["--duration", str(stop_after)] if stop_after else []))


def _car(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "car", *args])
    if result.returncode != 0:
        raise RuntimeError(f"`car {' '.join(args)}` failed (exit code {result.returncode})")
