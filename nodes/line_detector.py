"""Line detector: where the tape is, in metres, from one camera frame.

Per frame: grey image; a black-hat filter (closing minus image) along rows, which lifts
thin dark marks and ignores slow changes of light; on a dozen scan rows, the dark runs
whose width fits tape at that distance (from the camera model); of those, the run that
continues the line found on the rows below and in the last frame (so a crossing or a
stray mark does not pull the estimate away), scanning from the nearest row outward and
stopping where the tape turns across the view (in a hairpin the rows further out cut the
returning leg); the chosen centres mapped to the floor in
the car's frame (x ahead of the axle, y to the left) and a quadratic y(x) fitted to them.

Output per frame: `found`, `offset` (m, line left of the car positive, at the axle),
`heading` (rad, the line's direction relative to the car's), `curvature` (1/m, positive
turning left), `confidence` (0..1), and `points` (the floor points the fit used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from hal.camera_model import distort_pixels, floor_to_image, undistort_pixels
from hal.description import CameraParams, load_description

SCAN_ROWS = 14
MIN_CONTRAST = 25.0
CONTRAST_RATIO = 0.4
TAPE_WIDTH_M = 0.019


@dataclass(frozen=True)
class LineEstimate:
    """What the detector saw in one frame."""

    found: bool
    offset: float = 0.0
    heading: float = 0.0
    curvature: float = 0.0
    confidence: float = 0.0
    points: tuple[tuple[float, float], ...] = ()

    def lateral_at(self, ahead: float) -> float:
        """The line's lateral position (m, left positive) `ahead` metres in front of the axle."""
        c = self.curvature / 2
        return self.offset + math.tan(self.heading) * ahead + c * ahead * ahead

    def to_message(self) -> dict[str, object]:
        """A JSON-able form for `send_output`."""
        return {
            "found": self.found,
            "offset": round(self.offset, 5),
            "heading": round(self.heading, 5),
            "curvature": round(self.curvature, 4),
            "confidence": round(self.confidence, 3),
            "points": [[round(x, 4), round(y, 4)] for x, y in self.points],
        }


class LineDetector:
    """Finds the tape in frames from a camera described by `CameraParams`."""

    def __init__(self, camera: CameraParams, roi_top: float = 0.35):
        self.camera = camera
        self._to_image = floor_to_image(camera, 0.0, 0.0, 0.0)
        self._to_floor = np.linalg.inv(self._to_image)
        top = int(camera.height * roi_top)
        self.rows = np.linspace(camera.height - 4, top, SCAN_ROWS).round().astype(int)
        # expected tape width in pixels on each scan row, from the camera model
        self._tape_px = []
        for row in self.rows:
            x0, y0 = self.pixel_to_floor(camera.width / 2, row)
            u1, _ = self.floor_to_pixel(x0, y0 + TAPE_WIDTH_M / 2)
            u2, _ = self.floor_to_pixel(x0, y0 - TAPE_WIDTH_M / 2)
            self._tape_px.append(abs(u2 - u1))
        widest = max(self._tape_px)
        # where each scan row crosses the image's middle column, metres ahead of the axle
        self._row_x = self.pixels_to_floor(np.column_stack([np.full(len(self.rows), camera.width / 2), self.rows]))[
            :, 0
        ]
        self._kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (int(widest * 2.5) | 1, 1))
        self._last: LineEstimate | None = None
        self.min_contrast = MIN_CONTRAST  # darker than the floor by at least this (0-255) to be tape
        self.contrast_ratio = CONTRAST_RATIO  # ... and by this share of the darkest contrast in the frame

    def pixels_to_floor(self, pixels: np.ndarray) -> np.ndarray:
        """Floor points (N x 2: x ahead of the axle, y left) seen at pixels (N x 2) of the camera's image."""
        ideal = undistort_pixels(self.camera, pixels)
        mapped = np.column_stack([ideal, np.ones(len(ideal))]) @ self._to_floor.T
        floor: np.ndarray = mapped[:, :2] / mapped[:, 2:]
        return floor

    def floor_to_pixels(self, points: np.ndarray) -> np.ndarray:
        """Pixels (N x 2) of the camera's image where floor points (N x 2) are seen."""
        mapped = np.column_stack([points, np.ones(len(points))]) @ self._to_image.T
        pixels: np.ndarray = distort_pixels(self.camera, mapped[:, :2] / mapped[:, 2:])
        return pixels

    def pixel_to_floor(self, u: float, v: float) -> tuple[float, float]:
        """Floor point (x ahead of the axle, y left) seen at pixel (u, v) of the camera's image."""
        x, y = self.pixels_to_floor(np.array([[u, v]]))[0]
        return float(x), float(y)

    def floor_to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """Pixel (u, v) of the camera's image where floor point (x ahead of the axle, y left) is seen."""
        u, v = self.floor_to_pixels(np.array([[x, y]]))[0]
        return float(u), float(v)

    def detect(self, frame: np.ndarray) -> LineEstimate:
        """Estimate the line in one BGR frame."""
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        strips = grey[self.rows]  # only the scan rows: a fraction of the image
        hat = cv2.morphologyEx(strips, cv2.MORPH_BLACKHAT, self._kernel)
        hat = cv2.GaussianBlur(hat.astype(np.float32), (5, 1), 0)
        threshold = max(self.min_contrast, float(np.percentile(hat, 99)) * self.contrast_ratio)
        guess = self._predicted_columns()
        centres: list[tuple[float, float]] = []  # pixels
        previous_u: float | None = None
        for k, row in enumerate(self.rows):
            runs = _dark_runs(hat[k], threshold)
            width = self._tape_px[k]
            fitting = [(a, b) for a, b in runs if 0.4 * width <= b - a <= 6.0 * width]  # oblique tape is wider
            if not fitting:
                continue
            expect = previous_u if previous_u is not None else (guess[k] if guess is not None else None)
            if expect is None:
                a, b = min(fitting, key=lambda r: abs((r[0] + r[1]) / 2 - self.camera.width / 2))
            else:
                a, b = min(fitting, key=lambda r: abs((r[0] + r[1]) / 2 - expect))
                if abs((a + b) / 2 - expect) > max(25.0, 3 * width):
                    if previous_u is not None:
                        break  # the tape turns across the view (a hairpin): keep the near stretch
                    continue  # far from the last frame's line: a stray mark
            u = (a + b) / 2
            previous_u = u
            centres.append((u, float(row)))
        estimate = self._fit(self.pixels_to_floor(np.array(centres)) if len(centres) >= 4 else None)
        self._last = estimate if estimate.found else None
        return estimate

    def _predicted_columns(self) -> list[float] | None:
        """Where the last frame's line would cross each scan row (None when it was lost)."""
        if self._last is None:
            return None
        xs = self._row_x
        c = self._last.curvature / 2
        lateral = self._last.offset + math.tan(self._last.heading) * xs + c * xs * xs
        columns: list[float] = self.floor_to_pixels(np.column_stack([xs, lateral]))[:, 0].tolist()
        return columns

    def _fit(self, centres: np.ndarray | None) -> LineEstimate:
        """The quadratic through the floor points of the centres found (N x 2; None: too few)."""
        if centres is None:
            return LineEstimate(found=False)
        xs, ys = centres[:, 0], centres[:, 1]
        degree = 2 if len(centres) >= 6 else 1
        coeffs = np.polyfit(xs, ys, degree)
        if degree == 1:
            coeffs = np.concatenate([[0.0], coeffs])
        c2, c1, c0 = (float(v) for v in coeffs)
        residual = float(np.sqrt(np.mean((np.polyval(coeffs, xs) - ys) ** 2)))
        coverage = len(centres) / SCAN_ROWS
        confidence = max(0.0, min(1.0, coverage * (1.0 - residual / 0.01)))
        return LineEstimate(
            found=True,
            offset=c0,
            heading=math.atan(c1),
            curvature=2 * c2 / (1 + c1 * c1) ** 1.5,
            confidence=confidence,
            points=tuple(zip(xs.tolist(), ys.tolist(), strict=True)),
        )


def _dark_runs(values: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(start, end) column pairs where `values` is above `threshold`."""
    above = np.concatenate([[False], values > threshold, [False]])
    edges = np.flatnonzero(above[1:] != above[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def main() -> None:
    """The node: `image` in, `line` out (metadata passed through)."""
    import os

    from car import Node

    detector = LineDetector(load_description().camera, roi_top=float(os.environ.get("ROI_TOP", "0.35")))
    node = Node()
    detector.min_contrast = node.declare_parameter(
        "min_contrast", MIN_CONTRAST, "how much darker than the floor (0-255) tape must be", (0.0, 255.0)
    )
    detector.contrast_ratio = node.declare_parameter(
        "contrast_ratio", CONTRAST_RATIO, "... and what share of the frame's darkest contrast", (0.05, 1.0)
    )
    for event in node:
        if event.type == "INPUT" and event.id == "image":
            node.send_output("line", detector.detect(event.value).to_message(), event.metadata)
        elif event.type == "PARAMETER":  # `car param set line_detector NAME VALUE`
            setattr(detector, event.id, event.value)


if __name__ == "__main__":
    main()
