"""The printed checkerboard camera calibration uses, and the simulator draws."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class BoardError(ValueError):
    """A board that cannot be: the message says what to give."""


@dataclass(frozen=True)
class Checkerboard:
    """A printed checkerboard: inner corners across (`cols`) and down (`rows`), square side in metres."""

    cols: int = 9
    rows: int = 6
    square: float = 0.02

    @classmethod
    def parse(cls, size: str, square: float) -> Checkerboard:
        """From `9x6` and the square's side; BoardError for nonsense."""
        try:
            cols, rows = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise BoardError(f"--board {size}: give inner corners as COLSxROWS, e.g. 9x6") from None
        if cols < 3 or rows < 3 or cols == rows or square <= 0:
            raise BoardError(
                f"--board {size} --square {square}: at least 3x3 inner corners, not square (so its "
                "orientation shows), and a square side > 0 m"
            )
        return cls(cols, rows, square)

    def object_points(self) -> np.ndarray:
        """The inner corners on the board (N x 3, metres, z = 0), in OpenCV's order: rows of `cols`."""
        grid = np.mgrid[0 : self.cols, 0 : self.rows].T.reshape(-1, 2) * self.square
        return np.column_stack([grid, np.zeros(len(grid))]).astype(np.float32)

    def outline(self) -> np.ndarray:
        """The printed sheet's corners (4 x 2, board metres): the squares and a white margin of one square."""
        lo, hi_x, hi_y = -2 * self.square, (self.cols + 1) * self.square, (self.rows + 1) * self.square
        return np.array([[lo, lo], [hi_x, lo], [hi_x, hi_y], [lo, hi_y]])
