"""The board emulator on the real MicroPython VM: the full firmware, its REPL, `.mpy` files, MicroPython's limits."""

from __future__ import annotations

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
from tests.helpers import board_emulator, drive

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


def wait_for(condition: object, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


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
        assert wait_for(lambda: board.flags & p.FLAG_WATCHDOG, 2.0)
        assert time.monotonic() - stopped_sending < 0.6
        assert wait_for(lambda: board.read().wheel_speeds == (0.0, 0.0), 2.0)
        # ESTOP holds the motors until ARM
        board.estop()
        assert wait_for(lambda: board.flags & p.FLAG_ESTOP, 1.0)
        drive(board, 0.3, 0.3, 0.5)
        assert board.read().wheel_speeds == (0.0, 0.0)
        board.arm()
        drive(board, 0.3, 0.3, 1.0)
        assert board.read().wheel_speeds[0] > 0.15 and not board.flags & p.FLAG_ESTOP
        board.maintenance()
        time.sleep(0.3)
    # MAINTENANCE ended main.py: the port is MicroPython's REPL, and mpremote talks to it
    answer = subprocess.run(
        [MPREMOTE, "connect", port, "exec", "import sys; print(sys.implementation.name, sys.platform, 2**70)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["micropython", "rp2", str(2**70)]


def the_repl(port: str) -> serial.SerialBase:
    """The port after MAINTENANCE: MicroPython's REPL, opened raw (no mpremote)."""
    with BoardClient(port) as board:
        board.maintenance()
        time.sleep(0.3)
    return serial.serial_for_url(port, timeout=0.2)


def test_the_friendly_repl_echoes_and_runs_lines(vm_board: tuple[str, Path]) -> None:
    with the_repl(vm_board[0]) as raw:
        raw.read(4096)
        raw.write(b"\x02")  # Ctrl-B: the friendly REPL's banner
        time.sleep(0.3)
        banner = raw.read(4096)
        assert b"MicroPython VM" in banner and banner.endswith(b">>> ")
        raw.write(b"x = 6 * 7\rx\rfor k in range(2):\r print(k)\r\r")
        time.sleep(0.5)
        shown = raw.read(4096)
    assert shown == b"x = 6 * 7\r\n>>> x\r\n42\r\n>>> for k in range(2):\r\n...  print(k)\r\n... \r\n0\r\n1\r\n>>> "


def test_ctrl_c_interrupts_code_the_repl_runs(vm_board: tuple[str, Path]) -> None:
    with the_repl(vm_board[0]) as raw:
        raw.write(b"\r\x03\x01")  # the raw REPL
        time.sleep(0.3)
        raw.read(4096)
        raw.write(b"while True:\n    pass\n\x04")  # runs for ever
        time.sleep(0.5)
        raw.write(b"\x03")
        time.sleep(0.5)
        said = raw.read(4096)
    assert said.startswith(b"OK\x04") and b"KeyboardInterrupt" in said and said.endswith(b"\x04>")


def test_car_flash_mpy_runs_bytecode_on_the_vm(vm_board: tuple[str, Path]) -> None:
    port, fs = vm_board
    flashed = subprocess.run(
        [sys.executable, "-m", "car", "flash", "--port", port, "--mpy"], capture_output=True, text=True, timeout=120
    )
    assert flashed.returncode == 0, flashed.stderr
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
            time.sleep(0.5)
            said = raw.read(8192)
        assert b">>> " in said
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
