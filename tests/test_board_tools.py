"""`car board info` and `car board shell` against the board emulator on the MicroPython VM, through real ptys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from hal.board_client import BoardClient
from tests.helpers import board_emulator
from tests.test_board_vm import VM_BOARD_ID


@pytest.fixture
def port(tmp_path: object) -> Iterator[str]:
    with board_emulator("--vm", "micropython") as running:
        yield running.port


def car(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "car", *args], capture_output=True, text=True, timeout=60)


def test_car_board_info_says_what_the_board_runs_and_how_its_link_is(port: str) -> None:
    shown = car("board", "info", "--port", port, "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert (info["firmware"], info["protocol"], info["board_id"], info["port"]) == ("0.1.0", 1, VM_BOARD_ID, port)
    assert info["uptime_s"] > 0 and 7.0 < info["battery_v"] < 8.5
    assert info["watchdog"].startswith("tripped") and info["estop"] is False  # no command yet: motors off
    assert info["line_sensors"][2] > 0.5  # the car stands on the tape
    link = info["link"]
    assert link["telemetry"] > 20 and link["dropped"] == 0 and link["lost_frames"] == 0 and link["rtt_ms"] > 0
    text = car("board", "info", "--port", port)
    assert text.returncode == 0 and "board_id" in text.stdout and "bad frames" in text.stdout


def test_car_board_info_without_a_board_is_a_clear_error() -> None:
    missing = car("board", "info", "--port", "/dev/nonexistent-board")
    assert missing.returncode == 1 and "cannot open /dev/nonexistent-board" in missing.stderr
    assert "Traceback" not in missing.stderr
    unknown = car("board", "fly")
    assert unknown.returncode == 2 and "no command `fly` (commands: emulator, info, shell)" in unknown.stderr


def read_until(fd: int, wanted: bytes, timeout: float) -> bytes:
    seen = b""
    end = time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < end:
        try:
            seen += os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.02)
    assert wanted in seen, seen[-600:]
    return seen


def test_car_board_shell_hands_the_repl_over_and_restarts_the_firmware(port: str) -> None:
    master, slave = os.openpty()  # the user's terminal
    os.set_blocking(master, False)
    shell = subprocess.Popen(
        [sys.executable, "-m", "car", "board", "shell", "--port", port], stdin=slave, stdout=slave, stderr=slave
    )
    try:
        read_until(master, b"firmware stopped (motors off); MicroPython's REPL on", 30)
        read_until(master, b"Use Ctrl-] or Ctrl-x to exit this shell", 30)
        os.write(master, b"\r")
        read_until(master, b">>> ", 10)
        os.write(master, b"import sys; print(sys.platform, 6 * 7)\r")
        read_until(master, b"rp2 42", 10)
        os.write(master, b"\x1d")  # Ctrl-]: leave
        read_until(master, b"firmware 0.1.0 running again on board " + VM_BOARD_ID.encode(), 30)
        assert shell.wait(timeout=10) == 0
    finally:
        shell.kill()
        shell.wait()
        os.close(master)
        os.close(slave)
    with BoardClient(port) as board:  # the firmware drives again
        assert board.info.board_id == VM_BOARD_ID
