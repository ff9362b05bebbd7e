"""Teleop: keys typed into a real pseudo-terminal drive the simulated car."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from nodes.teleop import Drive, actions, apply
from tests.helpers import ROOT, run_status, start_car


def test_keys_become_actions_and_drive() -> None:
    assert actions("ww\x1b[Da \x1b[Bq") == ["faster", "faster", "left", "left", "stop", "slower", "quit"]
    drive = Drive()
    for action in ("faster", "faster", "faster", "left"):
        drive = apply(drive, action)
    assert drive == Drive(speed=0.3, turn=1.0)
    left, right = drive.wheels(wheel_base=0.15)
    assert right > left > 0
    assert apply(drive, "stop") == Drive()
    for _ in range(20):
        drive = apply(drive, "faster")
    assert drive.speed == 0.8  # capped


def read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    """What the program on the pseudo-terminal `fd` wrote, up to and including `marker` (typed keys wait for it)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} on the terminal within {timeout:g} s: {seen[-500:]!r}"
        if select.select([fd], [], [], left)[0]:
            seen += os.read(fd, 4096)
    return seen


def test_driving_from_a_terminal(tmp_path: Path) -> None:
    name = f"teleop-{os.getpid()}"
    report = tmp_path / "teleop.json"
    flow = str(ROOT / "dataflows" / "teleop.yml")
    car = start_car(
        "launch", flow, "--name", name, "--headless", "--report", str(report), "--out", str(tmp_path / "out")
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                states = {n.id: n.state for n in run_status(name).nodes}
                if states.get("car_io") == "running":
                    break
            except Exception:  # still starting
                pass
            time.sleep(0.2)
        controller, terminal = pty.openpty()
        keys = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "car",
                "run-node",
                "teleop",
                "-d",
                name,
                "--",
                sys.executable,
                "-m",
                "nodes.teleop",
            ],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            cwd=tmp_path,
        )
        os.close(terminal)
        shown = read_until(controller, b"faster", timeout=60)  # its help: the terminal is in cbreak mode now
        os.write(controller, b"www")  # 0.3 m/s
        time.sleep(2.0)
        os.write(controller, b"\x1b[D")  # a little left
        time.sleep(1.0)
        os.write(controller, b"q")
        assert keys.wait(timeout=20) == 0
        screen = shown
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        os.close(controller)
        _, stderr = car.communicate(timeout=30)
    finally:
        if car.poll() is None:
            car.kill()
            car.communicate()
    assert car.returncode == 0, stderr[-2000:]
    assert "stopping (node `teleop`: teleop quit)" in stderr
    assert b"speed +0.3 m/s" in screen
    figures = json.loads(report.read_text())
    assert 0.4 < figures["distance_m"] < 1.2  # about 3 s at 0.3 m/s
