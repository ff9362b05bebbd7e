"""The board's REPL in the emulator's CPython fallback: MicroPython's REPL protocols, code run by CPython.

The bytes are read by `sim.vm.repl_protocol` (the same code the MicroPython VM's ROM
uses): friendly REPL, raw REPL, raw-paste mode, soft reset (Ctrl-D with no code: boot.py
only in the raw REPL, as a real board does) and `machine.reset()` (the board restarts:
boot.py, then main.py). The board's filesystem is a folder on the host; code runs under
CPython with `os`, `open` and `machine` mapped onto that folder and errors printed the
way MicroPython prints them (`OSError: [Errno 2] ENOENT`), so mpremote reads them right.
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

from sim.vm.repl_protocol import RAW_PROMPT, ReplProtocol

BANNER = b"MicroPython v1.29.0 on 2026-08-29; Raspberry Pi Pico (car board emulator, CPython) with RP2040\r\n"
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
    """The REPL of the CPython fallback: `sim.vm.repl_protocol` reads the bytes, code runs here under CPython."""

    def __init__(self, fs: BoardFilesystem, write: Any, on_reset: Any):
        self.fs = fs
        self.write = write
        self.on_reset = on_reset  # called after machine.reset(): the board boots (main.py)
        self._globals: dict[str, Any] = {}
        self.protocol = ReplProtocol(BANNER, write, self._run, self._evaluate, self._soft_reset)
        self.new_session()

    def new_session(self) -> None:
        """Forget variables and imports, as after a reset."""
        self._globals = {"__name__": "__main__", "__builtins__": self._builtins()}

    def greet(self) -> None:
        """The banner and prompt a board prints when its program ends."""
        self.protocol.raw = False
        self.protocol.greet()

    def feed(self, data: bytes) -> None:
        """Bytes from the host."""
        try:
            self.protocol.feed(data)
        except Reset:
            self.protocol.raw = False
            self.new_session()
            self.on_reset()

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

    def _soft_reset(self, raw: bool) -> None:
        self.write(b"OK\r\nMPY: soft reboot\r\n" if raw else b"\r\nMPY: soft reboot\r\n")
        self.new_session()
        if not raw:  # the friendly REPL's soft reset runs boot.py and main.py, as a reset does
            raise Reset
        self.run_file("boot.py")  # only boot.py: after a soft reset in the raw REPL main.py does not run
        self.write(RAW_PROMPT)

    def run_file(self, name: str) -> None:
        """Run a file from the board's filesystem (boot.py), its output to the host."""
        path = self.fs.host(name)
        if path.is_file():
            out, err = self._execute(path.read_bytes(), name)
            self.write(out + err)

    # -- running code ----------------------------------------------------------------
    def _run(self, code: bytes, name: str) -> str:
        out, err = self._execute(code, name)
        self.write(out)
        return err.decode()

    def _evaluate(self, line: str) -> str:
        try:
            value = eval(compile(line, "<stdin>", "eval"), self._globals)
        except SyntaxError:
            return self._run(line.encode(), "<stdin>")
        except Reset:
            raise
        except Exception as exc:
            return f'Traceback (most recent call last):\n  File "<stdin>"\n{type(exc).__name__}: {exc}\n'
        return "" if value is None else repr(value) + "\n"

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
