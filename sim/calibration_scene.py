"""A calibration scene: what a camera sees of a checkerboard held before it and lying on the floor.

    car calibrate scene [--car FILE] [--out DIR] [--views 20] [--board 9x6] [--square 0.02]
                        [--floor-at 0.25] [--seed 0]

writes DIR/view01.png ... (the board held at random angles and distances, all of it in
view) and DIR/floor.png (the board lying flat, its long side across the car, its nearest
inner corners `floor-at` metres ahead of the axle, centred), rendered through the camera
of the car description FILE (lens distortion included): the pictures `car calibrate
camera --images DIR` reads. With a description whose camera differs from the shipped
one, it tests that calibration finds the camera the pictures were taken with.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from hal.camera_model import floor_to_image, intrinsics
from hal.checkerboard import Checkerboard
from hal.description import CameraParams, DescriptionError, load_description
from sim.camera import lens_maps

PX_PER_M = 2400.0  # the board's texture
BACKGROUND = 120  # grey
NOISE_STD = 2.0


def board_texture(board: Checkerboard) -> tuple[np.ndarray, np.ndarray]:
    """The board's picture (the squares, a white margin of one square) and the 3x3 map from its pixels
    to board metres, origin at the first inner corner."""
    side = round(board.square * PX_PER_M)
    squares_x, squares_y = board.cols + 1, board.rows + 1
    image = np.full(((squares_y + 2) * side, (squares_x + 2) * side), 255, np.uint8)
    for j in range(squares_y):
        for i in range(squares_x):
            if (i + j) % 2 == 0:
                image[(j + 1) * side : (j + 2) * side, (i + 1) * side : (i + 2) * side] = 20
    origin = 2 * side  # margin plus the first square: the first inner corner
    to_board = np.array([[1 / PX_PER_M, 0, -origin / PX_PER_M], [0, 1 / PX_PER_M, -origin / PX_PER_M], [0, 0, 1]])
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), to_board


class Scene:
    """Renders the board through one camera."""

    def __init__(self, camera: CameraParams, board: Checkerboard, rng: np.random.Generator):
        self.camera = camera
        self.board = board
        self.rng = rng
        self._texture, self._to_board = board_texture(board)
        self._lens = lens_maps(camera) if any(camera.distortion) else None

    def render(self, board_to_image: np.ndarray) -> np.ndarray:
        """The frame for a homography from board metres to pinhole pixels."""
        size = (self.camera.width, self.camera.height)
        frame = cv2.warpPerspective(
            self._texture,
            board_to_image @ self._to_board,
            size,
            flags=cv2.INTER_AREA,
            borderValue=(BACKGROUND,) * 3,
        )
        if self._lens is not None:
            frame = cv2.remap(frame, *self._lens, cv2.INTER_LINEAR, borderValue=(BACKGROUND,) * 3)
        noise = self.rng.normal(0, NOISE_STD, frame.shape)
        seen: np.ndarray = np.clip(cv2.GaussianBlur(frame, (3, 3), 0.5) + noise, 0, 255).astype(np.uint8)
        return seen

    def held_view(self) -> np.ndarray:
        """The board at a random angle and distance, all of it in view."""
        k = intrinsics(self.camera)
        centre = self.board.outline().mean(axis=0)
        for _ in range(1000):
            angles = self.rng.uniform([-35, -35, -20], [35, 35, 20])
            rotation, _ = cv2.Rodrigues(np.radians(angles))
            distance = self.rng.uniform(0.3, 0.6)
            offset = self.rng.uniform(-0.25, 0.25, 2) * distance
            # the board's centre at (offset, distance) in the camera's frame
            position = np.array([offset[0], offset[1], distance]) - rotation @ np.array([*centre, 0.0])
            homography = k @ np.column_stack([rotation[:, 0], rotation[:, 1], position])
            if self._inside(homography):
                return self.render(homography)
        raise RuntimeError("no pose of the board fits the view")  # only for a camera that sees almost nothing

    def floor_view(self, floor_at: float) -> np.ndarray:
        """The board on the floor: long side across the car, nearest inner corners `floor_at` m ahead, centred."""
        half = (self.board.cols - 1) / 2 * self.board.square
        # board (across to the car's right, ahead) -> floor (x ahead, y left)
        to_floor = np.array([[0.0, 1.0, floor_at], [-1.0, 0.0, half], [0.0, 0.0, 1.0]])
        homography = floor_to_image(self.camera, 0.0, 0.0, 0.0) @ to_floor
        if not self._inside(homography):
            raise ValueError(f"the board on the floor {floor_at:g} m ahead is not all in view: place it further")
        return self.render(homography)

    def _inside(self, homography: np.ndarray, margin: float = 8.0) -> bool:
        corners = cv2.perspectiveTransform(self.board.outline().reshape(-1, 1, 2), homography).reshape(-1, 2)
        in_front = bool(np.all((homography @ np.column_stack([self.board.outline(), np.ones(4)]).T)[2] > 0))
        return (
            in_front
            and bool(np.all(corners[:, 0] > margin))
            and bool(np.all(corners[:, 0] < self.camera.width - margin))
            and bool(np.all(corners[:, 1] > margin))
            and bool(np.all(corners[:, 1] < self.camera.height - margin))
        )


def write_scene(
    camera: CameraParams, board: Checkerboard, folder: Path, views: int, floor_at: float, seed: int
) -> None:
    """view01.png ... and floor.png in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    scene = Scene(camera, board, np.random.default_rng(seed))
    for n in range(1, views + 1):
        cv2.imwrite(str(folder / f"view{n:02d}.png"), scene.held_view())
    cv2.imwrite(str(folder / "floor.png"), scene.floor_view(floor_at))


def main(argv: list[str] | None = None) -> None:
    """`car calibrate scene`."""
    parser = argparse.ArgumentParser(prog="car calibrate scene", description=__doc__.split("\n\n")[0])
    parser.add_argument("--car", metavar="FILE", help="the car description whose camera takes the pictures")
    parser.add_argument("--out", default="calibration-views", help="the folder (default calibration-views)")
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--board", default="9x6", help="inner corners, COLSxROWS")
    parser.add_argument("--square", type=float, default=0.02)
    parser.add_argument("--floor-at", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        camera = load_description(args.car).camera
        board = Checkerboard.parse(args.board, args.square)
        write_scene(camera, board, Path(args.out), args.views, args.floor_at, args.seed)
    except (ValueError, DescriptionError, OSError) as exc:
        print(f"car calibrate scene: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"car calibrate scene: {args.views} held views and floor.png in {args.out}")


if __name__ == "__main__":
    main()
