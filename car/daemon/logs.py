"""Node output: every line a node prints goes to its log file and, prefixed, to the terminal."""

from __future__ import annotations

import shutil
import sys
import threading
from collections import deque
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

    def __init__(self, node_id: str, path: Path, terminal: Terminal):
        self.node_id = node_id
        self.path = path
        self._terminal = terminal
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
                with self._lock:
                    self._file.write(line + "\n")
                if err:
                    self.stderr_tail.append(line)
                self._terminal.node_line(self.node_id, line, err)

    def note(self, text: str) -> None:
        """Write a line of car's own into the log (restarts, exit codes)."""
        with self._lock:
            self._file.write(f"[car] {text}\n")

    def close(self, timeout: float = 2.0) -> None:
        """Wait for the pipes to drain, then close the file."""
        for thread in self._threads:
            thread.join(timeout)
        with self._lock:
            self._file.close()
