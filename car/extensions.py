"""Extra `car launch` options contributed by installed packages.

A package lists an object under the entry-point group `car.launch_options`; the object
has `add_arguments(group)` (argparse) and `environment(args) -> dict[str, str]`, whose
result is set in every node's environment. `car` itself knows nothing of what the options
mean: the smart car's `--sim`, `--track` and `--laps` come from `nodes.launch_options`.
"""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points
from typing import Protocol

GROUP = "car.launch_options"


class LaunchOptions(Protocol):
    """What an entry point in `car.launch_options` provides."""

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Declare the options."""

    def environment(self, args: argparse.Namespace) -> dict[str, str]:
        """Node environment for the parsed options; ValueError with a message for bad values."""
        ...


def launch_options() -> list[tuple[str, LaunchOptions]]:
    """The installed option providers, by entry-point name."""
    return [(ep.name, ep.load()) for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name)]
