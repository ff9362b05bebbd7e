"""Commands with subcommands (`car board info`, `car calibrate camera`): one table, pyproject's.

`car GROUP NAME ARGS` runs the installed command `GROUP-NAME` (an entry point of
`car.commands`), so each subcommand is a row of the one command table, and a package may
add one (the simulator adds `car board emulator` and `car calibrate scene`) without the
group's module importing it.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

COMMANDS = "car.commands"


def dispatch(group: str, argv: list[str] | None, usage: str) -> None:
    """Run `car GROUP NAME ARGS`; with no NAME or --help, print `usage`; an unknown NAME exits 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prefix = f"{group}-"
    table = {ep.name.removeprefix(prefix): ep for ep in entry_points(group=COMMANDS) if ep.name.startswith(prefix)}
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return
    if argv[0] not in table:
        print(f"car {group}: no command `{argv[0]}` (commands: {', '.join(sorted(table))})", file=sys.stderr)
        raise SystemExit(2)
    table[argv[0]].load()(argv[1:])
