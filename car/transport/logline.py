"""A node's log entry as one line of its output: `LEVEL message`, the level padded to five letters.

Nodes write entries this way (car.compat.dora.logs: `node.log_info(...)`, Python's
`logging`); the daemon shows each line, keeps it in the node's log file, and reads the
level back to route entries to `dora/logs` inputs and `send_logs_as` outputs. A line
without a level (a plain `print`) is an entry at level `stdout`, the lowest.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from car.spec.model import LOG_LEVELS

WIDTH = 5
_BY_WORD = {level.upper().ljust(WIDTH) + " ": level for level in LOG_LEVELS if level != "stdout"}
_RANK = {level: rank for rank, level in enumerate(LOG_LEVELS)}  # 0 is the most severe


class LogEntry(NamedTuple):
    """One entry: its level (dora's names) and its text."""

    level: str
    message: str


def format_entry(level: str, message: str) -> str:
    """The line that carries an entry."""
    return f"{level.upper():{WIDTH}} {message}"


def parse(line: str) -> LogEntry:
    """The entry a line of a node's output is."""
    level = _BY_WORD.get(line[: WIDTH + 1])
    return LogEntry(level, line[WIDTH + 1 :]) if level else LogEntry("stdout", line)


def at_least(level: str, threshold: str) -> bool:
    """Whether `level` is `threshold` or more severe."""
    return _RANK[level] <= _RANK[threshold]


def to_json(entry: LogEntry, node_id: str, wall_ns: int) -> str:
    """An entry as the JSON object dora sends to log readers."""
    return json.dumps({"timestamp": wall_ns, "level": entry.level, "node_id": node_id, "message": entry.message})
