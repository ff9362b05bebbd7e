"""The camera model: where floor points appear in the image, for a camera mounted on the car.

A pinhole (`intrinsics`) behind OpenCV's lens distortion (`distortion`): the homography
from the floor to the image holds for *undistorted* pixels; `undistort_pixels` and
`distort_pixels` convert between what the camera gives and that ideal image. Without
distortion they return their input.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from hal.description import CameraParams


def intrinsics(params: CameraParams) -> np.ndarray:
    """The 3x3 camera matrix K."""
    fx = params.focal_px
    fy = params.fy or fx
    cx = params.cx or params.width / 2
    cy = params.cy or params.height / 2
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def distortion(params: CameraParams) -> np.ndarray:
    """OpenCV's distortion coefficients (k1, k2, p1, p2, k3)."""
    return np.array(params.distortion, dtype=np.float64)


def is_distorted(params: CameraParams) -> bool:
    """Whether the lens model bends lines at all."""
    return any(params.distortion)


def camera_axes(params: CameraParams, x: float, y: float, heading: float) -> tuple[np.ndarray, np.ndarray]:
    """The camera's rotation (rows: image right, image down, optical axis, in floor coordinates) and its position."""
    tilt = math.radians(params.tilt_deg)
    look = heading + math.radians(params.yaw_deg)
    c, s = math.cos(look), math.sin(look)
    ct, st = math.cos(tilt), math.sin(tilt)
    right = np.array((s, -c, 0.0))
    axis = np.array((ct * c, ct * s, -st))
    down = np.cross(axis, right)
    roll = math.radians(params.roll_deg)
    right, down = math.cos(roll) * right + math.sin(roll) * down, -math.sin(roll) * right + math.cos(roll) * down
    ch, sh = math.cos(heading), math.sin(heading)
    position = (
        x + params.forward * ch - params.lateral * sh,
        y + params.forward * sh + params.lateral * ch,
        params.mount_height,
    )
    return np.array([right, down, axis]), np.array(position)


def floor_to_image(params: CameraParams, x: float, y: float, heading: float) -> np.ndarray:
    """3x3 homography taking floor points (metres, homogeneous) to undistorted image pixels for a car pose."""
    rotation, position = camera_axes(params, x, y, heading)
    extrinsic = np.column_stack([rotation[:, 0], rotation[:, 1], -rotation @ position])
    homography: np.ndarray = intrinsics(params) @ extrinsic
    return homography


def undistort_pixels(params: CameraParams, pixels: np.ndarray) -> np.ndarray:
    """Pixels of the camera's image (N x 2) where the ideal pinhole would see the same rays."""
    if not is_distorted(params):
        return pixels
    k = intrinsics(params)
    points = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
    ideal: np.ndarray = cv2.undistortPoints(points, k, distortion(params), P=k).reshape(-1, 2)
    return ideal


def distort_pixels(params: CameraParams, pixels: np.ndarray) -> np.ndarray:
    """Where pinhole pixels (N x 2) appear in the camera's image."""
    if not is_distorted(params):
        return pixels
    k = intrinsics(params)
    points = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    rays = np.column_stack(
        [(points[:, 0] - k[0, 2]) / k[0, 0], (points[:, 1] - k[1, 2]) / k[1, 1], np.ones(len(points))]
    )
    seen, _ = cv2.projectPoints(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), k, distortion(params))
    image: np.ndarray = seen.reshape(-1, 2)
    return image


def project(params: CameraParams, pose: tuple[float, float, float], point: tuple[float, float]) -> tuple[float, float]:
    """Image pixel (column, row) where a floor point appears for a car pose."""
    u, v, w = floor_to_image(params, *pose) @ np.array([point[0], point[1], 1.0])
    seen = distort_pixels(params, np.array([[u / w, v / w]]))
    return float(seen[0, 0]), float(seen[0, 1])
