"""The board's serial port opens on a kernel without TCFLSH and modem-control ioctls (hal.serial_port), tried in a
process where those calls really fail (car doctor's seccomp wrapper) on a real pseudo-terminal."""

from __future__ import annotations

import json
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from car.doctor.confine import Rule, load_seccomp, write_rules

OPEN_A_PTY = """
import os, sys, serial
from hal.serial_port import SerialPort
master, slave = os.openpty()
os.write(master, b"stale bytes from before the open")
port_class = SerialPort if sys.argv[1] == "ours" else serial.Serial
port = port_class(os.ttyname(slave), baudrate=115200, timeout=2)
os.write(master, b"fresh")
print(port.read(5).decode())
"""


def _open_without_flush(tmp_path: Path, which: str) -> subprocess.CompletedProcess[str]:
    rules = [
        Rule("ioctl", "ENOSYS", 1, 0xFFFFFFFF, request)
        for request in (termios.TCFLSH, termios.TIOCMBIS, termios.TIOCMBIC)
    ]
    write_rules(rules, str(tmp_path / "rules.json"))
    command = [sys.executable, "-m", "car.doctor.confine", str(tmp_path / "rules.json"), "--"]
    command += [sys.executable, "-c", OPEN_A_PTY, which]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_port_opens_and_flushes_without_tcflush_where_pyserial_alone_fails(tmp_path: Path) -> None:
    try:
        load_seccomp()
    except ImportError as exc:
        pytest.skip(str(exc))
    plain = _open_without_flush(tmp_path, "pyserial")
    assert plain.returncode != 0 and "Function not implemented" in plain.stderr, plain.stderr  # they really fail
    ours = _open_without_flush(tmp_path, "ours")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.strip() == "fresh"  # what waited before the open was flushed by reading it
    assert json.loads((tmp_path / "rules.json").read_text())[0]["errno"] == "ENOSYS"


@pytest.mark.parametrize("kind", ["pty", "loop://"])
def test_read_some_hands_on_what_arrived_without_waiting_for_more(kind: str) -> None:
    """pyserial's read(256) waits for 256 bytes or its timeout; a 30-byte frame must not wait."""
    import os
    import time

    from hal.serial_port import open_port, read_some

    if kind == "pty":
        master, slave = os.openpty()
        port = open_port(os.ttyname(slave), baudrate=115200, timeout=3)
        send = lambda data: os.write(master, data)  # noqa: E731
    else:
        port = open_port("loop://", timeout=3)
        send = port.write
    try:
        send(b"x" * 30)
        started = time.monotonic()
        got = read_some(port, 256)
        waited = time.monotonic() - started
        assert got == b"x" * 30 and waited < 1.5  # the old read waited the full 3 s
        started = time.monotonic()
        port.timeout = 0.2
        assert read_some(port, 256) == b"" and time.monotonic() - started >= 0.15  # nothing there: its timeout
    finally:
        port.close()
        if kind == "pty":
            os.close(master)
            os.close(slave)
