"""Node output: every line a node prints goes to its log file and, prefixed, to the terminal.

A log file that grows past its node's `max_log_size` is rotated: `NODE.log` becomes
`NODE.1.log` (and `.1` becomes `.2`, ...), and the oldest beyond `max_rotated_files` goes.
"""

from __future__ import annotations

import shutil
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, TextIO

_COLOURS = (36, 33, 35, 32, 34, 31, 96, 93, 95, 92, 94, 91)
STDERR_TAIL = 20


class Terminal:
    """Writes prefixed lines from many threads without interleaving them."""

    def __init__(self, node_ids: list[str], quiet: bool = False):
        self._lock = threading.Lock()
        self._width = max((len(i) for i in node_ids), default=4)
        self._quiet = quiet
        self._colour = {nid: _COLOURS[k % len(_COLOURS)] for k, nid in enumerate(node_ids)}
        self._status = ""  # the status line at the bottom of a terminal

    def node_line(self, node_id: str, line: str, err: bool) -> None:
        """Show one line a node printed."""
        if self._quiet:
            return
        stream = sys.stderr if err else sys.stdout
        label = node_id.rjust(self._width)
        if stream.isatty():
            label = f"\x1b[{self._colour.get(node_id, 37)}m{label}\x1b[0m"
        self._write(stream, f"{label} | {line}\n")

    def say(self, text: str) -> None:
        """A message from car itself, on stderr."""
        self._write(sys.stderr, f"car: {text}\n")

    def status(self, text: str) -> None:
        """Keep `text` as the last line of a terminal, redrawn below whatever is printed ('' removes it)."""
        if self._quiet or not sys.stderr.isatty():
            return
        with self._lock:
            self._status = text[: shutil.get_terminal_size().columns - 1]
            sys.stderr.write(f"\r\x1b[K\x1b[7m{self._status}\x1b[0m" if self._status else "\r\x1b[K")
            sys.stderr.flush()

    def _write(self, stream: TextIO, text: str) -> None:
        with self._lock:
            if self._status:
                sys.stderr.write("\r\x1b[K")
            stream.write(text)
            stream.flush()
            if self._status:
                sys.stderr.write(f"\x1b[7m{self._status}\x1b[0m")
                sys.stderr.flush()


class NodeLog:
    """The log file of one node and the last lines it wrote to stderr."""

    def __init__(
        self,
        node_id: str,
        path: Path,
        terminal: Terminal,
        on_line: Callable[[str, str], None] | None = None,
        max_size: int = 0,
        keep: int = 5,
    ):
        """`on_line(node_id, line)` sees every line (from the copying threads); `max_size` 0: never rotated."""
        self.node_id = node_id
        self.path = path
        self._terminal = terminal
        self._on_line = on_line
        self._max_size = max_size
        self._keep = keep
        self._size = 0
        self._file = path.open("w", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._threads: list[threading.Thread] = []

    def follow(self, stream: IO[bytes], err: bool) -> None:
        """Copy a node's stdout or stderr pipe until it closes (on a thread of its own)."""
        thread = threading.Thread(target=self._pump, args=(stream, err), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _pump(self, stream: IO[bytes], err: bool) -> None:
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self._write(line)
                if self._on_line is not None:
                    self._on_line(self.node_id, line)
                if err:
                    self.stderr_tail.append(line)
                self._terminal.node_line(self.node_id, line, err)

    def note(self, text: str) -> None:
        """Write a line of car's own into the log (restarts, exit codes)."""
        self._write(f"[car] {text}")

    def _write(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")
            self._size += len(line) + 1
            if self._max_size and self._size > self._max_size:
                self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        stem, suffix = self.path.stem, self.path.suffix
        for n in range(self._keep, 0, -1):
            older = self.path.with_name(f"{stem}.{n}{suffix}")
            if older.exists():
                if n == self._keep:
                    older.unlink()
                else:
                    older.rename(self.path.with_name(f"{stem}.{n + 1}{suffix}"))
        self.path.rename(self.path.with_name(f"{stem}.1{suffix}"))
        self._file = self.path.open("w", encoding="utf-8", buffering=1)
        self._size = 0

    def close(self, timeout: float = 2.0) -> None:
        """Wait for the pipes to drain, then close the file."""
        for thread in self._threads:
            thread.join(timeout)
        with self._lock:
            self._file.close()
