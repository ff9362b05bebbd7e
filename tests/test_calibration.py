"""Calibration against the simulator: pictures through a camera the test perturbs, the real OpenCV calibration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from hal.description import load_description
from tests.helpers import ROOT, car
from tests.test_follow_line import assert_fast_and_on_the_line

pytestmark = pytest.mark.xdist_group("calibration")  # its module-scoped fixture runs once, on one worker

# the camera the pictures are taken with: not the shipped model in any number that matters
TRUE_CAMERA = {
    "hfov_deg": 64.0,
    "tilt_deg": 30.0,
    "mount_height": 0.105,
    "forward": 0.07,
    "roll_deg": 1.5,
    "yaw_deg": -1.0,
    "cx": 166.0,
    "cy": 116.0,
    "k1": -0.12,
    "k2": 0.03,
}
FLOOR_AT = "0.3"  # this camera sees the floor from further ahead than the shipped one


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, object]]:
    """(true description, calibrated description, the calibration's JSON)."""
    folder = tmp_path_factory.mktemp("calibration")
    true_car = folder / "true.yml"
    true_car.write_text(yaml.safe_dump({"camera": TRUE_CAMERA}))
    views = folder / "views"
    scene = car("calibrate", "scene", "--car", str(true_car), "--out", str(views), "--floor-at", FLOOR_AT)
    assert scene.returncode == 0, scene.stderr
    out = folder / "calibrated.yml"
    out.write_text("car: {wheel_base: 0.16}\n")  # a section calibration must keep
    result = car("calibrate", "camera", "--images", str(views), "--out", str(out), "--floor-at", FLOOR_AT, "--json")
    assert result.returncode == 0, result.stderr
    return true_car, out, json.loads(result.stdout)


def test_camera_calibration_recovers_the_camera_the_pictures_were_taken_with(
    calibrated: tuple[Path, Path, dict[str, object]],
) -> None:
    true_car, out, result = calibrated
    truth, found = load_description(true_car).camera, load_description(out).camera
    assert found.fx == pytest.approx(truth.focal_px, rel=0.02) and found.fy == pytest.approx(truth.focal_px, rel=0.02)
    assert abs(found.tilt_deg - truth.tilt_deg) < 1.0
    assert abs(found.mount_height - truth.mount_height) < 0.005
    assert abs(found.roll_deg - truth.roll_deg) < 0.5 and abs(found.yaw_deg - truth.yaw_deg) < 0.5
    assert abs(found.forward - truth.forward) < 0.01 and abs(found.lateral) < 0.01
    assert abs(found.cx - truth.cx) < 3 and abs(found.cy - truth.cy) < 3 and abs(found.k1 - truth.k1) < 0.03
    intrinsics = result["intrinsics"]
    assert isinstance(intrinsics, dict) and intrinsics["rms_px"] < 0.5 and len(intrinsics["view_errors_px"]) >= 15
    assert load_description(out).car.wheel_base == 0.16  # the other sections stay
    assert "`camera` written by `car calibrate camera`" in out.read_text()


def test_bad_views_are_named_and_dropped_and_too_few_is_a_clear_error(
    calibrated: tuple[Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    true_car, _, _ = calibrated
    views = tmp_path / "views"
    assert (
        car("calibrate", "scene", "--car", str(true_car), "--out", str(views), "--floor-at", FLOOR_AT).returncode == 0
    )
    cv2.imwrite(str(views / "view90_blank.png"), np.full((240, 320, 3), 128, np.uint8))
    noise = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    cv2.imwrite(str(views / "view91_noise.png"), noise)
    out = tmp_path / "car.yml"
    shown = car("calibrate", "camera", "--images", str(views), "--out", str(out), "--floor-at", FLOOR_AT)
    assert shown.returncode == 0, shown.stderr
    assert "dropped view90_blank.png: no 9x6 board found" in shown.stdout
    assert "dropped view91_noise.png: no 9x6 board found" in shown.stdout
    for extra in sorted(views.glob("view*.png"))[4:]:
        extra.unlink()
    few = car("calibrate", "camera", "--images", str(views), "--out", str(out), "--floor-at", FLOOR_AT)
    assert few.returncode == 1 and "usable views of the board, 6 needed" in few.stderr
    assert "Traceback" not in few.stderr
    (views / "floor.png").unlink()
    no_floor = car("calibrate", "camera", "--images", str(views), "--out", str(out))
    assert no_floor.returncode == 1 and "no floor.png" in no_floor.stderr
    wrong = car("calibrate", "camera", "--images", str(tmp_path / "nowhere"), "--out", str(out))
    assert wrong.returncode == 1 and "not a folder" in wrong.stderr


def follow(tmp_path: Path, true_car: Path, model: Path, track: str) -> dict[str, object]:
    name = f"{model.stem}-{Path(track).stem}"
    report = tmp_path / f"{name}.json"
    flow = str(ROOT / "dataflows" / "follow_line.yml")
    options = ["--sim-car", str(true_car), "--car", str(model), "--track", track, "--laps", "1", "--headless"]
    options += ["--realtime-factor", "0", "--report", str(report), "--out", str(tmp_path / name)]
    result = car("launch", flow, *options, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    figures: dict[str, object] = json.loads(report.read_text())
    return figures


@pytest.mark.slow
def test_follow_line_with_the_calibrated_model_meets_the_bounds_the_true_one_does(
    calibrated: tuple[Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    """On the held-out track the tuning found hardest (bench/README.md: 0.25 m S-bends)."""
    true_car, out, _ = calibrated
    track = str(ROOT / "tests" / "fixtures" / "tracks" / "chicanes.yml")
    assert_fast_and_on_the_line(follow(tmp_path, true_car, true_car, track), laps=1)
    assert_fast_and_on_the_line(follow(tmp_path, true_car, out, track), laps=1)


def test_camera_calibration_live_from_a_camera(
    calibrated: tuple[Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    """`--camera SOURCE`: views taken as the board moves, then the floor view after Enter; a video file stands in for
    the USB camera (held views, a pause while the board is laid down, the board on the floor)."""
    true_car, _, _ = calibrated
    views = tmp_path / "views"
    assert (
        car("calibrate", "scene", "--car", str(true_car), "--out", str(views), "--floor-at", FLOOR_AT).returncode == 0
    )
    video = tmp_path / "camera.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for held in sorted(views.glob("view*.png")):
        writer.write(cv2.imread(str(held)))
    for _ in range(60):  # two seconds of nothing: the board is being laid down
        writer.write(np.full((240, 320, 3), 120, np.uint8))
    floor = cv2.imread(str(views / "floor.png"))
    for _ in range(30):
        writer.write(floor)
    writer.release()
    out = tmp_path / "live.yml"
    live = subprocess.run(
        [
            *(sys.executable, "-m", "car", "calibrate", "camera", "--camera", str(video), "--views", "10"),
            *("--floor-at", FLOOR_AT, "--out", str(out)),
        ],
        input="\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert live.returncode == 0, live.stderr
    assert "view 10 of 10" in live.stdout and "now lay the board on the floor" in live.stdout
    truth, found = load_description(true_car).camera, load_description(out).camera
    assert found.fx == pytest.approx(truth.focal_px, rel=0.03)
    assert abs(found.tilt_deg - truth.tilt_deg) < 1.0 and abs(found.mount_height - truth.mount_height) < 0.005
