"""What an operator prints: its own log level, and its `send_stdout_as` / `send_logs_as` outputs.

A program node's printed lines are routed by its daemon (car.daemon.log_routes); the
operators of one runtime share a process and its output, so the runtime tells their
lines apart by the thread that writes them (the labor running the operator: see
`Printed.current`). Each complete line an operator writes to `sys.stdout` or
`sys.stderr` is one entry (car.transport.logline): a log entry below its operator's
`min_log_level` is left out, every other line goes on to the real stream, and to the
operator's outputs that ask for it. Lines written by native code straight to the file
descriptors are not seen here (they reach the node's log all the same).
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from car.transport import logline

DEFAULT_LEVEL = "info"


class PrintedLines(io.TextIOBase):
    """A stand-in for `sys.stdout` or `sys.stderr` (see the module's docstring)."""

    def __init__(self, stream: TextIO, printed: Printed):
        super().__init__()
        self._stream = stream
        self._printed = printed
        self._partial: dict[int, str] = {}  # by thread: what it wrote after its last newline

    def write(self, text: str) -> int:
        """Pass `text` on; an operator's complete lines one by one (see the module's docstring)."""
        who = self._printed.current()
        if who is None:
            return self._stream.write(text)
        key = threading.get_ident()
        pending = self._partial.pop(key, "") + text
        *lines, rest = pending.split("\n")
        if rest:
            self._partial[key] = rest
        for line in lines:
            if self._printed.take(who, line):
                self._stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        """Flush the real stream."""
        self._stream.flush()

    def fileno(self) -> int:
        """The real stream's descriptor."""
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The real stream's encoding."""
        return self._stream.encoding


class Printed:
    """Which operator a thread runs, and what becomes of the lines it prints."""

    def __init__(self, send: Callable[[Any, str, str], None], node_id: str):
        """`send(operator, output, text)` sends a line (or a log entry as JSON) on one of an operator's outputs."""
        self._send = send
        self._node_id = node_id
        self._local = threading.local()

    def current(self) -> Any:
        """The operator this thread runs now (None: the runtime's own code)."""
        return getattr(self._local, "operator", None)

    def running(self, operator: Any) -> None:
        """This thread runs `operator` from now on (None: no operator)."""
        self._local.operator = operator

    def install(self) -> None:
        """Put the stand-ins in place of `sys.stdout` and `sys.stderr`."""
        if not isinstance(sys.stdout, PrintedLines):
            sys.stdout = PrintedLines(sys.stdout, self)
        if not isinstance(sys.stderr, PrintedLines):
            sys.stderr = PrintedLines(sys.stderr, self)

    def take(self, operator: Any, line: str) -> bool:
        """One line `operator` printed: sent where it asks; whether it is shown (not below its log level)."""
        config = operator.config
        entry = logline.parse(line)
        if entry.level != "stdout" and not logline.at_least(entry.level, config.min_log_level or DEFAULT_LEVEL):
            return False
        if config.send_stdout_as:
            self._send(operator, config.send_stdout_as, line)
        if config.send_logs_as and entry.level != "stdout":
            self._send(operator, config.send_logs_as, logline.to_json(entry, self._node_id, time.time_ns()))
        return True
