"""The camera model: where floor points appear in the image, for a camera mounted on the car."""

from __future__ import annotations

import math

import numpy as np

from hal.description import CameraParams


def camera_axes(params: CameraParams, x: float, y: float, heading: float) -> tuple[np.ndarray, np.ndarray]:
    """The camera's rotation (rows: image right, image down, optical axis) and its position."""
    tilt = math.radians(params.tilt_deg)
    c, s = math.cos(heading), math.sin(heading)
    ct, st = math.cos(tilt), math.sin(tilt)
    right = (s, -c, 0.0)
    axis = (ct * c, ct * s, -st)
    down = (-st * c, -st * s, -ct)  # axis x right
    position = (x + params.forward * c, y + params.forward * s, params.mount_height)
    return np.array([right, down, axis]), np.array(position)


def floor_to_image(params: CameraParams, x: float, y: float, heading: float) -> np.ndarray:
    """3x3 homography taking floor points (metres, homogeneous) to image pixels for a car pose."""
    rotation, position = camera_axes(params, x, y, heading)
    f = params.focal_px
    intrinsics = np.array([[f, 0, params.width / 2], [0, f, params.height / 2], [0, 0, 1]])
    extrinsic = np.column_stack([rotation[:, 0], rotation[:, 1], -rotation @ position])
    homography: np.ndarray = intrinsics @ extrinsic
    return homography


def project(params: CameraParams, pose: tuple[float, float, float], point: tuple[float, float]) -> tuple[float, float]:
    """Image pixel (column, row) where a floor point appears for a car pose."""
    u, v, w = floor_to_image(params, *pose) @ np.array([point[0], point[1], 1.0])
    return u / w, v / w
