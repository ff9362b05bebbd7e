"""The board emulator's MicroPython REPL, driven by the real mpremote over a real pseudo-terminal."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware import protocol as p
from hal.board_client import BoardClient, BoardError
from sim import World, load_track
from sim.board_emulator import CPythonBoard, seed_filesystem
from sim.wiring import CarWiring
from tests.helpers import board_emulator
from tests.test_board_vm import VM_BOARD_ID

MPREMOTE = str(Path(sys.executable).parent / "mpremote")


@pytest.fixture
def board(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A running emulator whose filesystem is tmp_path/fs; yields (pty path, fs folder)."""
    fs = tmp_path / "fs"
    with board_emulator("--fs", str(fs)) as running:
        yield running.port, fs


def mpremote(port: str, *args: str) -> subprocess.CompletedProcess[str]:
    # mpremote reads a pty without a timeout: a stuck board would hang it, so always bound it
    return subprocess.run([MPREMOTE, "connect", port, *args], capture_output=True, text=True, timeout=30)


def maintenance(port: str) -> str:
    with BoardClient(port) as client:
        version = str(client.info.firmware)
        client.maintenance()
        time.sleep(0.2)
    return version


def test_mpremote_copies_skips_unchanged_files_and_reset_runs_the_new_firmware(
    board: tuple[str, Path], tmp_path: Path
) -> None:
    port, fs = board
    assert maintenance(port) == "0.1.0"
    listing = mpremote(port, "fs", "ls")
    assert listing.returncode == 0, listing.stderr
    assert "main.py" in listing.stdout and "protocol.py" in listing.stdout
    changed = tmp_path / "app.py"
    changed.write_text(
        (fs / "app.py").read_text().replace("FIRMWARE_VERSION = (0, 1, 0)", "FIRMWARE_VERSION = (0, 2, 0)")
    )
    first = mpremote(port, "cp", str(changed), ":app.py")
    assert first.returncode == 0, first.stderr
    again = mpremote(port, "cp", str(changed), ":app.py")
    assert "Up to date: app.py" in again.stdout  # hashed on the board with sha256, not sent again
    assert (fs / "app.py").read_text() == changed.read_text()
    reset = mpremote(port, "reset")
    assert reset.returncode == 0, reset.stderr
    with BoardClient(port) as client:  # main.py started again, with the flashed app.py
        assert client.info.firmware == "0.2.0"


def test_missing_files_fail_like_on_a_board(board: tuple[str, Path]) -> None:
    port, _ = board
    maintenance(port)
    missing = mpremote(port, "fs", "cat", ":nope.py")
    assert missing.returncode != 0 and "No such file" in missing.stdout + missing.stderr


def test_soft_reset_in_the_raw_repl_runs_only_boot_py(tmp_path: Path) -> None:
    fs = seed_filesystem(tmp_path / "fs")
    (fs / "boot.py").write_text("print('boot ran')\n")
    out = bytearray()
    emulated = CPythonBoard(CarWiring(World(load_track("oval"))), out.extend, fs)
    assert emulated.firmware is not None  # main.py runs after a hard reset
    emulated.receive(p.pack(p.MAINTENANCE, 1))
    out.clear()
    emulated.receive(b"\r\x03\r\x01")  # interrupt, raw REPL
    assert out.endswith(b"raw REPL; CTRL-B to exit\r\n>")
    out.clear()
    emulated.receive(b"\x04")  # soft reset
    assert out.startswith(b"OK\r\nMPY: soft reboot\r\n") and b"boot ran" in out
    assert out.endswith(b"raw REPL; CTRL-B to exit\r\n>")
    assert emulated.firmware is None  # main.py did not run
    out.clear()
    emulated.receive(b"import os\nprint(os.stat('/nope'))\x04")
    assert out.startswith(b"OK\x04") and b"OSError: [Errno 2] ENOENT\r\n\x04>" in out


def test_a_board_without_firmware_does_not_answer(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    fs.mkdir()
    (fs / "boot.py").write_text("")  # a bare MicroPython board: nothing flashed yet
    with (
        board_emulator("--fs", str(fs)) as running,
        pytest.raises(BoardError, match="is the car firmware on the board"),
    ):
        BoardClient(running.port).open()


def car_flash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "car", "flash", *args], capture_output=True, text=True, timeout=120)


def test_car_flash_copies_changes_resets_and_checks_the_handshake(board: tuple[str, Path], tmp_path: Path) -> None:
    port, fs = board
    source = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parent.parent / "firmware", source)
    app = source / "app.py"
    app.write_text(app.read_text().replace("FIRMWARE_VERSION = (0, 1, 0)", "FIRMWARE_VERSION = (0, 3, 0)"))
    flashed = car_flash("--port", port, "--source", str(source))
    assert flashed.returncode == 0, flashed.stderr
    assert "stopping firmware 0.1.0" in flashed.stdout
    assert "Up to date: protocol.py" in flashed.stdout  # unchanged files are not sent again
    assert f"done: firmware 0.3.0, board {VM_BOARD_ID}, protocol 1" in flashed.stdout
    assert (fs / "app.py").read_text() == app.read_text()


def test_car_flash_mpy_on_the_cpython_fallback_says_it_cannot_run_bytecode(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    with board_emulator("--fs", str(fs), "--vm", "cpython") as running:
        flashed = car_flash("--port", running.port, "--mpy")
    assert (fs / "app.mpy").is_file() and not (fs / "app.py").exists()  # a stale .py would shadow the .mpy
    assert (fs / "main.py").is_file() and (fs / "boot.py").is_file()  # run by name: they stay .py
    # the fallback runs firmware under CPython, which cannot execute MicroPython bytecode:
    # the flash itself went through, and the failed start is reported, as a bad flash would be
    assert "warning: this is the board emulator's CPython fallback" in flashed.stderr  # said before anything is sent
    assert flashed.returncode == 1
    assert "CPython fallback cannot run the .mpy files just flashed; flash again without --mpy" in flashed.stderr
    assert "NoneType" not in flashed.stderr and "Traceback" not in flashed.stderr


def test_car_flash_without_a_board_says_which_ports_it_saw() -> None:
    result = car_flash()
    assert result.returncode == 1
    assert "no MicroPython board attached" in result.stderr and "give --port" in result.stderr


def test_a_board_with_another_protocol_version_is_refused(tmp_path: Path) -> None:
    fs = seed_filesystem(tmp_path / "fs")
    protocol_file = fs / "protocol.py"
    protocol_file.write_text(protocol_file.read_text().replace("PROTOCOL_VERSION = 1", "PROTOCOL_VERSION = 2"))
    with (
        board_emulator("--fs", str(fs)) as running,
        pytest.raises(BoardError, match="the board speaks protocol 2, this host 1: flash matching firmware"),
    ):
        BoardClient(running.port).open()


def test_car_flash_while_the_port_is_held(board: tuple[str, Path]) -> None:
    port, _ = board
    with BoardClient(port):  # as car_io holds it during a run
        result = car_flash("--port", port)
    assert result.returncode == 1 and "stop it (`car stop`)" in result.stderr
