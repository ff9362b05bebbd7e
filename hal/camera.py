"""The car's camera through OpenCV: `hal.interfaces.Camera` over `cv2.VideoCapture`.

camera = OpenCVCamera(0, width=320, height=240, fps=30)   # a device index, a /dev/video path,
frame, t = camera.read()                                   # or a video file (for tests)
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from hal.interfaces import check_frame_array


class CameraError(Exception):
    """The camera could not be opened or read; the message says which and what to try."""


class OpenCVCamera:
    """Frames (BGR uint8) at the requested size, stamped with `time.monotonic()`."""

    def __init__(self, source: int | str, width: int = 320, height: int = 240, fps: float = 30.0):
        self.source = source
        self.size = (width, height)
        self._capture = cv2.VideoCapture(source)
        if not self._capture.isOpened():
            raise CameraError(f"cannot open camera {source!r}: check the device index or path (ls /dev/video*)")
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture.set(cv2.CAP_PROP_FPS, fps)
        # a video file plays at its own frame rate, as the camera that recorded it did
        is_file = isinstance(source, str) and not source.startswith("/dev/")
        file_fps = self._capture.get(cv2.CAP_PROP_FPS) if is_file else 0.0
        self._period = 1.0 / file_fps if file_fps > 0 else 0.0
        self._next = time.monotonic()

    def read(self, out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """The next frame and when it was taken (hal.interfaces.Camera); written into `out` if given."""
        if self._period:
            wait = self._next - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._next = max(self._next + self._period, time.monotonic() - self._period)
        check_frame_array(out, *self.size)
        ok, frame = self._capture.read(out)  # into `out` when the driver gives the size asked for
        taken = time.monotonic()
        if not ok or frame is None:
            raise CameraError(f"camera {self.source!r} gave no frame (unplugged, or the end of a video file)")
        if (frame.shape[1], frame.shape[0]) != self.size:  # the driver ignored the size we asked for
            frame = cv2.resize(frame, self.size, dst=out, interpolation=cv2.INTER_AREA)
        return frame, taken

    def close(self) -> None:
        """Release the device."""
        self._capture.release()
