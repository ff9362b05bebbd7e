"""What every `car` command shares: a user's mistake as an error, a dataflow file loaded or refused, the option
that names the coordinator, and how car itself speaks on the terminal."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:  # the table imports this module: YAML is loaded only by commands that read a file
    from car.spec.model import Dataflow, Placement, Problem

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in what the user asked for; its message says what to do."""


def load_or_refuse(path: str, placement: Placement | None = None) -> Dataflow:
    """The dataflow in `path`, or every problem printed and a UserError."""
    from car.spec.loader import load_dataflow
    from car.spec.model import DataflowError

    try:
        return load_dataflow(path, placement)
    except DataflowError as exc:
        refuse(path, exc.problems)


def refuse(path: str, problems: list[Problem]) -> NoReturn:
    """Print every problem of `path`, then raise the UserError that says nothing was started."""
    for problem in problems:
        print(problem, file=sys.stderr)
    count = len(problems)
    raise UserError(f"{path}: {count} problem{'s' if count != 1 else ''}; nothing was started") from None


def check_writable(path: str, option: str) -> None:
    """A file `car` will write later: refuse now, before anything starts, if it cannot be written."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise UserError(f"{option} {path}: the folder {folder} does not exist; create it or pick another path")
    if not os.access(folder, os.W_OK):
        raise UserError(f"{option} {path}: the folder {folder} is not writable; pick another path")


def dataflow_text(path: str) -> str:
    """A dataflow file's text as it is sent to the coordinator, or RunError saying why it cannot be read."""
    from car.plan.runs import RunError

    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RunError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def byte_size(count: float) -> str:
    """A number of bytes as people read it: `431 B`, `41.50 KB`, `1.20 MB`."""
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count:.0f} B"


def file_argument(parser: argparse.ArgumentParser) -> None:
    """The dataflow file argument."""
    parser.add_argument("file", help="a dataflow file (YAML)")


def json_option(parser: argparse.ArgumentParser) -> None:
    """The `--json` option of a command that prints data."""
    parser.add_argument("--json", action="store_true", help="print JSON (one document) instead of text")


def coordinator_option(parser: argparse.ArgumentParser) -> None:
    """The `--coordinator-addr` option of commands that ask the coordinator."""
    parser.add_argument(
        "--coordinator-addr",
        default=None,
        metavar="HOST[:PORT]",
        help="the coordinator (default: the one on this host, or $CAR_COORDINATOR)",
    )


def dataflow_option(parser: argparse.ArgumentParser) -> None:
    """`-d/--dataflow NAME`: the running dataflow a command looks at or acts on, in every command that names one."""
    parser.add_argument(
        "--dataflow", "-d", metavar="NAME", help="the running dataflow's name or id (default: the only one running)"
    )


def say(text: str) -> None:
    """A line of car's own on stderr."""
    print(f"car: {text}", file=sys.stderr, flush=True)
