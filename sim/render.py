"""A top-down picture of a run: the track, the car's trail coloured by cross-track error."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

from sim.floor import draw_floor
from sim.track import Track

WORST_M = 0.05  # trail colour: green on the line, red at this cross-track error and beyond


def render_run(
    track: Track,
    trail: Sequence[tuple[float, float, float]],
    title: str = "",
    px_per_m: float = 250.0,
    seed: int = 0,
) -> np.ndarray:
    """The picture (BGR uint8): floor and tape, the trail (x, y, cross_track), a caption."""
    floor = draw_floor(track, px_per_m, seed=seed, margin=0.3)
    image = cv2.addWeighted(floor.image, 0.55, np.full_like(floor.image, 255), 0.45, 0)
    points = [floor.to_pixel(x, y) for x, y, _ in trail]
    for (a, b), (_, _, cte) in zip(pairwise(points), trail[1:], strict=False):
        badness = min(1.0, abs(cte) / WORST_M)
        colour = (0, int(200 * (1 - badness)), int(230 * badness))
        cv2.line(image, tuple(round(v) for v in a), tuple(round(v) for v in b), colour, 2, cv2.LINE_AA)
    if points:
        cv2.circle(image, tuple(round(v) for v in points[0]), 6, (200, 120, 0), -1, cv2.LINE_AA)
        cv2.circle(image, tuple(round(v) for v in points[-1]), 6, (0, 0, 0), 2, cv2.LINE_AA)
    caption = title or track.name
    cv2.putText(image, caption, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (30, 30, 30), 1, cv2.LINE_AA)
    legend = f"trail: green on the line, red at {WORST_M * 100:.0f} cm or more"
    cv2.putText(image, legend, (10, image.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    return image


def save_run_png(path: str | Path, image: np.ndarray) -> None:
    """Write a picture from `render_run` as PNG."""
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
