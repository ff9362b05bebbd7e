"""The floor the camera and line sensors see: a top-down picture of a track, drawn once per run.

A tape track (`TrackStyle.TAPE`) is one line of tape along its centre line. A lane track
(`TrackStyle.LANE`) is a road: a dashed line along its centre and a solid edge line
`lane_width` to each side. Both sit on a textured floor with stray marks and boxes.

How the floor looks (its colour and texture, the lines' colour and wear, the light and the
shadows) is a `FloorLook`: the track's own colours by default, or drawn at random by
`sim.randomize` so a model trained on many looks drives on a floor it has not seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sim.track import Track, TrackStyle

DASH_M = 0.06  # a lane's centre line: dashes this long ...
GAP_M = 0.06  # ... with gaps this long
STRAY_MARK_CLEARANCE_M = 0.12  # stray marks keep this far from every line


@dataclass(frozen=True)
class FloorLook:
    """How a floor looks; the default is a clean, evenly lit floor in the track's colours."""

    floor_rgb: tuple[int, int, int]
    line_rgb: tuple[int, int, int]
    blotches: float = 0.06  # relative amplitude of the floor's low-frequency shading
    blotch_m: float = 0.12  # size of a blotch, metres
    grain: float = 0.03  # relative amplitude of the floor's fine grain
    wear: float = 0.0  # share of the lines worn away, 0..1
    light_gradient: float = 0.0  # relative brightness change across the floor, one side to the other
    light_angle: float = 0.0  # direction of that change, radians
    shadows: int = 0  # soft dark patches cast on the floor
    shadow_depth: float = 0.0  # how much a shadow darkens, 0..1

    @classmethod
    def plain(cls, track: Track) -> FloorLook:
        """The track's own colours, evenly lit, unworn."""
        return cls(floor_rgb=track.floor_rgb, line_rgb=track.line_rgb)


@dataclass
class FloorMap:
    """A top-down picture of the floor and the mapping from metres to its pixels."""

    image: np.ndarray  # BGR uint8
    px_per_m: float
    x_min: float
    y_max: float
    floor_rgb: tuple[int, int, int] = (190, 185, 172)  # the colours it was drawn in, for the line sensors
    line_rgb: tuple[int, int, int] = (25, 25, 28)

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """Pixel (column, row) of a floor point."""
        return (x - self.x_min) * self.px_per_m, (self.y_max - y) * self.px_per_m

    def world_to_pixel_matrix(self) -> np.ndarray:
        """3x3 matrix taking homogeneous floor metres to homogeneous pixels."""
        s = self.px_per_m
        return np.array([[s, 0, -self.x_min * s], [0, -s, self.y_max * s], [0, 0, 1]], dtype=np.float64)


def draw_floor(
    track: Track, px_per_m: float = 500.0, seed: int = 0, margin: float = 1.2, look: FloorLook | None = None
) -> FloorMap:
    """Render a track's floor top-down: textured floor, lines with slightly ragged edges, marks, boxes."""
    look = look or FloorLook.plain(track)
    x_min, y_min, x_max, y_max = track.bounds(margin)
    width = math.ceil((x_max - x_min) * px_per_m)
    height = math.ceil((y_max - y_min) * px_per_m)
    floor = FloorMap(np.empty((height, width, 3), np.uint8), px_per_m, x_min, y_max, look.floor_rgb, look.line_rgb)
    rng = np.random.default_rng(seed)
    # floor: base colour, blotchy low-frequency shading and a fine grain (float32 throughout: it is drawn per run)
    cell = max(2, round(look.blotch_m * px_per_m / 2))
    coarse = rng.standard_normal((max(2, height // cell), max(2, width // cell)), dtype=np.float32)
    blotches = cv2.resize(coarse, (width, height))
    grain = rng.standard_normal((height, width), dtype=np.float32)
    shade = 1 + look.blotches * blotches + look.grain * grain
    # lines: anti-aliased polylines, their edges roughened by thresholding noisy blur
    mask = np.zeros((height, width), np.uint8)
    thickness = max(1, round(track.line_width * px_per_m))
    for stroke, closed in _strokes(track):
        pixels = (stroke[:: max(1, len(stroke) // 4000)] - (x_min, y_max)) * (px_per_m, -px_per_m)
        cv2.polylines(mask, [np.round(pixels * 4).astype(np.int32)], closed, 255, thickness, cv2.LINE_AA, 2)
    for _ in range(track.distractors):
        _draw_mark(mask, floor, track, rng)
    cells = (max(2, height // 4), max(2, width // 4))  # edge wobble about 8 mm long at 500 px/m
    wobble = cv2.resize(
        25 * rng.standard_normal(cells, dtype=np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    paint: np.ndarray = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.5)
    paint += wobble
    paint -= 128
    paint *= 1 / 60
    paint += 0.5
    np.clip(paint, 0, 1, out=paint)
    if look.wear > 0:  # worn patches: the paint thins where a coarse noise field is low
        coarse = rng.uniform(0, 1, (max(2, height // 6), max(2, width // 6))).astype(np.float32)
        worn = cv2.resize(coarse, (width, height))
        paint *= np.clip((worn - look.wear) / 0.15 + 0.5, 0.15, 1)
    light = _light(look, height, width, rng) if look.light_gradient or look.shadows else None
    # mix one colour channel at a time in two reused buffers: a few large arrays, not a dozen
    grain *= 0.05
    grain += 1  # the paint's own grain
    bare, painted = np.empty_like(shade), np.empty_like(shade)
    for channel, (floor_value, line_value) in enumerate(zip(look.floor_rgb[::-1], look.line_rgb[::-1], strict=True)):
        np.multiply(shade, floor_value, out=bare)
        np.multiply(grain, line_value, out=painted)
        painted -= bare
        painted *= paint
        bare += painted
        if light is not None:
            bare *= light
        np.clip(bare, 0, 255, out=bare)
        floor.image[:, :, channel] = bare
    for box in track.obstacles:
        c0 = floor.to_pixel(box.x - box.width / 2, box.y + box.depth / 2)
        c1 = floor.to_pixel(box.x + box.width / 2, box.y - box.depth / 2)
        cv2.rectangle(floor.image, tuple(round(v) for v in c0), tuple(round(v) for v in c1), (60, 60, 170), -1)
    return floor


def _strokes(track: Track) -> list[tuple[np.ndarray, bool]]:
    """The lines to paint, each a polyline in metres and whether it closes."""
    if track.style is TrackStyle.TAPE:
        return [(track.points, track.closed)]
    centre = track.centre
    steps = np.hypot(*np.diff(centre, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(steps)])
    strokes = [
        (track.offset_centre(track.lane_width), track.closed),
        (track.offset_centre(-track.lane_width), track.closed),
    ]
    period = DASH_M + GAP_M
    on = (s % period) < DASH_M
    start = None
    for i, painted in enumerate(on):
        if painted and start is None:
            start = i
        elif not painted and start is not None:
            strokes.append((centre[start : i + 1], False))
            start = None
    if start is not None:
        strokes.append((centre[start:], False))
    return strokes


def _light(look: FloorLook, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Brightness over the floor: a gradient across it and soft shadows, 1 where evenly lit (drawn at an eighth of
    the size and enlarged: light changes slowly)."""
    small_h, small_w = max(2, height // 8), max(2, width // 8)
    light = np.ones((small_h, small_w), np.float32)
    if look.light_gradient:
        across = (np.arange(small_w, dtype=np.float32) / small_w - 0.5) * math.cos(look.light_angle)
        down = (np.arange(small_h, dtype=np.float32) / small_h - 0.5) * math.sin(look.light_angle)
        light += look.light_gradient * (down[:, None] + across[None, :])
    if look.shadows:
        mask = np.zeros((small_h, small_w), np.float32)
        angles = np.linspace(0, 2 * np.pi, 7, endpoint=False)
        for _ in range(look.shadows):
            centre = np.array([rng.uniform(0, small_w), rng.uniform(0, small_h)])
            radius = rng.uniform(0.05, 0.25) * min(small_h, small_w)
            corners = centre + radius * rng.uniform(0.4, 1.0, (7, 1)) * np.column_stack(
                [np.cos(angles), np.sin(angles)]
            )
            cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1.0)
        soft = cv2.GaussianBlur(mask, (0, 0), max(1.0, min(small_h, small_w) / 80))
        light *= 1 - look.shadow_depth * np.clip(soft, 0, 1)
    return cv2.resize(light, (width, height), interpolation=cv2.INTER_LINEAR)


def _draw_mark(mask: np.ndarray, floor: FloorMap, track: Track, rng: np.random.Generator) -> None:
    """A short stray stroke clear of every line."""
    x_min, y_min, x_max, y_max = track.bounds(0.2)
    clearance = track.half_width + STRAY_MARK_CLEARANCE_M
    for _ in range(50):
        x, y = rng.uniform(x_min, x_max), rng.uniform(y_min, y_max)
        if abs(track.from_centre(track.project(x, y).cross_track)) > clearance:
            break
    angle = rng.uniform(0, math.pi)
    length = rng.uniform(0.03, 0.08)
    a = floor.to_pixel(x, y)
    b = floor.to_pixel(x + length * math.cos(angle), y + length * math.sin(angle))
    width = max(1, round(rng.uniform(0.004, 0.012) * floor.px_per_m))
    cv2.line(mask, tuple(round(v) for v in a), tuple(round(v) for v in b), 255, width, cv2.LINE_AA)
