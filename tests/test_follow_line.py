"""Closed loop in simulation: `car launch dataflows/follow_line.yml` drives the car round every track."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, car, run_status, start_car, wait_until

FLOW = str(ROOT / "dataflows" / "follow_line.yml")


def launch(tmp_path: Path, track: str, seed: int, laps: int = 3) -> dict[str, object]:
    report = tmp_path / f"{Path(track).stem}-{seed}.json"  # a track given by path: its report stays in tmp_path
    args = ["launch", FLOW, "--sim", "--track", track, "--seed", str(seed), "--laps", str(laps)]
    args += ["--headless", "--realtime-factor", "0", "--report", str(report), "--out", str(tmp_path / "out")]
    result = car(*args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert report.with_suffix(".png").stat().st_size > 10_000
    figures: dict[str, object] = json.loads(report.read_text())
    return figures


HELD_OUT = ROOT / "tests" / "fixtures" / "tracks"  # tracks the controller was never tuned on (bench/lap_sweep.py)

# the pace and accuracy every track must be driven at (the shipped ones, which the tuning saw, and the held-out)
MIN_SPEED_MPS = 0.7
MAX_RMS_M = 0.01
MAX_CROSS_TRACK_M = 0.03


def assert_fast_and_on_the_line(figures: dict[str, object], laps: int) -> None:
    """The bounds every track is driven within; the figures are in the message when it fails."""
    assert figures["completed"] is True and figures["laps"] == laps, figures
    assert figures["mean_speed_mps"] >= MIN_SPEED_MPS, figures  # type: ignore[operator]
    assert figures["cross_track_rms_m"] <= MAX_RMS_M, figures  # type: ignore[operator]
    assert figures["cross_track_max_m"] <= MAX_CROSS_TRACK_M, figures  # type: ignore[operator]
    assert figures["longest_off_line_s"] == 0.0, figures


@pytest.mark.slow
@pytest.mark.parametrize(
    ("track", "seed"),
    [
        ("oval", 1),
        ("s_curves", 2),
        ("hairpins", 3),
        ("figure8", 1),
        (str(HELD_OUT / "kidney.yml"), 2),
        (str(HELD_OUT / "chicanes.yml"), 3),
        (str(HELD_OUT / "pill.yml"), 1),
    ],
    ids=["oval", "s_curves", "hairpins", "figure8", "kidney", "chicanes", "pill"],
)
def test_follows_every_track_fast_and_on_the_line(tmp_path: Path, track: str, seed: int) -> None:
    figures = launch(tmp_path, track, seed, laps=1)
    assert figures["track"] == track and figures["seed"] == seed
    assert len(figures["lap_times_s"]) == 1  # type: ignore[arg-type]
    assert_fast_and_on_the_line(figures, laps=1)


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
        log = tmp_path / "out" / name / "car_io.log"
        stops_before = log.read_text().count("wheels stopped at")
        os.kill(controller, signal.SIGKILL)
        wait_until("car_io stopping the wheels", lambda: log.read_text().count("wheels stopped at") > stops_before)
        stopped = car("stop", "-d", name)
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
