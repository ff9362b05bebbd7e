"""The board emulator over its pseudo-terminal: the firmware loop, telemetry, ping and watchdog.

For each back end (the firmware on the MicroPython VM, and the CPython fallback):
  loop: the firmware's main-loop rounds per second and its longest round (wall clock;
        on the VM a round is main.py's loop, a 1 ms sleep included; under CPython, one
        firmware step)
  telemetry: frames per second reaching the host while it drives, and frames lost
  ping: PING to ACK round trip over the pty (p50, p99, ms)
  watchdog: last SET_WHEELS to the first telemetry flagged WATCHDOG, host wall clock
        (p50, max, ms), and the same in board time (the readings' timestamps)

`--json` prints one object: machine, then per back end loop, telemetry_hz, lost_frames,
ping_ms {p50, p99}, watchdog_ms {p50, max}, watchdog_board_ms {p50, max}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import machine

from firmware import protocol
from hal.board_client import BoardClient


def measure(vm: str, seconds: float, pings: int, watchdog_trials: int) -> dict[str, Any]:
    """Drive one emulator back end and time it."""
    with tempfile.TemporaryDirectory() as work:
        stats = Path(work) / "stats.json"
        emulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sim.board_emulator",
                "--vm",
                vm,
                "--stats",
                str(stats),
                "--fs",
                str(Path(work) / "fs"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert emulator.stdout is not None
        port = emulator.stdout.readline().strip()
        try:
            with BoardClient(port) as board:
                time.sleep(0.5)
                start, counted = time.monotonic(), board.stats().telemetry
                while time.monotonic() - start < seconds:
                    board.set_wheel_speeds(0.3, 0.3)
                    time.sleep(0.02)
                telemetry_hz = (board.stats().telemetry - counted) / (time.monotonic() - start)
                rtts = []
                for _ in range(pings):
                    rtt = board.round_trip()
                    if rtt is not None:
                        rtts.append(rtt * 1000)
                    time.sleep(0.01)
                wall, board_time = [], []
                for _ in range(watchdog_trials):
                    for _ in range(20):
                        board.set_wheel_speeds(0.2, 0.2)
                        time.sleep(0.02)
                    board.set_wheel_speeds(0.2, 0.2)
                    sent, last = time.monotonic(), board.latest()
                    while not board.flags & protocol.FLAG_WATCHDOG and time.monotonic() - sent < 2:
                        time.sleep(0.001)
                    wall.append((time.monotonic() - sent) * 1000)
                    flagged = board.latest()
                    if last is not None and flagged is not None:
                        board_time.append((flagged.t - last.t) * 1000)
                lost = board.stats().lost_frames
        finally:
            emulator.terminate()
            emulator.wait(timeout=10)
        loop = json.loads(stats.read_text())
    return {
        "back_end": loop["back_end"],
        "loop": loop["loop"],
        "telemetry_hz": round(telemetry_hz, 1),
        "lost_frames": lost,
        "pings_unanswered": pings - len(rtts),
        "ping_ms": {"p50": round(float(np.percentile(rtts, 50)), 2), "p99": round(float(np.percentile(rtts, 99)), 2)},
        "watchdog_ms": {"p50": round(float(np.median(wall)), 1), "max": round(max(wall), 1)},
        "watchdog_board_ms": {"p50": round(float(np.median(board_time)), 1), "max": round(max(board_time), 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--back-ends", default="micropython,cpython")
    parser.add_argument("--seconds", type=float, default=5.0, help="of driving, for the telemetry rate")
    parser.add_argument("--pings", type=int, default=100)
    parser.add_argument("--watchdog-trials", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": machine()}
    for vm in args.back_ends.split(","):
        report[vm] = measure(vm, args.seconds, args.pings, args.watchdog_trials)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for vm in args.back_ends.split(","):
        r = report[vm]
        print(f"{vm}: {r['back_end']}")
        print(f"  firmware loop  {r['loop']['rate_hz']} rounds/s, longest {r['loop']['longest_ms']} ms")
        print(f"  telemetry      {r['telemetry_hz']} Hz at the host, {r['lost_frames']} frames lost")
        print(
            f"  ping           p50 {r['ping_ms']['p50']} ms, p99 {r['ping_ms']['p99']} ms, "
            f"{r['pings_unanswered']} of {args.pings} unanswered"
        )
        print(
            f"  watchdog       {r['watchdog_ms']['p50']} ms (max {r['watchdog_ms']['max']}) host clock, "
            f"{r['watchdog_board_ms']['p50']} ms (max {r['watchdog_board_ms']['max']}) board clock"
        )


if __name__ == "__main__":
    main()
