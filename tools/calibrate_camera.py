"""`car calibrate camera`: the camera's lens and its pose above the floor, from checkerboard views.

    car calibrate camera (--images DIR | --camera SOURCE) [--board 9x6] [--square 0.02]
                         [--floor-at 0.25] [--views 20] [--out FILE] [--json]

1. Intrinsics: views of a checkerboard held at many angles and distances (`--images`:
   every picture in DIR but `floor.*`; `--camera`: frames taken live while the board moves).
   In each, OpenCV finds the inner corners (`findChessboardCornersSB`, or else
   `findChessboardCorners` refined by `cornerSubPix`); `calibrateCamera` gives the focal lengths, principal point and
   distortion. Views without the board, and views whose reprojection error is over three
   times the median, are named and dropped; fewer than `MIN_VIEWS` left is an error.
2. Pose: one view of the board lying flat on the floor, its long side across the car and its
   nearest row of inner corners `--floor-at` metres ahead of the axle, centred on the car
   (`floor.png` in DIR, or the frame taken when asked). `solvePnP` gives the camera's height,
   position, pitch, yaw and roll, and so the floor homography the line detector uses.
3. The result goes into the car description's `camera` section (`--out`, default the
   user's car file, `~/.config/car/car.yml`; other sections are kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hal.camera import CameraError, OpenCVCamera
from hal.checkerboard import BoardError as CheckerboardError
from hal.checkerboard import Checkerboard
from hal.description import CameraParams, DescriptionError, load_description, user_file, write_section

MIN_VIEWS = 6
OUTLIER_FACTOR = 3.0  # a view whose error is over this times the median is dropped
OUTLIER_FLOOR_PX = 0.5  # ... unless its error is below this anyway
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
STALE_S = 0.5  # after Enter, frames this old are skipped (a camera's buffers hold several)
SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 0.001)


class CalibrationError(Exception):
    """Calibration cannot go on; the message says what was wrong and what to do."""


@dataclass(frozen=True)
class DroppedView:
    """A view left out, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Intrinsics:
    """What the held views gave."""

    matrix: tuple[tuple[float, ...], ...]  # K, 3x3
    distortion: tuple[float, ...]  # k1 k2 p1 p2 k3
    rms_px: float
    view_errors_px: dict[str, float]  # per view used
    dropped: tuple[DroppedView, ...]


@dataclass(frozen=True)
class FloorPose:
    """Where the camera is on the car, from the board on the floor."""

    mount_height: float
    forward: float
    lateral: float
    tilt_deg: float
    yaw_deg: float
    roll_deg: float
    error_px: float


def find_corners(image: np.ndarray, board: Checkerboard) -> np.ndarray | None:
    """The board's inner corners in an image (N x 2, sub-pixel), or None when it is not (all) there."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    pattern = (board.cols, board.rows)
    # the sector-based detector holds up where squares are small and foreshortened (the board on the floor)
    found, corners = cv2.findChessboardCornersSB(grey, pattern, flags=cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY)
    if found:
        located: np.ndarray = corners.reshape(-1, 2)
        return located
    found, corners = cv2.findChessboardCorners(
        grey, pattern, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    )
    if not found:
        return None
    refined: np.ndarray = cv2.cornerSubPix(grey, corners, (5, 5), (-1, -1), SUBPIX_CRITERIA)
    return refined.reshape(-1, 2)


def calibrate_intrinsics(views: list[tuple[str, np.ndarray]], board: Checkerboard) -> Intrinsics:
    """Focal lengths, principal point and distortion from named views of the held board."""
    if not views:
        raise CalibrationError("no views of the held board were given")
    size = (views[0][1].shape[1], views[0][1].shape[0])
    found: dict[str, np.ndarray] = {}
    dropped: list[DroppedView] = []
    for name, image in views:
        if (image.shape[1], image.shape[0]) != size:
            dropped.append(
                DroppedView(name, f"{image.shape[1]}x{image.shape[0]}, not {size[0]}x{size[1]} as the first")
            )
            continue
        corners = find_corners(image, board)
        if corners is None:
            dropped.append(DroppedView(name, f"no {board.cols}x{board.rows} board found (all of it must be in view)"))
        else:
            found[name] = corners
    for _ in range(2):  # calibrate; drop the outliers; calibrate again
        if len(found) < MIN_VIEWS:
            named = "; ".join(f"{d.name}: {d.reason}" for d in dropped) or "none"
            raise CalibrationError(
                f"{len(found)} usable views of the board, {MIN_VIEWS} needed: take more, at different angles "
                f"and distances (dropped: {named})"
            )
        matrix, distortion, errors = _calibrate(found, board, size)
        median = float(np.median(list(errors.values())))
        outliers = [n for n, e in errors.items() if e > max(OUTLIER_FACTOR * median, OUTLIER_FLOOR_PX)]
        if not outliers:
            break
        for name in outliers:
            dropped.append(DroppedView(name, f"reprojection error {errors[name]:.2f} px, over 3x the median"))
            del found[name]
    rms = math.sqrt(float(np.mean([e * e for e in errors.values()])))
    return Intrinsics(
        tuple(tuple(float(v) for v in row) for row in matrix),
        tuple(float(v) for v in distortion.ravel()[:5]),
        rms,
        {n: round(e, 3) for n, e in errors.items()},
        tuple(dropped),
    )


def _calibrate(
    found: dict[str, np.ndarray], board: Checkerboard, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    objects = [board.object_points()] * len(found)
    images = [c.reshape(-1, 1, 2).astype(np.float32) for c in found.values()]
    # k3 stays 0: small lenses' views rarely pin it down, and a free k3 bends the edges wildly
    _, matrix, distortion, rvecs, tvecs = cv2.calibrateCamera(objects, images, size, None, None, flags=cv2.CALIB_FIX_K3)
    errors = {}
    for (name, corners), rvec, tvec in zip(found.items(), rvecs, tvecs, strict=True):
        projected, _ = cv2.projectPoints(board.object_points(), rvec, tvec, matrix, distortion)
        errors[name] = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - corners) ** 2, axis=1))))
    return matrix, distortion, errors


def floor_pose(image: np.ndarray, board: Checkerboard, intrinsics: Intrinsics, floor_at: float) -> FloorPose:
    """The camera's pose from the board lying on the floor, nearest corner row `floor_at` m ahead of the axle."""
    corners = find_corners(image, board)
    if corners is None:
        raise CalibrationError(
            f"the board on the floor was not found: lay it flat, its long side across the car, its nearest "
            f"row of inner corners {floor_at:g} m ahead of the axle, all of it in view"
        )
    grid = corners.reshape(board.rows, board.cols, 2)
    along_row = grid[0, -1] - grid[0, 0]
    if abs(along_row[1]) > abs(along_row[0]):
        raise CalibrationError("the board on the floor lies along the car: turn it, its long side across the car")
    if grid[0, 0, 1] < grid[-1, 0, 1]:  # row 0 the nearest (lowest in the image)
        grid = grid[::-1]
    if grid[0, 0, 0] > grid[0, -1, 0]:  # column 0 the leftmost
        grid = grid[:, ::-1]
    half = (board.cols - 1) / 2 * board.square
    floor = np.array(
        [
            (floor_at + j * board.square, half - i * board.square, 0.0)
            for j in range(board.rows)
            for i in range(board.cols)
        ],
        dtype=np.float32,
    )
    seen = grid.reshape(-1, 1, 2).astype(np.float32)
    matrix, distortion = np.array(intrinsics.matrix), np.array(intrinsics.distortion)
    ok, rvec, tvec = cv2.solvePnP(floor, seen, matrix, distortion, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise CalibrationError("the camera's pose could not be solved from the floor view; take it again")
    rotation, _ = cv2.Rodrigues(rvec)
    centre = (-rotation.T @ tvec).ravel()
    right, _, axis = rotation
    yaw = math.atan2(axis[1], axis[0])
    level_right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    level_down = np.cross(axis, level_right)
    projected, _ = cv2.projectPoints(floor, rvec, tvec, matrix, distortion)
    error = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - seen.reshape(-1, 2)) ** 2, axis=1))))
    return FloorPose(
        mount_height=float(centre[2]),
        forward=float(centre[0]),
        lateral=float(centre[1]),
        tilt_deg=math.degrees(math.asin(max(-1.0, min(1.0, -axis[2])))),
        yaw_deg=math.degrees(yaw),
        roll_deg=math.degrees(math.atan2(float(right @ level_down), float(right @ level_right))),
        error_px=error,
    )


def camera_params(base: CameraParams, size: tuple[int, int], intrinsics: Intrinsics, pose: FloorPose) -> CameraParams:
    """`base` (noise and frame rate kept) with what calibration measured."""
    (fx, _, cx), (_, fy, cy), _ = intrinsics.matrix
    k1, k2, p1, p2, k3 = intrinsics.distortion
    return dataclasses.replace(
        base,
        width=size[0],
        height=size[1],
        fx=round(fx, 3),
        fy=round(fy, 3),
        cx=round(cx, 3),
        cy=round(cy, 3),
        hfov_deg=round(math.degrees(2 * math.atan(size[0] / 2 / fx)), 3),
        k1=round(k1, 6),
        k2=round(k2, 6),
        p1=round(p1, 6),
        p2=round(p2, 6),
        k3=round(k3, 6),
        mount_height=round(pose.mount_height, 5),
        forward=round(pose.forward, 5),
        lateral=round(pose.lateral, 5),
        tilt_deg=round(pose.tilt_deg, 3),
        yaw_deg=round(pose.yaw_deg, 3),
        roll_deg=round(pose.roll_deg, 3),
    )


def views_from_folder(folder: Path) -> tuple[list[tuple[str, np.ndarray]], np.ndarray]:
    """The held views and the floor view (`floor.*`) in a folder of pictures."""
    if not folder.is_dir():
        raise CalibrationError(f"--images {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    floors = [p for p in files if p.stem == "floor"]
    if not floors:
        raise CalibrationError(f"--images {folder}: no floor.png (the board lying on the floor in front of the car)")
    held = []
    for path in files:
        image = cv2.imread(str(path))
        if image is None:
            raise CalibrationError(f"{path}: not an image OpenCV can read")
        if path.stem != "floor":
            held.append((path.name, image))
    floor = cv2.imread(str(floors[0]))
    if floor is None:
        raise CalibrationError(f"{floors[0]}: not an image OpenCV can read")
    return held, floor


def views_from_camera(
    source: str, board: Checkerboard, count: int, size: tuple[int, int]
) -> tuple[list[tuple[str, np.ndarray]], np.ndarray]:
    """Held views taken live (a new one whenever the board has moved enough), then the floor view after Enter."""
    camera = OpenCVCamera(int(source) if source.isdigit() else source, *size)
    try:
        held: list[tuple[str, np.ndarray]] = []
        last: np.ndarray | None = None
        print(f"car calibrate camera: hold the board in view, at many angles and distances ({count} views)")
        while len(held) < count:
            frame, _ = camera.read()
            corners = find_corners(frame, board)
            if corners is None:
                continue
            if last is not None and float(np.mean(np.linalg.norm(corners - last, axis=1))) < 0.05 * size[0]:
                continue  # too like the last view: move the board
            last = corners
            held.append((f"view{len(held) + 1:02d}", frame.copy()))
            print(f"car calibrate camera: view {len(held)} of {count}", flush=True)
        print("car calibrate camera: now lay the board on the floor in front of the car and press Enter", flush=True)
        sys.stdin.readline()
        pressed = time.monotonic()
        while time.monotonic() - pressed < STALE_S:  # frames the camera took before Enter: the board still held
            camera.read()
        for _ in range(300):
            frame, _ = camera.read()
            if find_corners(frame, board) is not None:
                return held, frame
        raise CalibrationError("the board on the floor was not seen in 300 frames: is it all in view?")
    finally:
        camera.close()


def main(argv: list[str] | None = None) -> None:
    """`car calibrate camera`."""
    parser = argparse.ArgumentParser(prog="car calibrate camera", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", metavar="DIR", help="pictures of the held board, and floor.png")
    source.add_argument("--camera", metavar="SOURCE", help="take them live: a device index, /dev/videoN, a video file")
    parser.add_argument("--board", default="9x6", help="inner corners, COLSxROWS (default 9x6)")
    parser.add_argument("--square", type=float, default=0.02, help="a square's side in m (default 0.02)")
    parser.add_argument("--floor-at", type=float, default=0.25, help="m from the axle to the board's nearest corners")
    parser.add_argument("--views", type=int, default=20, help="held views to take live (default 20)")
    parser.add_argument("--out", metavar="FILE", help=f"the car description to write (default {user_file()})")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else user_file()
    try:
        board = Checkerboard.parse(args.board, args.square)
        base = load_description(out if out.is_file() else None).camera
        if args.images:
            held, floor = views_from_folder(Path(args.images))
        else:
            held, floor = views_from_camera(args.camera, board, args.views, (base.width, base.height))
        intrinsics = calibrate_intrinsics(held, board)
        pose = floor_pose(floor, board, intrinsics, args.floor_at)
        params = camera_params(base, (floor.shape[1], floor.shape[0]), intrinsics, pose)
        write_section(out, "camera", params, "car calibrate camera")
    except (CalibrationError, CheckerboardError, CameraError, DescriptionError) as exc:
        print(f"car calibrate camera: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if args.json:
        result = {"intrinsics": dataclasses.asdict(intrinsics), "pose": dataclasses.asdict(pose), "out": str(out)}
        print(json.dumps(result))
        return
    print(
        f"car calibrate camera: {len(intrinsics.view_errors_px)} views used, reprojection RMS {intrinsics.rms_px:.3f} px"
    )
    for dropped in intrinsics.dropped:
        print(f"car calibrate camera:   dropped {dropped.name}: {dropped.reason}")
    print(
        f"car calibrate camera: fx {params.fx} fy {params.fy} px, centre ({params.cx}, {params.cy}), "
        f"distortion k1 {params.k1} k2 {params.k2}"
    )
    print(
        f"car calibrate camera: {pose.mount_height * 1000:.1f} mm above the floor, {pose.forward * 1000:.1f} mm ahead "
        f"of the axle, {pose.lateral * 1000:+.1f} mm left; pitched down {pose.tilt_deg:.2f} deg, yaw "
        f"{pose.yaw_deg:+.2f} deg, roll {pose.roll_deg:+.2f} deg (floor view error {pose.error_px:.2f} px)"
    )
    print(f"car calibrate camera: wrote the camera section of {out}")
