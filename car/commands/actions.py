"""A command with actions of its own (`car topic echo`, `car node restart`, `car param set`): one small table.

Each command module lists its actions as `Action` rows (as the command table does for
`car` itself, car.commands.cli); `add_actions` makes their parsers, `run_action` runs the
one asked for.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    """One action of a command: its name, what it does, its arguments and its handler."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]


ACTION_DEST = "action"


def add_actions(
    parser: argparse.ArgumentParser,
    table: list[Action],
    common: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Give `parser` one subcommand per action of `table`, each also with the arguments `common` adds."""
    sub = parser.add_subparsers(dest=ACTION_DEST, required=True, metavar="ACTION")
    for action in table:
        action_parser = sub.add_parser(action.name, help=action.help)
        action.arguments(action_parser)
        if common is not None:
            common(action_parser)


def run_action(args: argparse.Namespace, table: list[Action]) -> int:
    """Run the action `args` names."""
    return next(a.handler for a in table if a.name == getattr(args, ACTION_DEST))(args)
