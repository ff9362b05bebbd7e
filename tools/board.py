"""`car board`: the motor/sensor board's tools.

    car board info [--port PORT] [--json]     what the board runs and how its link and battery are
    car board shell [--port PORT]             MicroPython's REPL (mpremote), the firmware restarted after
    car board emulator [...]                  the board emulator (`sim.board_emulator`)

`car board NAME ARGS` runs the installed command `board-NAME` (tools.command_group), so
`car board-emulator` still works. With no --port, the one attached MicroPython board.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

import serial

from firmware import protocol
from hal.board_client import BAUD, BoardClient, BoardError, BoardInfo
from hal.serial_port import open_port
from tools.command_group import dispatch
from tools.flash import FlashError, find_port, mpremote, tool

TELEMETRY_WAIT_S = 0.5  # long enough for dozens of readings and a ping's answer


def main(argv: list[str] | None = None) -> None:
    """`car board NAME ARGS`: the installed command `board-NAME`."""
    dispatch("board", argv, "\n\n".join(__doc__.split("\n\n")[:2]))


def board_port(given: str | None) -> str:
    """`given`, or the one attached MicroPython board's port; BoardError saying which ports were seen."""
    try:
        return given or find_port()
    except FlashError as exc:
        raise BoardError(str(exc).removeprefix("finding the board: ")) from None


def board_info(port: str) -> dict[str, Any]:
    """Firmware, protocol, board id, uptime, link statistics, battery and safety state, from a short visit."""
    with BoardClient(port) as board:
        time.sleep(TELEMETRY_WAIT_S)
        board.round_trip()
        reading = board.latest()
        flags = board.flags
        info: dict[str, Any] = {**asdict(board.info), "port": port}
        if reading is not None:
            info |= {
                "uptime_s": round(reading.t, 3),
                "battery_v": round(reading.battery_v, 2),
                "watchdog": "tripped: motors off until a command" if flags & protocol.FLAG_WATCHDOG else "fed",
                "estop": bool(flags & protocol.FLAG_ESTOP),
                "low_battery": bool(flags & protocol.FLAG_LOW_BATTERY),
                "line_sensors": [round(v, 2) for v in reading.line_sensors],
                "range_m": reading.range_m,
            }
        info["link"] = asdict(board.stats())
    return info


def info_main(argv: list[str] | None = None) -> None:
    """`car board info`."""
    parser = argparse.ArgumentParser(prog="car board info", description="What the board runs; its link and battery.")
    parser.add_argument("--port", help="the board's serial port (default: the one attached MicroPython board)")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args(argv)
    try:
        info = board_info(board_port(args.port))
    except BoardError as exc:
        print(f"car board info: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if args.json:
        print(json.dumps(info))
        return
    link = info.pop("link")
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    print(
        f"{'link':<{width}}  {link['telemetry']} readings in {TELEMETRY_WAIT_S:g} s, {link['dropped']} bad frames, "
        f"{link['lost_frames']} lost, ping {link['rtt_ms']} ms"
    )


def shell_main(argv: list[str] | None = None) -> None:
    """`car board shell`: stop the firmware, hand the port to mpremote's REPL, restart the firmware after."""
    parser = argparse.ArgumentParser(
        prog="car board shell",
        description="MicroPython's REPL on the board (the firmware stopped meanwhile; Ctrl-] leaves)",
    )
    parser.add_argument("--port", help="the board's serial port (default: the one attached MicroPython board)")
    args = parser.parse_args(argv)
    try:
        port = board_port(args.port)
        stopped = _stop_firmware(port)
        _friendly_repl(port)
    except BoardError as exc:
        print(f"car board shell: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(
        f"car board shell: {'firmware stopped (motors off); ' if stopped else ''}MicroPython's REPL on {port}; "
        "Ctrl-] leaves and restarts the firmware",
        flush=True,
    )
    subprocess.run([tool("mpremote"), "connect", port, "repl"])
    print("car board shell: restarting the firmware", flush=True)
    try:
        mpremote(port, "reset")
        info = _wait_for_firmware(port)
    except (FlashError, BoardError) as exc:
        print(f"car board shell: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"car board shell: firmware {info.firmware} running again on board {info.board_id}")


def _stop_firmware(port: str) -> bool:
    """MAINTENANCE, if a firmware answers: motors off, the REPL free. False when none answered."""
    try:
        with BoardClient(port) as running:
            running.maintenance()
            time.sleep(0.3)
            return True
    except BoardError as exc:
        if "cannot open" in str(exc):
            raise BoardError(f"{exc}; if a dataflow drives the board, stop it (`car stop`)") from None
        return False


def _friendly_repl(port: str) -> None:
    """Ctrl-C, Ctrl-B: whatever the REPL was in (raw, a line half typed), the friendly prompt."""
    try:
        with open_port(port, baudrate=BAUD, timeout=0.2) as raw:
            raw.write(b"\r\x03\x02")
            raw.read(4096)  # the banner: mpremote shows its own greeting
    except (serial.SerialException, OSError) as exc:
        raise BoardError(f"{port}: {exc}") from None


def _wait_for_firmware(port: str, timeout: float = 10.0) -> BoardInfo:
    """The handshake after a reset, retried while the board boots."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with BoardClient(port) as fresh:
                return fresh.info
        except BoardError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
