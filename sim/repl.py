"""MicroPython's REPL, as far as `mpremote` uses it, for the board emulator.

Friendly REPL (`>>> `), raw REPL (Ctrl-A; code ends with Ctrl-D, answered `OK`, then
stdout, 0x04, stderr, 0x04, `>`), raw-paste mode (`0x05 A 0x01`, answered `R 0x01`, a
16-bit window and a 0x01 for each window consumed), soft reset (Ctrl-D with no code:
runs boot.py only in the raw REPL, as a real board does), and `machine.reset()` (the board
restarts: boot.py, then main.py). The board's filesystem is a folder on the host; code
runs under CPython with `os`, `open` and `machine` mapped onto that folder and errors
printed the way MicroPython prints them (`OSError: [Errno 2] ENOENT`), so mpremote reads
them right.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import struct
import types
from pathlib import Path
from typing import Any

BANNER = b"MicroPython v1.29.0 on 2026-08-29; Raspberry Pi Pico (car board emulator) with RP2040\r\n"
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
PASTE_WINDOW = 128
MPY_ABI = 0x0106  # sys.implementation._mpy of MicroPython 1.29 on an RP2040 (armv6m, mpy v6.3)


class Reset(Exception):
    """`machine.reset()` was called."""


class BoardFilesystem:
    """The board's flash as a host folder; paths are board paths (`/main.py`)."""

    def __init__(self, root: Path):
        self.root = root.resolve()

    def host(self, path: str) -> Path:
        target = (self.root / path.lstrip("/")).resolve()
        if target != self.root and self.root not in target.parents:
            raise OSError(errno.EACCES, "outside the board's filesystem")
        return target

    def module(self) -> types.ModuleType:
        """An `os` module for code running on the board."""
        fs = self
        board_os = types.ModuleType("os")

        def stat(path: str) -> tuple[int, ...]:
            host = fs.host(path)
            if not host.exists():
                raise OSError(errno.ENOENT, path)
            info = host.stat()
            mode = 0x4000 if host.is_dir() else 0x8000
            mtime = int(info.st_mtime)
            return (mode, 0, 0, 0, 0, 0, info.st_size, mtime, mtime, mtime)

        def ilistdir(path: str = "") -> list[tuple[str, int, int, int]]:
            host = fs.host(path or "/")
            if not host.is_dir():
                raise OSError(errno.ENOENT, path)
            return [
                (p.name, 0x4000 if p.is_dir() else 0x8000, 0, 0 if p.is_dir() else p.stat().st_size)
                for p in sorted(host.iterdir())
            ]

        def remove(path: str) -> None:
            host = fs.host(path)
            if not host.is_file():
                raise OSError(errno.ENOENT, path)
            host.unlink()

        def mkdir(path: str) -> None:
            host = fs.host(path)
            if host.exists():
                raise OSError(errno.EEXIST, path)
            host.mkdir()

        def rmdir(path: str) -> None:
            host = fs.host(path)
            if not host.is_dir():
                raise OSError(errno.ENOENT, path)
            host.rmdir()

        board_os.stat = stat  # type: ignore[attr-defined]
        board_os.ilistdir = ilistdir  # type: ignore[attr-defined]
        board_os.listdir = lambda path="": [entry[0] for entry in ilistdir(path)]  # type: ignore[attr-defined]
        board_os.remove = remove  # type: ignore[attr-defined]
        board_os.mkdir = mkdir  # type: ignore[attr-defined]
        board_os.rmdir = rmdir  # type: ignore[attr-defined]
        board_os.rename = lambda a, b: fs.host(a).rename(fs.host(b))  # type: ignore[attr-defined]
        board_os.getcwd = lambda: "/"  # type: ignore[attr-defined]
        board_os.uname = lambda: ("rp2", "rp2", "1.29.0", "v1.29.0", "Raspberry Pi Pico with RP2040")  # type: ignore[attr-defined]
        board_os.sync = lambda: None  # type: ignore[attr-defined]
        return board_os

    def open(self, path: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        """`open` on the board."""
        host = self.host(path)
        if "r" in mode and not host.is_file():
            raise OSError(errno.ENOENT, path)
        return builtins.open(host, mode, *args, **kwargs)


def _board_time() -> types.ModuleType:
    """MicroPython's `time`: sleep_ms, ticks_ms and friends."""
    import time as host_time

    board_time = types.ModuleType("time")
    start = host_time.monotonic()
    board_time.time = host_time.time  # type: ignore[attr-defined]
    board_time.sleep = host_time.sleep  # type: ignore[attr-defined]
    board_time.sleep_ms = lambda ms: host_time.sleep(ms / 1000)  # type: ignore[attr-defined]
    board_time.sleep_us = lambda us: host_time.sleep(us / 1_000_000)  # type: ignore[attr-defined]
    board_time.ticks_ms = lambda: int((host_time.monotonic() - start) * 1000) & 0x3FFFFFFF  # type: ignore[attr-defined]
    board_time.ticks_us = lambda: int((host_time.monotonic() - start) * 1_000_000) & 0x3FFFFFFF  # type: ignore[attr-defined]
    board_time.ticks_diff = lambda a, b: ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000  # type: ignore[attr-defined]
    board_time.ticks_add = lambda a, b: (a + b) & 0x3FFFFFFF  # type: ignore[attr-defined]
    return board_time


class Repl:
    """Feeds bytes typed at the board's REPL; `write` sends its answers back to the host."""

    def __init__(self, fs: BoardFilesystem, write: Any, on_reset: Any):
        self.fs = fs
        self.write = write
        self.on_reset = on_reset  # called after machine.reset(): the board boots (main.py)
        self.raw = False
        self._code = bytearray()
        self._paste: bytearray | None = None  # raw-paste data being received
        self._paste_count = 0
        self._escape = b""
        self._globals: dict[str, Any] = {}
        self.new_session()

    def new_session(self) -> None:
        """Forget variables and imports, as after a reset."""
        self._globals = {"__name__": "__main__", "__builtins__": self._builtins()}

    def greet(self) -> None:
        """The banner and prompt a board prints when its program ends."""
        self.write(BANNER + b'Type "help()" for more information.\r\n>>> ')

    def _builtins(self) -> dict[str, Any]:
        board_os = self.fs.module()
        machine = types.ModuleType("machine")

        def reset() -> None:
            raise Reset

        machine.reset = reset  # type: ignore[attr-defined]
        machine.soft_reset = reset  # type: ignore[attr-defined]
        machine.unique_id = lambda: b"\xe6\x61\x41\x04\x03\x2c\x45\x2a"  # type: ignore[attr-defined]
        board_sys = types.ModuleType("sys")
        board_sys.platform = "rp2"  # type: ignore[attr-defined]
        board_sys.implementation = types.SimpleNamespace(name="micropython", version=(1, 29, 0), _mpy=MPY_ABI)  # type: ignore[attr-defined]
        board_sys.version = "3.4.0; MicroPython v1.29.0"  # type: ignore[attr-defined]
        micropython = types.ModuleType("micropython")
        micropython.kbd_intr = lambda char: None  # type: ignore[attr-defined]
        micropython.alloc_emergency_exception_buf = lambda size: None  # type: ignore[attr-defined]
        modules = {
            "os": board_os,
            "uos": board_os,
            "machine": machine,
            "sys": board_sys,
            "micropython": micropython,
            "hashlib": hashlib,
            "gc": types.SimpleNamespace(collect=lambda: None, mem_free=lambda: 200_000),
            "time": _board_time(),
            "struct": struct,
            "binascii": __import__("binascii"),
        }

        def board_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
            if name in modules:
                return modules[name]
            raise ImportError(f"no module named '{name}'")

        table = dict(vars(builtins))
        table["__import__"] = board_import
        table["open"] = self.fs.open
        return table

    # -- bytes in ------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes from the host."""
        for byte in data:
            self._byte(byte)

    def _byte(self, byte: int) -> None:
        if self._paste is not None:
            self._paste_byte(byte)
        elif self._escape:
            self._escape += bytes([byte])
            if len(self._escape) == 3:
                if self._escape == b"\x05A\x01":
                    self._paste, self._paste_count = bytearray(), 0
                    self.write(b"R\x01" + struct.pack("<H", PASTE_WINDOW))
                self._escape = b""
        elif byte == 0x01:  # Ctrl-A: raw REPL
            self.raw, self._code = True, bytearray()
            self.write(b"\r\n" + RAW_PROMPT)
        elif byte == 0x02:  # Ctrl-B: friendly REPL
            self.raw = False
            self.write(b"\r\n" + BANNER + b">>> ")
        elif byte == 0x03:  # Ctrl-C: nothing runs between commands here
            self._code = bytearray()
            if not self.raw:
                self.write(b"\r\n>>> ")
        elif byte == 0x04:  # Ctrl-D: run the code, or soft reset when there is none
            if self.raw and self._code:
                self.write(b"OK")
                self._run(bytes(self._code))
                self._code = bytearray()
            else:
                self._soft_reset()
        elif byte == 0x05 and self.raw and not self._code:
            self._escape = b"\x05"
        elif self.raw:
            self._code.append(byte)

    def _paste_byte(self, byte: int) -> None:
        assert self._paste is not None
        if byte == 0x04:
            code, self._paste = bytes(self._paste), None
            self.write(b"\x04")
            self._run(code)
            return
        self._paste.append(byte)
        self._paste_count += 1
        if self._paste_count % PASTE_WINDOW == 0:
            self.write(b"\x01")

    def _soft_reset(self) -> None:
        self.write(b"OK\r\nMPY: soft reboot\r\n" if self.raw else b"\r\nMPY: soft reboot\r\n")
        self.new_session()
        self.run_file("boot.py")  # only boot.py: after a soft reset in the raw REPL main.py does not run
        self.write(RAW_PROMPT if self.raw else BANNER + b">>> ")

    def run_file(self, name: str) -> None:
        """Run a file from the board's filesystem (boot.py), its output to the host."""
        path = self.fs.host(name)
        if path.is_file():
            out, err = self._execute(path.read_bytes(), name)
            self.write(out + err)

    # -- running code ----------------------------------------------------------------
    def _run(self, code: bytes) -> None:
        try:
            out, err = self._execute(code, "<stdin>")
        except Reset:
            self.raw = False
            self.new_session()
            self.on_reset()
            return
        self.write(out + b"\x04" + err + b"\x04>")

    def _execute(self, code: bytes, name: str) -> tuple[bytes, bytes]:
        out = io.StringIO()
        table = self._globals["__builtins__"]
        table["print"] = lambda *a, **k: builtins.print(*a, **{**k, "file": out})
        try:
            exec(compile(code.decode(), name, "exec"), self._globals)
            error = ""
        except Reset:
            raise
        except OSError as exc:
            code_name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            error = f'Traceback (most recent call last):\n  File "{name}"\nOSError: [Errno {exc.errno}] {code_name}\n'
        except Exception as exc:  # what the board prints, any error
            error = f'Traceback (most recent call last):\n  File "{name}"\n{type(exc).__name__}: {exc}\n'
        return _crlf(out.getvalue()), _crlf(error)


def _crlf(text: str) -> bytes:
    """MicroPython ends its output lines with CR LF."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
