"""What installed packages add to `car`, so that `car/` itself knows nothing of robots.

- `car.launch_options`: an object with `add_arguments(group)` (argparse) and
  `environment(args) -> dict[str, str]`, whose result is set in every node's environment.
  The smart car's `--sim`, `--track` and `--laps` come from `nodes.launch_options`.
- `car.commands`: a function `main(argv: list[str]) -> None` run as `car NAME ARGS...`
  (the smart car's `car board-emulator` is `sim.board:main`).
"""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points
from typing import Protocol

GROUP = "car.launch_options"
COMMANDS = "car.commands"


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


def command_names() -> list[str]:
    """The installed extra subcommands."""
    return sorted(ep.name for ep in entry_points(group=COMMANDS))


def run_command(name: str, argv: list[str]) -> None:
    """Run the extra subcommand `name` with its arguments."""
    for ep in entry_points(group=COMMANDS, name=name):
        ep.load()(argv)
        return
    raise KeyError(name)
