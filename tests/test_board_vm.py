"""The board emulator on the real MicroPython VM: the full firmware, its REPL, `.mpy` files, MicroPython's limits."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from firmware import protocol as p
from hal.board_client import BoardClient, BoardError, BoardInfo
from sim.board_vm import find_micropython
from tests.helpers import board_emulator, drive, wait_until

ROOT = Path(__file__).resolve().parent.parent
MPREMOTE = str(Path(sys.executable).parent / "mpremote")
VM_BOARD_ID = "e301a7ed"  # the last four bytes of sim/vm/board_machine.py's UNIQUE_ID


@pytest.fixture
def vm_board(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An emulator that must run the MicroPython VM (no fallback); yields (pty path, flash folder)."""
    find_micropython()  # a missing binary fails here, plainly, not as a fallback
    fs = tmp_path / "fs"
    with board_emulator("--fs", str(fs), "--vm", "micropython") as running:
        yield running.port, fs


def test_the_full_firmware_runs_on_the_vm(vm_board: tuple[str, Path]) -> None:
    port, _ = vm_board
    with BoardClient(port) as board:
        assert board.info == BoardInfo(firmware="0.1.0", protocol=p.PROTOCOL_VERSION, board_id=VM_BOARD_ID)
        start, counted = time.monotonic(), board.stats().telemetry
        left, right = drive(board, 0.3, -0.2, 1.5)
        rate = (board.stats().telemetry - counted) / (time.monotonic() - start)
        assert 60 < rate < 120  # 100 Hz, give or take a busy machine
        reading = board.read()
        assert left == pytest.approx(0.3, rel=0.15) and right == pytest.approx(-0.2, rel=0.15)
        assert reading.encoder_ticks[0] > 0 > reading.encoder_ticks[1] and reading.yaw_rate < 0
        assert 7.0 < reading.battery_v < 8.5 and board.stats().crc_errors == 0
        # the watchdog: commands stop, the board stops the motors 250 ms (board time) later
        stopped_sending = time.monotonic()
        wait_until("the watchdog's flag", lambda: board.flags & p.FLAG_WATCHDOG, 10)
        assert time.monotonic() - stopped_sending < 3  # 250 ms of board time; generous for a busy machine
        wait_until("the wheels at rest", lambda: board.read().wheel_speeds == (0.0, 0.0), 10)
        # ESTOP holds the motors until ARM
        board.estop()
        wait_until("the emergency stop's flag", lambda: board.flags & p.FLAG_ESTOP, 10)
        drive(board, 0.3, 0.3, 0.5)
        assert board.read().wheel_speeds == (0.0, 0.0)
        board.arm()
        drive(board, 0.3, 0.3, 1.0)
        assert board.read().wheel_speeds[0] > 0.15 and not board.flags & p.FLAG_ESTOP
        board.maintenance()
    with serial.serial_for_url(port, timeout=0.2) as raw:
        at_prompt(raw)
    # MAINTENANCE ended main.py: the port is MicroPython's REPL, and mpremote talks to it
    answer = subprocess.run(
        [MPREMOTE, "connect", port, "exec", "import sys; print(sys.implementation.name, sys.platform, 2**70)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["micropython", "rp2", str(2**70)]


def read_until(raw: serial.SerialBase, ending: bytes, timeout: float = 20.0) -> bytes:
    """What the port says up to and including `ending` (the event itself, with a generous deadline)."""
    said = b""
    deadline = time.monotonic() + timeout
    while not said.endswith(ending):
        assert time.monotonic() < deadline, f"the port did not say {ending!r} within {timeout:g} s: {said!r}"
        said += raw.read(1)
    return said


def the_repl(port: str) -> serial.SerialBase:
    """The port after MAINTENANCE: MicroPython's REPL, opened raw (no mpremote), at its prompt."""
    with BoardClient(port) as board:
        board.maintenance()
    raw = serial.serial_for_url(port, timeout=0.2)
    at_prompt(raw)
    return raw


def at_prompt(raw: serial.SerialBase, timeout: float = 20.0) -> None:
    """Press Enter until the REPL shows its prompt (the main loop's banner may have gone to the client
    that asked for MAINTENANCE; an Enter still in the firmware's loop is a byte its parser drops)."""
    deadline = time.monotonic() + timeout
    while True:
        raw.write(b"\r")
        try:
            read_until(raw, b">>> ", timeout=1.0)
            return
        except AssertionError:
            assert time.monotonic() < deadline, f"no REPL prompt within {timeout:g} s"


def test_the_friendly_repl_echoes_and_runs_lines(vm_board: tuple[str, Path]) -> None:
    with the_repl(vm_board[0]) as raw:
        raw.write(b"\x02")  # Ctrl-B: the friendly REPL's banner
        read_until(raw, b"MicroPython VM")  # past any prompt still on its way
        read_until(raw, b">>> ")
        raw.write(b"x = 6 * 7\rx\rfor k in range(2):\r print(k)\r\r")
        shown = read_until(raw, b"1\r\n>>> ")
    assert shown == b"x = 6 * 7\r\n>>> x\r\n42\r\n>>> for k in range(2):\r\n...  print(k)\r\n... \r\n0\r\n1\r\n>>> "


def test_ctrl_c_interrupts_code_the_repl_runs(vm_board: tuple[str, Path]) -> None:
    with the_repl(vm_board[0]) as raw:
        raw.write(b"\r\x03\x01")  # the raw REPL
        read_until(raw, b"CTRL-B to exit\r\n>")
        raw.write(b"print('running')\nwhile True:\n    pass\n\x04")  # runs for ever
        said = read_until(raw, b"OKrunning\r\n")  # the code runs (a Ctrl-C before that is only a character)
        raw.write(b"\x03")
        said += read_until(raw, b"\x04>")
    assert said.startswith(b"OKrunning\r\n\x04") and b"KeyboardInterrupt" in said and said.endswith(b"\x04>")


def test_car_flash_mpy_runs_bytecode_on_the_vm(vm_board: tuple[str, Path], tmp_path: Path) -> None:
    port, fs = vm_board
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # the cache `car build` keeps, empty
    runs = [
        subprocess.run(
            [sys.executable, "-m", "car", "flash", "--port", port, "--mpy"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        for _ in range(2)
    ]
    for flashed in runs:
        assert flashed.returncode == 0, flashed.stderr
    compiled = re.search(r"compiled (\d+) file\(s\) with mpy-cross, 0 unchanged", runs[0].stdout)
    assert compiled and int(compiled.group(1)) >= 5, runs[0].stdout  # the first time, every file
    assert f"compiled 0 file(s) with mpy-cross, {compiled.group(1)} unchanged from the cache" in runs[1].stdout
    flashed = runs[1]
    assert f"done: firmware 0.1.0, board {VM_BOARD_ID}, protocol 1" in flashed.stdout
    assert (fs / "app.mpy").is_file() and not (fs / "app.py").exists()
    assert (fs / "app.mpy").read_bytes()[:2] == b"M\x06"  # MicroPython bytecode, version 6
    with BoardClient(port) as board:  # the bytecode runs: commands drive, telemetry streams
        drive(board, 0.25, 0.25, 1.0)
        assert board.read().wheel_speeds[0] > 0.15


def test_a_cpython_only_feature_fails_as_on_the_board(tmp_path: Path) -> None:
    """A firmware change using what MicroPython lacks: the VM refuses it at boot, as the board would."""
    fs = tmp_path / "fs"
    shutil.copytree(ROOT / "firmware", fs, ignore=shutil.ignore_patterns("__init__.py", "__pycache__", "*.ini"))
    app = fs / "app.py"
    app.write_text(app.read_text().replace("import protocol\n", "import protocol\nfrom dataclasses import dataclass\n"))
    find_micropython()
    with board_emulator("--fs", str(fs), "--vm", "micropython") as running:
        with serial.serial_for_url(running.port, timeout=0.2) as raw:
            raw.write(b"\r\x02")  # the board sits in its REPL after main.py failed: show the banner
            read_until(raw, b">>> ")
        with pytest.raises(BoardError, match="no answer to GET_INFO"):
            BoardClient(running.port).open()
        again = subprocess.run(  # the error main.py met, seen by importing app again at the REPL
            [MPREMOTE, "connect", running.port, "exec", "import app"], capture_output=True, text=True, timeout=30
        )
        assert "ImportError: no module named 'dataclasses'" in again.stdout + again.stderr
    # the CPython fallback would have run it: the reason the VM is the default
    with board_emulator("--fs", str(fs), "--vm", "cpython") as running, BoardClient(running.port) as board:
        assert board.info.board_id == "emulated"


def test_the_cpython_fallback_drives_the_same_car(tmp_path: Path) -> None:
    with (
        board_emulator("--fs", str(tmp_path / "fs"), "--vm", "cpython", capture_stderr=True) as running,
        BoardClient(running.port) as board,
    ):
        assert board.info.board_id == "emulated"
        assert drive(board, 0.3, 0.3, 1.0)[0] == pytest.approx(0.3, rel=0.15)
        running.process.terminate()
        _, said = running.process.communicate(timeout=10)
    assert "on CPython (fallback" in said
