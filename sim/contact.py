"""Contact between the car's body and the boxes on the floor: the footprint, distances and collisions.

The car's footprint is the rectangle `body_rear` behind to `body_front` ahead of the axle,
`body_width` wide (hal.description.CarParams), turned with the car; a box is an axis-aligned
rectangle (sim.track.Obstacle). Both are convex, so they touch exactly when no edge
direction of either separates them, and apart their distance is the least distance from
a corner of one to an edge of the other.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from hal.description import CarParams
from sim.track import Obstacle


class Point(NamedTuple):
    """A point on the floor, metres."""

    x: float
    y: float


def footprint(params: CarParams, x: float, y: float, heading: float) -> tuple[Point, ...]:
    """The corners of the car's body, counter-clockwise, for the axle's centre at (x, y)."""
    c, s = math.cos(heading), math.sin(heading)
    half = params.body_width / 2
    corners = (
        (params.body_front, -half),
        (params.body_front, half),
        (-params.body_rear, half),
        (-params.body_rear, -half),
    )
    return tuple(Point(x + a * c - b * s, y + a * s + b * c) for a, b in corners)


def box_corners(box: Obstacle) -> tuple[Point, ...]:
    """The corners of a box, counter-clockwise."""
    hx, hy = box.width / 2, box.depth / 2
    return (
        Point(box.x - hx, box.y - hy),
        Point(box.x + hx, box.y - hy),
        Point(box.x + hx, box.y + hy),
        Point(box.x - hx, box.y + hy),
    )


def _separated(a: tuple[Point, ...], b: tuple[Point, ...]) -> bool:
    """Whether an edge normal of either polygon separates them (the separating axis test)."""
    for polygon in (a, b):
        for k, p in enumerate(polygon):
            q = polygon[(k + 1) % len(polygon)]
            nx, ny = q.y - p.y, p.x - q.x
            a_proj = [nx * v.x + ny * v.y for v in a]
            b_proj = [nx * v.x + ny * v.y for v in b]
            if max(a_proj) < min(b_proj) or max(b_proj) < min(a_proj):
                return True
    return False


def _point_segment(p: Point, a: Point, b: Point) -> float:
    dx, dy = b.x - a.x, b.y - a.y
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else min(1.0, max(0.0, ((p.x - a.x) * dx + (p.y - a.y) * dy) / length2))
    return math.hypot(p.x - a.x - t * dx, p.y - a.y - t * dy)


def distance(a: tuple[Point, ...], b: tuple[Point, ...]) -> float:
    """The gap between two convex polygons (m); 0 when they touch or overlap."""
    if not _separated(a, b):
        return 0.0
    gaps: list[float] = []
    for one, other in ((a, b), (b, a)):
        for p in one:
            gaps.extend(_point_segment(p, q, other[(k + 1) % len(other)]) for k, q in enumerate(other))
    return min(gaps)


class ContactJudge:
    """Counts the car's collisions with the boxes and the closest it came to one."""

    def __init__(self, params: CarParams, obstacles: tuple[Obstacle, ...]):
        self.params = params
        self.boxes = [box_corners(box) for box in obstacles]
        self._centres = [(box.x, box.y, math.hypot(box.width, box.depth) / 2) for box in obstacles]
        self._reach = math.hypot(max(params.body_front, params.body_rear), params.body_width / 2)
        self.collisions = 0  # contacts begun (touching, after being apart)
        self.min_distance: float | None = None  # m, the least gap between body and any box so far
        self._touching = False

    def update(self, x: float, y: float, heading: float) -> None:
        """Judge the car at this pose."""
        if not self.boxes:
            return
        if self.min_distance is not None and all(  # every box farther than the closest yet: nothing to judge
            math.hypot(x - bx, y - by) - reach - self._reach > self.min_distance for bx, by, reach in self._centres
        ):
            self._touching = False
            return
        body = footprint(self.params, x, y, heading)
        gap = min(distance(body, box) for box in self.boxes)
        self.min_distance = gap if self.min_distance is None else min(self.min_distance, gap)
        touching = gap <= 0.0
        if touching and not self._touching:
            self.collisions += 1
        self._touching = touching
