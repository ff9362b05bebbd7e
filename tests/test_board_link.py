"""Host <-> emulated board over a real pseudo-terminal: the real client, frame format and firmware."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from firmware import protocol as p
from hal.board_client import BoardClient, BoardError, BoardInfo
from tests.helpers import board_emulator, drive, wait_until
from tests.test_board_vm import VM_BOARD_ID


@pytest.fixture
def emulator() -> Iterator[str]:
    """A running board emulator; yields its pty path."""
    with board_emulator("--track", "oval") as running:
        yield running.port


def on_the_tape(board: BoardClient) -> Callable[[], bool]:
    """Whether the latest telemetry (once there is one) has the middle line sensor on the tape."""
    return lambda: (reading := board.latest()) is not None and reading.line_sensors[2] > 0.5


def test_commands_reach_the_motors_and_telemetry_streams(emulator: str) -> None:
    with BoardClient(emulator) as board:
        assert board.info == BoardInfo(firmware="0.1.0", protocol=p.PROTOCOL_VERSION, board_id=VM_BOARD_ID)
        # the car starts on the tape, under its middle sensor
        wait_until("the middle sensor on the tape", on_the_tape(board), timeout=10)
        start, counted = time.monotonic(), board.stats().telemetry
        left, right = drive(board, 0.3, -0.2, 1.5)
        rate = (board.stats().telemetry - counted) / (time.monotonic() - start)
        reading = board.read()
        assert left == pytest.approx(0.3, rel=0.15) and right == pytest.approx(-0.2, rel=0.15)
        assert reading.encoder_ticks[0] > 0 > reading.encoder_ticks[1]
        assert reading.yaw_rate < 0  # turning right
        assert 60 < rate < 120  # 100 Hz, give or take a busy machine
        assert 7.0 < reading.battery_v < 8.5
        board.ping()
        wait_until("the PING's answer", lambda: board.stats().rtt_ms is not None, timeout=10)
        assert board.stats().crc_errors == 0


def test_watchdog_stops_the_motors_when_commands_stop(emulator: str) -> None:
    with BoardClient(emulator) as board:
        drive(board, 0.3, 0.3, 1.0)
        assert board.read().wheel_speeds[0] > 0.2 and not board.flags & p.FLAG_WATCHDOG
        stopped_sending = time.monotonic()
        wait_until("the watchdog's flag", lambda: board.flags & p.FLAG_WATCHDOG, timeout=10)
        # 250 ms of board time; a generous bound for scheduling on a busy machine
        assert time.monotonic() - stopped_sending < 3
        # the wheels coast down with the motors' time constant: wait for the encoders to stop
        wait_until("the wheels at rest", lambda: board.read().wheel_speeds == (0.0, 0.0), timeout=10)
        assert board.flags & p.FLAG_WATCHDOG  # and the watchdog still holds them


def test_closing_and_reopening_the_port(emulator: str) -> None:
    with BoardClient(emulator) as board:
        drive(board, 0.2, 0.2, 0.3)
    with BoardClient(emulator) as again:  # a second open of the same pty
        drive(again, 0.25, 0.25, 1.0)
        assert again.read().wheel_speeds[0] > 0.15


def test_a_silent_board_is_noticed_and_comes_back() -> None:
    with board_emulator() as running, BoardClient(running.port) as board:
        wait_until("the board connected", lambda: board.connected, timeout=10)
        running.process.send_signal(signal.SIGSTOP)
        wait_until("the silence noticed", lambda: not board.connected, timeout=10)
        running.process.send_signal(signal.SIGCONT)
        wait_until("the board back", lambda: board.connected, timeout=10)


def test_corrupted_bytes_deliver_no_command(emulator: str) -> None:
    rng = random.Random(3)
    stream = bytearray(b"".join(p.pack(p.SET_WHEELS, k & 0xFF, 0, 0) for k in range(400)))
    for i in rng.sample(range(len(stream)), len(stream) // 100):
        stream[i] ^= rng.randint(1, 255)
    with BoardClient(emulator) as board:
        raw = serial.serial_for_url(emulator, baudrate=115200, timeout=0.1)
        try:
            for k in range(0, len(stream), 64):
                raw.write(stream[k : k + 64])
                time.sleep(0.002)
        finally:
            raw.close()
        # a PING answered after the stream: the firmware has taken every byte before it
        assert board.round_trip(timeout=10) is not None
        time.sleep(0.3)  # a command that got through would have turned the wheels within this window
        assert board.read().encoder_ticks == (0, 0)  # zero commands, corrupted or not: nothing ever moved


def test_an_absent_board_is_a_clear_error() -> None:
    with pytest.raises(BoardError, match="cannot open /dev/nonexistent-board"):
        BoardClient("/dev/nonexistent-board").open()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--hw"], "--hw needs --port PORT"),
        (["--port", "/dev/ttyACM0"], "--port is for the real car: add --hw"),
        (["--camera", "0"], "--camera is for the real car: add --hw"),
        (["--report", "/nonexistent/dir/r.json"], "the folder /nonexistent/dir does not exist"),
        (["--report", "figures.txt"], "name a .json file"),
    ],
)
def test_launch_options_that_cannot_work_are_refused_before_anything_starts(
    tmp_path: Path, options: list[str], message: str
) -> None:
    flow = str(Path(__file__).resolve().parent.parent / "dataflows" / "follow_line_ir.yml")
    result = subprocess.run(
        [sys.executable, "-m", "car", "launch", flow, *options, "--duration", "3", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "run `" not in result.stderr and not list(tmp_path.iterdir())  # nothing started, nothing written


@pytest.mark.parametrize("command", [["board", "emulator"], ["board-emulator"]])
def test_car_board_emulator_is_the_same_program(command: list[str]) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "car", *command], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("/dev/pts/")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([sys.executable, "-m", "car", *command, "--track", "moon"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no track named `moon`" in bad.stderr and "Traceback" not in bad.stderr


def test_follow_line_on_hw_with_a_camera(emulator: str, tmp_path: Path) -> None:
    """The camera graph on --hw: frames from a video file (no USB camera here), the emulated board."""
    import cv2

    from sim import World, load_track

    world = World(load_track("oval"), seed=1)
    video = tmp_path / "camera.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for _ in range(150):
        world.wheels.set_wheel_speeds(0.3, 0.3)
        world.step(1 / 30)
        writer.write(world.camera.read()[0])
    writer.release()
    flow = str(Path(__file__).resolve().parent.parent / "dataflows" / "follow_line.yml")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "car", "launch", flow, "--hw", "--port", emulator),
            *("--camera", str(video), "--duration", "5", "--out", str(tmp_path / "out")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    frames = int(re.search(r"sent (\d+) camera frame", result.stderr).group(1))  # type: ignore[union-attr]
    assert 30 < frames <= 150  # the file plays at 30 frames/s for the seconds the run lasts
    ticks = re.search(r"encoder ticks (-?\d+) (-?\d+)", result.stderr)
    assert ticks and int(ticks.group(1)) > 100  # the commands it caused drove the board


def wait_for_text(log: Path, text: str, timeout: float = 60.0) -> None:
    """Wait until a node's log says `text` (the event itself, with a generous deadline)."""
    deadline = time.monotonic() + timeout
    while not (log.is_file() and text in log.read_text()):
        assert time.monotonic() < deadline, f"{log} did not say {text!r} within {timeout:g} s"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_board_that_goes_away_is_waited_for_and_the_run_goes_on(tmp_path: Path) -> None:
    """Unplugged (the emulator killed), plugged in again at the same stable path: the run goes on;
    unplugged for longer than --board-give-up: the run ends with a clear error."""
    stable = tmp_path / "usb-car-board"  # as /dev/serial/by-id/... names a USB board whatever its ttyACM number
    fs = str(tmp_path / "fs")
    flow = str(Path(__file__).resolve().parent.parent / "dataflows" / "follow_line_ir.yml")
    name = f"unplugged-{os.getpid()}"
    log = tmp_path / "out" / name / "car_io.log"
    with board_emulator("--fs", fs, "--link", str(stable)) as first:
        run = subprocess.Popen(
            [
                *(sys.executable, "-m", "car", "launch", flow, "--hw", "--port", str(stable), "--name", name),
                *("--board-give-up", "6", "--duration", "40", "--out", str(tmp_path / "out")),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_text(log, f"car_io: board {VM_BOARD_ID}, firmware 0.1.0")
        first.process.kill()  # unplugged: no goodbye
        first.process.wait()
    wait_for_text(log, "car_io: stopped (board_lost)")
    with board_emulator("--fs", fs, "--link", str(stable), capture_stderr=True) as second:
        wait_for_text(log, "car_io: board back on")
        time.sleep(3)  # three seconds of driving
        second.process.terminate()  # unplugged again, for good this time
        _, second_said = second.process.communicate(timeout=10)
    try:
        _, said = run.communicate(timeout=30)
    finally:
        run.kill()
    assert "car_io: stopped (board_lost): board lost on" in said and "reconnecting (giving up after 6 s)" in said
    assert "car_io: driving again (board_lost)" in said
    assert f"car_io: board back on {stable}: board {VM_BOARD_ID}, firmware 0.1.0 (reconnection 1)" in said
    driven = re.search(r"([\d.]+) m driven", second_said)
    assert driven and float(driven.group(1)) > 0.3, second_said  # the car drove again after the reconnection
    assert "the board has been gone for 6 s" in said and "check its USB cable and power" in said
    assert run.returncode != 0 and "Traceback" not in said
