"""Node output: every line a node prints goes to its log file and, prefixed, to the terminal.

One thread (`LogReader`) reads every node's stdout and stderr pipes, however many nodes
there are (a small computer's threads are few). A log file that grows past its node's
`max_log_size` is rotated: `NODE.log` becomes `NODE.1.log` (and `.1` becomes `.2`, ...),
and the oldest beyond `max_rotated_files` goes.
"""

from __future__ import annotations

import os
import selectors
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

_COLOURS = (36, 33, 35, 32, 34, 31, 96, 93, 95, 92, 94, 91)
STDERR_TAIL = 20
READ_BYTES = 65536
DRAIN_POLL_S = 0.01  # how often `NodeLog.close` looks whether its pipes are drained


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


@dataclass
class _Pipe:
    """One node's stdout or stderr pipe as the reader has it: where its lines go, and the unfinished last line."""

    log: NodeLog
    err: bool
    partial: bytes = b""


@dataclass
class LogReader:
    """The one thread that reads every node's output pipes and hands each whole line to its node's log."""

    _selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _stopping: bool = False

    def __post_init__(self) -> None:
        self._wake_read, self._wake_write = os.pipe()
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)

    def add(self, stream: IO[bytes], log: NodeLog, err: bool) -> None:
        """Read `stream` into `log` until it closes (the thread starts with the first)."""
        os.set_blocking(stream.fileno(), False)
        with self._lock:
            self._selector.register(stream, selectors.EVENT_READ, _Pipe(log, err))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="car-node-output", daemon=True)
                self._thread.start()
        os.write(self._wake_write, b"+")  # look at the new pipe too

    def stop(self) -> None:
        """End the thread, once every pipe it reads has closed or `NodeLog.close` gave up on it."""
        self._stopping = True
        os.write(self._wake_write, b"x")
        if self._thread is not None:
            self._thread.join()
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _run(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select():  # `add` and `stop` wake it through the pipe
                if key.data is None:
                    os.read(self._wake_read, 4096)
                else:
                    self._read(key.fileobj, key.data)  # type: ignore[arg-type]

    def _read(self, stream: IO[bytes], pipe: _Pipe) -> None:
        try:
            chunk = os.read(stream.fileno(), READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            *lines, pipe.partial = (pipe.partial + chunk).split(b"\n")
            for raw in lines:
                pipe.log.take(raw, pipe.err)
            return
        if pipe.partial:
            pipe.log.take(pipe.partial, pipe.err)
        self._selector.unregister(stream)
        stream.close()
        pipe.log.pipes_open -= 1


class NodeLog:
    """The log file of one node and the last lines it wrote to stderr."""

    def __init__(
        self,
        node_id: str,
        path: Path,
        terminal: Terminal,
        reader: LogReader,
        on_line: Callable[[str, str], None] | None = None,
        max_size: int = 0,
        keep: int = 5,
    ):
        """`reader` reads the node's pipes; `on_line(node_id, line)` sees every line (on the reader's thread);
        `max_size` 0: never rotated."""
        self.node_id = node_id
        self.path = path
        self._terminal = terminal
        self._reader = reader
        self._on_line = on_line
        self._max_size = max_size
        self._keep = keep
        self._size = 0
        self._file = path.open("w", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self.pipes_open = 0  # of the node's pipes, those not yet at their end

    def follow(self, stream: IO[bytes], err: bool) -> None:
        """Copy a node's stdout or stderr pipe until it closes."""
        self.pipes_open += 1
        self._reader.add(stream, self, err)

    def take(self, raw: bytes, err: bool) -> None:
        """One line the node printed."""
        line = raw.decode("utf-8", "replace").rstrip("\r")
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
            if self._file.closed:  # a node that still printed after `close` gave up waiting
                return
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
        """Wait (at most `timeout` seconds) for the node's pipes to drain, then close the file."""
        deadline = time.monotonic() + timeout
        while self.pipes_open > 0 and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL_S)
        with self._lock:
            self._file.close()
