"""The OpenCV camera, fed from a video file (no USB camera here): real OpenCV, real decoding."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hal.camera import CameraError, OpenCVCamera
from sim import World, load_track


def test_frames_come_back_at_the_requested_size(tmp_path: Path) -> None:
    world = World(load_track("oval"), seed=1)
    video = tmp_path / "run.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    frames = []
    for _ in range(10):
        world.wheels.set_wheel_speeds(0.3, 0.3)
        world.step(1 / 30)
        frame, _ = world.camera.read()
        frames.append(frame)
        writer.write(frame)
    writer.release()
    camera = OpenCVCamera(str(video), width=160, height=120)
    previous = first = 0.0
    for i, original in enumerate(frames):
        out = np.zeros((120, 160, 3), np.uint8) if i % 2 else None  # every other frame into an array given
        frame, taken = camera.read(out)
        assert out is None or frame is out
        first = first or taken
        assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8 and taken >= previous
        previous = taken
        small = cv2.resize(original, (160, 120), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(frame.astype(int) - small).mean() < 12  # MJPG is lossy, but it is the same picture
    with pytest.raises(ValueError, match="a frame is 120x160x3 uint8, not 240x320x3 uint8"):
        camera.read(np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(CameraError, match="gave no frame"):
        camera.read()
    camera.close()
    assert previous - first >= 9 / 30 * 0.9  # ten frames of a 30 frames/s file take a third of a second
    full_size = OpenCVCamera(str(video), width=320, height=240)  # the file's own size: decoded into `out`
    out = np.zeros((240, 320, 3), np.uint8)
    frame, _ = full_size.read(out)
    assert frame is out and np.abs(out.astype(int) - frames[0]).mean() < 12
    full_size.close()


def test_a_missing_camera_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="cannot open camera"):
        OpenCVCamera(str(tmp_path / "no-such-video.avi"))
