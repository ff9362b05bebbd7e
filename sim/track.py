"""Tracks: a tape line or a two-lane road on a floor, loaded from YAML, with the geometry the simulator needs.

A track file (see `sim/tracks/`) traces a centre line, either as a sequence of segments

    start: {x: 0, y: 0, heading_deg: 0}
    segments:
      - straight: 1.0                       # metres
      - arc: {radius: 0.5, angle: 180}      # degrees, positive turns left

or `points: [[x, y], ...]` (metres) smoothed into a curve, plus `line_width` (m, default
0.019: electrical tape), `closed` (default true), `floor` and `line` colours as [R, G, B],
`distractors` (a number of stray marks on the floor) and `obstacles` (boxes:
{x, y, width, depth}). A closed track must end within 1 cm of where it starts.

`style: tape` (the default) lays tape along the centre line, and the car follows it.
`style: lane` draws a road instead: a dashed line along the centre and a solid edge line
`lane_width` metres (default 0.25) to each side; the car keeps to the middle of the
right-hand lane, and that middle is the line a `Track` measures from (`points`,
`project`, `pose_at`), while `centre` is the road's centre. A lane track's bends must
be wider than `lane_width`, so its inner edge line does not fold over itself.

Positions are metres in the floor's frame (x right, y up), headings radians counter-
clockwise from +x. The signed cross-track distance is positive left of the line the car
should drive (seen in the direction of travel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import yaml

STEP_M = 0.005  # spacing of the dense centre line
CLOSURE_TOLERANCE_M = 0.01
TRACKS_DIR = Path(__file__).parent / "tracks"
DEFAULT_FLOOR_RGB = (190, 185, 172)
DEFAULT_LINE_RGB = (25, 25, 28)
DEFAULT_LANE_FLOOR_RGB = (88, 88, 92)  # asphalt-grey ...
DEFAULT_LANE_LINE_RGB = (235, 235, 225)  # ... with white paint
DEFAULT_LANE_WIDTH_M = 0.25


class TrackStyle(Enum):
    """What is drawn along a track's centre line."""

    TAPE = "tape"  # one line of tape; the car follows it
    LANE = "lane"  # a road: dashed centre line, solid edges; the car keeps to the right-hand lane


class TrackError(ValueError):
    """A track file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Obstacle:
    """A box standing on the floor, axis-aligned, centred at (x, y)."""

    x: float
    y: float
    width: float
    depth: float


@dataclass(frozen=True)
class Projection:
    """Where a point lies relative to the centre line."""

    index: int  # the centre-line segment it projects onto
    cross_track: float  # signed distance, positive left of the line
    progress: float  # arc length along the line, 0 at the start


class Track:
    """The line the car should drive (dense polyline) with its arc length, heading and curvature."""

    def __init__(
        self,
        name: str,
        points: np.ndarray,
        curvature: np.ndarray,
        closed: bool,
        line_width: float = 0.019,
        floor_rgb: tuple[int, int, int] = DEFAULT_FLOOR_RGB,
        line_rgb: tuple[int, int, int] = DEFAULT_LINE_RGB,
        obstacles: tuple[Obstacle, ...] = (),
        distractors: int = 0,
        style: TrackStyle = TrackStyle.TAPE,
        lane_width: float = DEFAULT_LANE_WIDTH_M,
    ):
        """`points` and `curvature` trace the centre line; a lane track's driving line is derived from them."""
        self.name = name
        self.style = style
        self.lane_width = lane_width
        self.centre = np.ascontiguousarray(points, dtype=np.float64)
        self._centre_normals = _left_normals(self.centre, closed)
        if style is TrackStyle.LANE:  # the right-hand lane's middle, half a lane right of the centre
            half = -lane_width / 2
            self.points = self.centre + half * self._centre_normals
            self.curvature = curvature / (1 - half * curvature)
        else:
            self.points = self.centre
            self.curvature = curvature
        self.closed = closed
        self.line_width = line_width
        self.floor_rgb = floor_rgb
        self.line_rgb = line_rgb
        self.obstacles = obstacles
        self.distractors = distractors
        deltas = np.diff(self.points, axis=0)
        self._seg_len = np.hypot(deltas[:, 0], deltas[:, 1])
        self.s = np.concatenate([[0.0], np.cumsum(self._seg_len)])
        self.heading = np.arctan2(deltas[:, 1], deltas[:, 0])
        self._xy = self.points.tolist()  # plain floats: the local search is pure Python

    def offset_centre(self, offset: float) -> np.ndarray:
        """The centre line moved `offset` metres to its left (negative: right), as a polyline."""
        return self.centre + offset * self._centre_normals

    @property
    def half_width(self) -> float:
        """Metres from the centre line to the outside of what is painted: the edge lines, or the tape's side."""
        return self.lane_width + self.line_width / 2 if self.style is TrackStyle.LANE else self.line_width / 2

    def from_centre(self, cross_track: float) -> float:
        """A cross-track distance from the driving line, measured from the centre line instead."""
        return cross_track - self.lane_width / 2 if self.style is TrackStyle.LANE else cross_track

    @property
    def length(self) -> float:
        """Length of the centre line in metres."""
        return float(self.s[-1])

    @property
    def start_pose(self) -> tuple[float, float, float]:
        """(x, y, heading) at the start of the line."""
        return float(self.points[0, 0]), float(self.points[0, 1]), float(self.heading[0])

    def pose_at(self, progress: float, offset: float = 0.0) -> tuple[float, float, float]:
        """(x, y, heading) at arc length `progress`, `offset` metres to the left of the line."""
        if self.closed:
            progress %= self.length
        i = int(np.clip(np.searchsorted(self.s, progress, side="right") - 1, 0, len(self.heading) - 1))
        t = (progress - self.s[i]) / max(self._seg_len[i], 1e-12)
        x, y = self.points[i] + t * (self.points[i + 1] - self.points[i])
        h = float(self.heading[i])
        return float(x - offset * math.sin(h)), float(y + offset * math.cos(h)), h

    def project(self, x: float, y: float, hint: int | None = None) -> Projection:
        """Project a point onto the line; with `hint` (the last index) search only nearby.

        The local search follows the branch the car is on, so a crossing (figure-eight)
        does not make the car jump to the other branch.
        """
        n = len(self._seg_len)
        if hint is None:
            i = self._nearest_global(x, y)
        else:
            i = hint % n if self.closed else min(max(hint, 0), n - 1)
            best = self._segment_distance(i, x, y)[0]
            for direction in (1, -1):
                while True:
                    j = i + direction
                    if self.closed:
                        j %= n
                    elif not 0 <= j < n:
                        break
                    d = self._segment_distance(j, x, y)[0]
                    if d >= best:
                        break
                    i, best = j, d
        dist, t, side = self._segment_distance(i, x, y)
        return Projection(i, math.copysign(dist, side), float(self.s[i] + t * self._seg_len[i]))

    def _segment_distance(self, i: int, x: float, y: float) -> tuple[float, float, float]:
        """Distance to segment i, the projection parameter t in [0, 1], and the side (cross product)."""
        ax, ay = self._xy[i]
        bx, by = self._xy[i + 1]
        dx, dy = bx - ax, by - ay
        qx, qy = x - ax, y - ay
        length2 = dx * dx + dy * dy
        t = min(1.0, max(0.0, (qx * dx + qy * dy) / length2)) if length2 > 0 else 0.0
        fx, fy = qx - t * dx, qy - t * dy
        return math.hypot(fx, fy), t, dx * qy - dy * qx

    def _nearest_global(self, x: float, y: float) -> int:
        a = self.points[:-1]
        d = self.points[1:] - a
        q = np.array([x, y]) - a
        t = np.clip(np.einsum("ij,ij->i", q, d) / np.maximum(np.einsum("ij,ij->i", d, d), 1e-12), 0, 1)
        foot = q - t[:, None] * d
        return int(np.argmin(np.einsum("ij,ij->i", foot, foot)))

    def bounds(self, margin: float) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) of what is painted and the obstacles, grown by `margin`."""
        reach = self.half_width
        xs = [self.centre[:, 0].min() - reach, self.centre[:, 0].max() + reach]
        ys = [self.centre[:, 1].min() - reach, self.centre[:, 1].max() + reach]
        for box in self.obstacles:
            xs += [box.x - box.width / 2, box.x + box.width / 2]
            ys += [box.y - box.depth / 2, box.y + box.depth / 2]
        return min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin


# -- loading ---------------------------------------------------------------------------


def load_track(name_or_path: str | Path) -> Track:
    """A shipped track by name (`oval`) or a track file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        shipped = TRACKS_DIR / f"{name_or_path}.yml"
        if not shipped.exists():
            names = ", ".join(sorted(p.stem for p in TRACKS_DIR.glob("*.yml")))
            raise TrackError(f"no track named `{name_or_path}`: shipped tracks are {names}, or give a file path")
        path = shipped
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrackError(f"{path}: no such track file") from None
    except yaml.YAMLError as exc:
        raise TrackError(f"{path}: YAML syntax error: {exc}") from None
    return track_from_dict(raw, str(path))


def _number(raw: Any, where: str, positive: bool = True) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise TrackError(f"{where} must be a number, got {raw!r}")
    if positive and raw <= 0:
        raise TrackError(f"{where} must be positive, got {raw}")
    return float(raw)


def _colour(raw: Any, where: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    if raw is None:
        return default
    if not (isinstance(raw, list) and len(raw) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in raw)):
        raise TrackError(f"{where} must be [R, G, B] with values 0-255, got {raw!r}")
    return (raw[0], raw[1], raw[2])


TRACK_KEYS = {
    "name",
    "start",
    "segments",
    "points",
    "line_width",
    "closed",
    "floor",
    "line",
    "obstacles",
    "distractors",
    "style",
    "lane_width",
}


def track_from_dict(raw: Any, label: str) -> Track:
    """Build a track from parsed YAML; `label` (the file) starts every error message."""
    if not isinstance(raw, dict):
        raise TrackError(f"{label}: a track file is a mapping with `segments` or `points`")
    unknown = set(raw) - TRACK_KEYS
    if unknown:
        raise TrackError(
            f"{label}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(TRACK_KEYS))}"
        )
    closed = raw.get("closed", True)
    if not isinstance(closed, bool):
        raise TrackError(f"{label}: `closed` must be true or false")
    if ("segments" in raw) == ("points" in raw):
        raise TrackError(f"{label}: give either `segments` or `points`")
    if "segments" in raw:
        points, curvature = _from_segments(raw, label)
    else:
        points, curvature = _from_points(raw.get("points"), closed, label)
    if closed:
        gap = float(np.hypot(*(points[-1] - points[0])))
        if gap > CLOSURE_TOLERANCE_M:
            end = points[-1]
            raise TrackError(
                f"{label}: the track is closed but ends at ({end[0]:.3f}, {end[1]:.3f}), {gap:.3f} m from its start "
                f"(at most {CLOSURE_TOLERANCE_M} m): fix the segments, or set `closed: false`"
            )
        points[-1] = points[0]
    obstacles = []
    for k, box in enumerate(raw.get("obstacles") or []):
        where = f"{label}: obstacle {k + 1}"
        if not isinstance(box, dict) or set(box) - {"x", "y", "width", "depth"}:
            raise TrackError(f"{where} must be {{x, y, width, depth}}")
        obstacles.append(
            Obstacle(
                _number(box.get("x"), f"{where}: x", False),
                _number(box.get("y"), f"{where}: y", False),
                _number(box.get("width", 0.1), f"{where}: width"),
                _number(box.get("depth", 0.1), f"{where}: depth"),
            )
        )
    distractors = raw.get("distractors", 0)
    if isinstance(distractors, bool) or not isinstance(distractors, int) or distractors < 0:
        raise TrackError(f"{label}: `distractors` must be a whole number >= 0")
    styles = {style.value: style for style in TrackStyle}
    if raw.get("style", "tape") not in styles:
        raise TrackError(f"{label}: `style` must be one of {', '.join(styles)}, got {raw.get('style')!r}")
    style = styles[raw.get("style", "tape")]
    if "lane_width" in raw and style is not TrackStyle.LANE:
        raise TrackError(f"{label}: `lane_width` is for `style: lane` tracks; add `style: lane` or remove it")
    lane_width = _number(raw.get("lane_width", DEFAULT_LANE_WIDTH_M), f"{label}: lane_width")
    if style is TrackStyle.LANE:
        tightest = float(np.abs(curvature).max())
        if tightest * lane_width >= 0.9:
            raise TrackError(
                f"{label}: its tightest bend (radius {1 / tightest:.3f} m) is too tight for lane_width {lane_width} m: "
                f"the inner edge line would fold over itself; widen the bend past {lane_width / 0.9:.3f} m "
                "or narrow the lane"
            )
    lane = style is TrackStyle.LANE
    return Track(
        name=str(raw.get("name", Path(label).stem)),
        points=points,
        curvature=curvature,
        closed=closed,
        line_width=_number(raw.get("line_width", 0.019), f"{label}: line_width"),
        floor_rgb=_colour(raw.get("floor"), f"{label}: floor", DEFAULT_LANE_FLOOR_RGB if lane else DEFAULT_FLOOR_RGB),
        line_rgb=_colour(raw.get("line"), f"{label}: line", DEFAULT_LANE_LINE_RGB if lane else DEFAULT_LINE_RGB),
        obstacles=tuple(obstacles),
        distractors=distractors,
        style=style,
        lane_width=lane_width,
    )


def _left_normals(points: np.ndarray, closed: bool) -> np.ndarray:
    """Unit vectors to the left of a dense polyline at each of its points (central differences)."""
    if closed:  # the last point repeats the first: wrap around it
        ahead = np.roll(points[:-1], -1, axis=0)
        behind = np.roll(points[:-1], 1, axis=0)
        tangent = np.vstack([ahead - behind, (ahead - behind)[:1]])
    else:
        tangent = np.gradient(points, axis=0)
    tangent /= np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-12)[:, None]
    return np.column_stack([-tangent[:, 1], tangent[:, 0]])


def _from_segments(raw: dict[str, Any], label: str) -> tuple[np.ndarray, np.ndarray]:
    start = raw.get("start", {}) or {}
    if not isinstance(start, dict) or set(start) - {"x", "y", "heading_deg"}:
        raise TrackError(f"{label}: `start` must be {{x, y, heading_deg}}")
    x = _number(start.get("x", 0.0), f"{label}: start.x", False)
    y = _number(start.get("y", 0.0), f"{label}: start.y", False)
    heading = math.radians(_number(start.get("heading_deg", 0.0), f"{label}: start.heading_deg", False))
    segments = raw["segments"]
    if not isinstance(segments, list) or not segments:
        raise TrackError(f"{label}: `segments` must be a non-empty list")
    xs, ys, ks = [x], [y], [0.0]
    for k, segment in enumerate(segments, start=1):
        where = f"{label}: segment {k}"
        if not isinstance(segment, dict) or len(segment) != 1:
            raise TrackError(f"{where} must be `straight: LENGTH` or `arc: {{radius: R, angle: DEG}}`, got {segment!r}")
        kind, value = next(iter(segment.items()))
        if kind == "straight":
            length = _number(value, f"{where} (straight)")
            n = max(1, math.ceil(length / STEP_M))
            for i in range(1, n + 1):
                xs.append(x + length * i / n * math.cos(heading))
                ys.append(y + length * i / n * math.sin(heading))
                ks.append(0.0)
            x, y = xs[-1], ys[-1]
        elif kind == "arc":
            if not isinstance(value, dict) or set(value) != {"radius", "angle"}:
                raise TrackError(f"{where}: an arc is {{radius: R_M, angle: DEG}}, got {value!r}")
            radius = _number(value["radius"], f"{where}: radius")
            angle = math.radians(_number(value["angle"], f"{where}: angle", False))
            if angle == 0:
                raise TrackError(f"{where}: angle must not be 0")
            turn = math.copysign(1.0, angle)
            cx, cy = x - turn * radius * math.sin(heading), y + turn * radius * math.cos(heading)
            n = max(2, math.ceil(abs(angle) * radius / STEP_M))
            for i in range(1, n + 1):
                h = heading + angle * i / n
                xs.append(cx + turn * radius * math.sin(h))
                ys.append(cy - turn * radius * math.cos(h))
                ks.append(turn / radius)
            heading += angle
            x, y = xs[-1], ys[-1]
        else:
            raise TrackError(f"{where}: unknown segment `{kind}`; use `straight` or `arc`")
    return np.column_stack([xs, ys]), np.array(ks)


def _from_points(raw: Any, closed: bool, label: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(raw, list) or len(raw) < 3:
        raise TrackError(f"{label}: `points` must be a list of at least 3 [x, y] pairs")
    for k, point in enumerate(raw, start=1):
        if not (isinstance(point, list) and len(point) == 2 and all(isinstance(v, (int, float)) for v in point)):
            raise TrackError(f"{label}: point {k} must be [x, y] in metres, got {point!r}")
    control = np.array(raw, dtype=np.float64)
    if closed and np.hypot(*(control[-1] - control[0])) < 1e-9:
        control = control[:-1]
    # centripetal-free uniform Catmull-Rom through the points, then resampled evenly
    padded = np.vstack([control[-1], control, control[:2]]) if closed else np.vstack([control[0], control, control[-1]])
    count = len(control) if closed else len(control) - 1
    t = np.linspace(0, 1, 40, endpoint=False)[:, None]
    pieces = []
    for i in range(count):
        p0, p1, p2, p3 = padded[i : i + 4]
        pieces.append(
            0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
        )
    pieces.append((control[0] if closed else control[-1])[None, :])
    curve = np.vstack(pieces)
    lengths = np.concatenate([[0], np.cumsum(np.hypot(*np.diff(curve, axis=0).T))])
    samples = np.linspace(0, lengths[-1], max(3, math.ceil(lengths[-1] / STEP_M) + 1))
    points = np.column_stack([np.interp(samples, lengths, curve[:, 0]), np.interp(samples, lengths, curve[:, 1])])
    heading = np.unwrap(np.arctan2(*np.diff(points, axis=0).T[::-1]))
    curvature = np.concatenate([[0.0], np.diff(heading) / STEP_M, [0.0]])
    return points, curvature
