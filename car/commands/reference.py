"""The reference of every `car` command and option, as Markdown, made from the command table itself.

The documentation site's `reference/cli.md` is this page (docs/hooks.py makes it at each
build), so it cannot drift from the code: each section is what `car NAME --help` prints,
and `car NAME SUB --help` for commands with subcommands (`car node`, `car topic`, ...),
installed commands (`car flash`, `car collect`, ...) included.
"""

from __future__ import annotations

import argparse
import contextlib
import io

from car.commands.cli import COMMANDS, command_parser, command_table, listed, main


def help_text(*argv: str) -> str:
    """What `car ARGV --help` prints (its exit is caught)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
    return out.getvalue().rstrip()


def subcommands(name: str) -> list[str]:
    """The subcommands of a built-in command (`car node add`, ...), in the order it lists them."""
    row = next((c for c in COMMANDS if c.name == name), None)
    if row is None or row.own_main is not None:
        return []
    parser = command_parser(row)
    found: list[str] = []
    for action in parser._actions:  # argparse keeps its subparsers here, and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            found.extend(action.choices)
    return found


def cli_reference() -> str:
    """The page: `car --help`, then one section per command (and subcommand)."""
    parts = [
        "# Every `car` command and option\n",
        "Made from the command table at each build of this site: each section is what the command's "
        "`--help` prints. [The overview](commands.md) says what each is for, with examples.\n",
        f"```text\n{help_text()}\n```\n",
    ]
    for command in listed(command_table()):
        parts.append(f"## car {command.name}\n")
        parts.append(f"```text\n{help_text(command.name)}\n```\n")
        for sub in subcommands(command.name):
            parts.append(f"### car {command.name} {sub}\n")
            parts.append(f"```text\n{help_text(command.name, sub)}\n```\n")
    return "\n".join(parts)
