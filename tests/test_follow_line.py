"""Closed loop in simulation: `car launch dataflows/follow_line.yml` drives the car round every track."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, car, run_status, start_car

FLOW = str(ROOT / "dataflows" / "follow_line.yml")


def launch(tmp_path: Path, track: str, seed: int, laps: int = 3) -> dict[str, object]:
    report = tmp_path / f"{track}-{seed}.json"
    args = ["launch", FLOW, "--sim", "--track", track, "--seed", str(seed), "--laps", str(laps)]
    args += ["--headless", "--realtime-factor", "0", "--report", str(report), "--out", str(tmp_path / "out")]
    result = car(*args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert report.with_suffix(".png").stat().st_size > 10_000
    figures: dict[str, object] = json.loads(report.read_text())
    return figures


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "track",
    ["oval", "s_curves", "hairpins", "figure8"],
)
def test_follows_the_line_for_three_laps(tmp_path: Path, track: str, seed: int) -> None:
    figures = launch(tmp_path, track, seed)
    assert figures["track"] == track and figures["seed"] == seed
    assert figures["completed"] is True and figures["laps"] == 3
    assert len(figures["lap_times_s"]) == 3  # type: ignore[arg-type]
    assert figures["mean_speed_mps"] >= 0.5  # type: ignore[operator]
    assert figures["cross_track_rms_m"] <= 0.015  # type: ignore[operator]
    assert figures["cross_track_max_m"] <= 0.05  # type: ignore[operator]
    assert figures["longest_off_line_s"] <= 0.3  # type: ignore[operator]


def test_a_track_file_works_like_a_shipped_track(tmp_path: Path) -> None:
    track = tmp_path / "loop.yml"
    track.write_text(
        "segments:\n  - straight: 1.0\n  - arc: {radius: 0.6, angle: 180}\n  - straight: 1.0\n  - arc: {radius: 0.6, angle: 180}\n"
    )
    figures = launch(tmp_path, str(track), 0, laps=1)
    assert figures["completed"] is True and figures["track"] == str(track)


def test_bad_launch_options_are_clear_errors() -> None:
    result = car("launch", FLOW, "--track", "moon")
    assert result.returncode == 2 and "no track named `moon`" in result.stderr and "Traceback" not in result.stderr
    result = car("launch", FLOW, "--laps", "0")
    assert result.returncode == 2 and "--laps must be at least 1" in result.stderr


def test_killing_the_controller_stops_the_wheels(tmp_path: Path) -> None:
    """car_io's dead man's switch: with the controller gone (and the run going on without it), the wheels stop."""
    name = f"deadman-{os.getpid()}"
    flow = tmp_path / "follow_line.yml"
    text = Path(FLOW).read_text().replace("path: -m nodes.controller", "path: -m nodes.controller\n    critical: false")
    flow.write_text(text)
    proc = start_car("launch", str(flow), "--name", name, "--headless", "--out", str(tmp_path / "out"))
    try:
        deadline = time.monotonic() + 30
        controller, driving = 0, 0.0
        while driving < 1.0 and time.monotonic() < deadline:  # wait until the car has driven 1 s
            time.sleep(0.2)
            try:
                nodes = {n.id: n for n in run_status(name).nodes}
            except Exception:  # the run is still starting
                continue
            controller = nodes["controller"].pid
            clock = re.match(r"t ([\d.]+) s", nodes["car_io"].status)
            driving = float(clock.group(1)) if clock else 0.0
        assert controller and driving >= 1.0
        os.kill(controller, signal.SIGKILL)
        time.sleep(1.0)
        stopped = car("stop", name)
        assert stopped.returncode == 0, stopped.stderr
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stops = re.findall(r"no command since t=([\d.]+) s; wheels stopped at t=([\d.]+) s", stderr)
    assert stops, stderr[-2000:]
    last_command, stopped_at = (float(v) for v in stops[-1])  # the last: after the kill
    assert last_command > 0.9  # it was driving
    assert stopped_at - last_command <= 0.25
    assert "node `controller` failed: killed by SIGKILL" in stderr


@pytest.mark.slow
@pytest.mark.parametrize("track", ["oval", "s_curves"])
def test_ir_follower_completes_the_track(tmp_path: Path, track: str) -> None:
    report = tmp_path / "ir.json"
    flow = str(ROOT / "dataflows" / "follow_line_ir.yml")
    args = ["launch", flow, "--track", track, "--laps", "3", "--realtime-factor", "0", "--headless"]
    result = car(*args, "--report", str(report), "--out", str(tmp_path / "out"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert figures["completed"] is True and figures["laps"] == 3
    assert figures["mean_speed_mps"] >= 0.3
    assert figures["longest_off_line_s"] == 0.0
