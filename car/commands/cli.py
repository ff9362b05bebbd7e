"""The `car` command: one table of subcommands, and `main`.

Each row names its module and the two functions there (its arguments and its handler),
so a command imports only what it runs: `car --version` and `car --help` import almost
nothing, `car launch` nothing of the coordinator. Installed packages add rows
(the `car.commands` entry point: car.commands.extensions); one whose name is another
row's and a word (`board-info` for `board info`) is run, not listed twice. A mistyped
command or option is answered with the closest ones (did you mean).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import car
from car.commands.common import EXIT_USER_ERROR, UserError
from car.commands.extensions import extension_commands

Main = Callable[[list[str]], None]  # a command that parses its own arguments
DOCS_PAGE = "docs/reference/cli.md"  # every command's section (car.commands.reference makes it); `make docs-serve`


@dataclass(frozen=True, kw_only=True)
class Command:
    """One row of the command table."""

    name: str
    help: str
    module: str = ""  # where `arguments` and `handler` are (imported only when the command runs)
    arguments: str = ""  # the function that adds its arguments to its parser
    handler: str = ""  # the function that runs it: (args) -> exit code
    usage: str | None = None
    epilog: str | None = None
    own_main: Callable[[], Main] | None = None  # it parses its own arguments (an installed package's, `doctor`)

    def function(self, name: str) -> Any:
        """One of its functions, imported now."""
        return getattr(importlib.import_module(self.module), name)


def _doctor_main() -> Main:
    from car.commands import doctor  # strace, seccomp and the system-call tables: only for `car doctor`

    return doctor.main


def _row(name: str, help: str, module: str, stem: str, **more: Any) -> Command:
    """A row whose functions are `STEM_arguments` and `cmd_STEM` in car.commands.MODULE."""
    return Command(
        name=name,
        help=help,
        module=f"car.commands.{module}",
        arguments=f"{stem}_arguments",
        handler=f"cmd_{stem}",
        **more,
    )


COMMANDS: list[Command] = [
    _row("new", "make a project (a dataflow, two nodes, their tests), or add a node to one", "new", "new"),
    _row("check", "check a dataflow file and report every problem", "dataflow_file", "check"),
    _row("graph", "print a dataflow as Mermaid text (or --html: a page)", "dataflow_file", "graph"),
    _row("build", "run the `build` command of every node", "dataflow_file", "build"),
    _row("launch", "run a dataflow on this machine and show its output", "launch", "launch"),
    _row("list", "list running dataflows: this machine's, and the coordinator's", "runs", "list"),
    _row("stop", "stop a running dataflow", "runs", "stop"),
    _row("sync", "send the machines of a dataflow their nodes' files, and build there", "sync", "sync"),
    _row("start", "start a dataflow on the machines it names (a coordinator places it)", "placed", "start"),
    _row("node", "the nodes of a running graph: list, info, restart, stop", "nodes", "node"),
    _row("param", "a running node's parameters: list, get, set, describe", "param", "param"),
    _row("top", "a live table of a running graph's nodes: CPU, memory, rates, drops, latency", "top", "top"),
    _row("topic", "look at a running graph's outputs: list, echo, hz, bw, info, pub", "topic", "topic"),
    _row("record", "record a running graph's outputs into an MCAP file", "record", "record"),
    _row(
        "replay", "run a dataflow with a recording's outputs in place of the nodes that sent them", "launch", "replay"
    ),
    _row("info", "what an MCAP recording holds: duration, channels, counts, rates", "record", "info"),
    Command(
        name="doctor",
        help="check the car side of a graph against a target kernel (StarryOS): trace, compare, fail the gaps",
        own_main=_doctor_main,
    ),
    _row("logs", "print a node's log, from this machine's run or wherever it runs", "logs", "logs"),
    _row("machines", "list the machines connected to the coordinator", "placed", "machines"),
    _row("coordinator", "run the coordinator of several machines' daemons", "daemons", "coordinator"),
    _row("daemon", "run this machine's daemon for a coordinator", "daemons", "daemon"),
    _row("up", "start a coordinator and this machine's daemon in the background", "daemons", "up"),
    _row("keys", "make, trust and show the CurveZMQ keys of several machines", "keys", "keys"),
    _row("down", "stop every dataflow, the daemons and the coordinator", "daemons", "down"),
    _row("service", "start this machine's daemon (and coordinator) on boot: install, remove", "service", "service"),
    _row(
        "run-node",
        "run a `path: dynamic` node by hand in a running dataflow",
        "runs",
        "run_node",
        usage="car run-node NODE [-d NAME] [-- COMMAND [ARGS ...]]",
        epilog="Without a COMMAND, prints the environment variable to export before starting the node yourself. "
        "`python ...` runs with the Python car runs in.",
    ),
]


def command_table() -> list[Command]:
    """Every subcommand: the built-in ones, then those installed packages add (`car.commands`)."""
    builtin = {c.name for c in COMMANDS}
    installed = [
        Command(name=name, help=_first_line(load), own_main=load)
        for name, load in extension_commands()
        if name not in builtin
    ]
    return COMMANDS + installed


def _first_line(load: Callable[[], Main]) -> str:
    """An installed command's help: the first line of its module's docstring, without a leading "`car NAME`:"
    (its module is loaded for `car --help` only)."""
    try:
        doc = sys.modules[load().__module__].__doc__ or ""
    except Exception as exc:  # an installed package that cannot load says so, and `car --help` goes on
        return f"(cannot be loaded: {exc})"
    first = doc.strip().splitlines()[0] if doc.strip() else "(no description)"
    return first.split("`: ", 1)[-1].rstrip(".") if first.startswith("`car ") else first.rstrip(".")


def listed(table: list[Command]) -> list[Command]:
    """The rows `car --help` lists: `GROUP-NAME` is left out when `GROUP` is a row (it is `car GROUP NAME`)."""
    names = {c.name for c in table}
    return [c for c in table if not any(c.name.startswith(f"{g}-") for g in names if g != c.name)]


def suggest(word: str, choices: list[str]) -> str:
    """` (did you mean A or B?)`, or "" when nothing is close."""
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


class _Parser(argparse.ArgumentParser):
    """argparse with did-you-mean for unknown options."""

    def error(self, message: str) -> Any:
        if message.startswith("unrecognized arguments: "):
            words = message.removeprefix("unrecognized arguments: ").split()
            known = [s for action in self._actions for s in action.option_strings]
            hints = [suggest(w.split("=")[0], known) for w in words if w.startswith("-")]
            message += "".join(h for h in hints if h)
        return super().error(message)


def _help_parser(table: list[Command]) -> argparse.ArgumentParser:
    """The parser `car --help` prints: every listed row with its help (extensions' loaded for it)."""
    parser = _Parser(
        prog="car",
        description="Run dora-style dataflows of nodes on one machine or several.",
        epilog=f"Every command and option: {DOCS_PAGE} (the site: `make docs-serve`); `car COMMAND --help`.",
    )
    parser.add_argument("--version", action="version", version=f"car {car.__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    for command in listed(table):
        sub.add_parser(command.name, help=command.help)
    return parser


def command_parser(command: Command) -> argparse.ArgumentParser:
    """The parser of one built-in subcommand, with its arguments."""
    docs = f"docs: {DOCS_PAGE}#car-{command.name}"
    epilog = "\n\n".join(textwrap.fill(text, 79) for text in (command.epilog, docs) if text)
    parser = _Parser(
        prog=f"car {command.name}",
        description=command.help,
        usage=command.usage,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.function(command.arguments)(parser)
    return parser


def _run_own(name: str, load: Callable[[], Main], argv: list[str]) -> None:
    """Run a command that parses its own arguments; after its `--help`, the line naming its section of the docs."""
    asked_help = bool({"-h", "--help"} & set(argv))
    try:
        load()(argv)
    except SystemExit as exc:
        if asked_help and exc.code in (0, None):
            print(f"\ndocs: {DOCS_PAGE}#car-{name}")
        raise
    if asked_help:  # a group's usage (`car board --help`) returns
        print(f"\ndocs: {DOCS_PAGE}#car-{name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `car` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):  # `car`, `car --help`, `car --version`
        if argv[:1] == ["--version"]:
            print(f"car {car.__version__}")
            return 0
        parser = _help_parser(command_table())
        if not argv:
            parser.print_help()
            return EXIT_USER_ERROR
        parser.parse_args(argv)
        return 0
    builtin = {c.name: c for c in COMMANDS}
    row = builtin.get(argv[0])
    if row is None:
        installed = dict(extension_commands())
        if argv[0] in installed:
            _run_own(argv[0], installed[argv[0]], argv[1:])
            return 0
        names = [c.name for c in COMMANDS] + list(installed)
        print(f"car: no command `{argv[0]}`{suggest(argv[0], names)}; `car --help` lists them", file=sys.stderr)
        return EXIT_USER_ERROR
    if row.own_main is not None:
        _run_own(row.name, row.own_main, argv[1:])
        return 0
    command: list[str] = []
    rest = argv[1:]
    if "--" in rest:  # everything after `--` is the command `car run-node` starts
        split = rest.index("--")
        rest, command = rest[:split], rest[split + 1 :]
    args = command_parser(row).parse_args(rest)
    args.command = command
    from car.plan.runs import RunError  # the handler's module has loaded it (the runtime's errors)

    try:
        code: int = row.function(row.handler)(args)
        return code
    except (UserError, RunError) as exc:
        print(f"car: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `car topic echo ... | head`: whoever read the output has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
