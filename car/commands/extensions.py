"""What installed packages add to `car`, so that `car/` itself knows nothing of robots.

- `car.launch_options`: an object with `add_arguments(group)` (argparse),
  `environment(args) -> dict[str, str]`, whose result is set in every node's environment
  (ValueError for a bad value: `car launch` refuses before anything starts), and
  `warnings(args, dataflow) -> list[str]`, said when the run starts (`dataflow`: the checked
  dataflow being launched, car.spec.model.Dataflow).
  The smart car's `--sim`, `--track` and `--laps` come from `nodes.launch_options`. A
  provider may also have `companions(args, run) -> list[list[str]]`: commands started
  beside the run `run` once it exists (each in a session of its own) and ended with
  SIGTERM when it ends, such as the live view of `car launch --view` (`view.launch`).
- `car.commands`: a function `main(argv: list[str]) -> None` run as `car NAME ARGS...`
  (the smart car's `car board-emulator` is `sim.board_emulator:main`); each is a row of `car`'s
  command table (car.commands.cli).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Protocol

from car.spec.model import Dataflow

GROUP = "car.launch_options"
COMMANDS = "car.commands"


class LaunchOptions(Protocol):
    """What an entry point in `car.launch_options` provides."""

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Declare the options."""

    def environment(self, args: argparse.Namespace) -> dict[str, str]:
        """Node environment for the parsed options; ValueError with a message for bad values."""
        ...

    def warnings(self, args: argparse.Namespace, dataflow: Dataflow) -> list[str]:
        """What the user should know about a combination of options that still runs."""
        ...


def companions(args: argparse.Namespace, run: str) -> list[list[str]]:
    """The commands the installed providers want started beside the run `run` (their optional `companions`)."""
    wanted: list[list[str]] = []
    for _, provider in launch_options():
        more = getattr(provider, "companions", None)
        if more is not None:
            wanted += more(args, run)
    return wanted


def launch_options() -> list[tuple[str, LaunchOptions]]:
    """The installed option providers, by entry-point name."""
    return [(ep.name, ep.load()) for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name)]


def extension_commands() -> list[tuple[str, Callable[[], Callable[[list[str]], None]]]]:
    """The installed extra subcommands: name and a loader of their `main` (loaded only when run)."""
    return [(ep.name, ep.load) for ep in sorted(entry_points(group=COMMANDS), key=lambda ep: ep.name)]
