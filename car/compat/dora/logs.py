"""A dora node's log: `node.log(...)` and Python's `logging`, as dora bridges them.

Each entry is one line on the node's stderr (`INFO  target: message key=value`,
car.transport.logline), which the daemon shows with the node's name, keeps in its log file
and routes to `dora/logs` readers and the node's `send_logs_as` output. Entries below the
node's `min_log_level` (default info) are left out. Creating a `Node` bridges `logging`: the root
logger gets a handler that writes entries this way when nothing else configured it, and
`logging.basicConfig()` keeps that handler (as dora's does), so `logging.info(...)` shows.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from car.transport import logline

LEVELS = {"error": 40, "warn": 30, "info": 20, "debug": 10, "trace": 5, "stdout": 1}  # dora's, as logging numbers
DEFAULT_LEVEL = "info"


def level_number(level: str) -> int:
    """The logging number of a dora level name (ValueError naming the levels for another)."""
    number = LEVELS.get(level.lower())
    if number is None:
        raise ValueError(f"unknown log level `{level}`: use one of {', '.join(LEVELS)}")
    return number


def emit(node: Any, level: str, message: str, target: str | None = None, fields: dict[str, str] | None = None) -> None:
    """Write one entry of `node`'s log, unless it is below its `min_log_level`."""
    number = level_number(level)
    if number < level_number(node.config.min_log_level or DEFAULT_LEVEL):
        return
    where = f"{target}: " if target and target != "root" else ""
    extra = "".join(f" {key}={value}" for key, value in (fields or {}).items())
    print(logline.format_entry(_name(number), f"{where}{message}{extra}"), file=sys.stderr, flush=True)


def _name(number: int) -> str:
    for name, at in LEVELS.items():
        if number >= at and name != "stdout":
            return name
    return "trace"


class NodeLogHandler(logging.Handler):
    """Python `logging` records into a node's log."""

    def __init__(self, node: Any):
        super().__init__(level=level_number(node.config.min_log_level or DEFAULT_LEVEL))
        self._node = node

    def emit(self, record: logging.LogRecord) -> None:
        """One record as one entry (its message, its logger's name as the target)."""
        try:
            emit(self._node, _name(record.levelno), record.getMessage(), record.name)
        except Exception:  # a bad format string in the user's call: as logging does
            self.handleError(record)


_original_basic_config = logging.basicConfig


def bridge(node: Any) -> None:
    """Route Python `logging` into `node`'s log (see the module's docstring); once per process."""
    root = logging.getLogger()
    if any(isinstance(h, NodeLogHandler) for h in root.handlers):
        return
    handler = NodeLogHandler(node)
    if not root.handlers:
        root.addHandler(handler)
        root.setLevel(handler.level)

    def basic_config(*args: Any, **kwargs: Any) -> None:
        if root.handlers == [handler]:
            kwargs.setdefault("force", True)  # only the bridge so far: configure as if nothing were there
        if "handlers" in kwargs:
            kwargs["handlers"] = [*kwargs["handlers"], handler]
        elif "stream" not in kwargs and "filename" not in kwargs:
            kwargs["handlers"] = [handler]
        _original_basic_config(*args, **kwargs)
        if handler not in root.handlers:
            root.addHandler(handler)

    logging.basicConfig = basic_config
