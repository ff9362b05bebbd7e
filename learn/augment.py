"""Augmentation: each training batch seen a little differently, so the network learns the road and not the light.

On the shrunk frames (uint8, N x H x W x 3), drawn per frame from a seeded generator:
brightness and contrast, a colour tint, a shadow across part of the frame, and a small
shift and rotation (at most `SHIFT_PX` pixels and `ROTATE_DEG` degrees: small enough
that the command for the frame still holds).
"""

from __future__ import annotations

import cv2
import numpy as np

SHIFT_PX = 1.5
ROTATE_DEG = 2.0
SHADOW_SHARE = 0.3  # of frames get a shadow


def augment(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A changed copy of a batch of shrunk frames."""
    count, height, width, _ = frames.shape
    out = np.empty(frames.shape, np.float32)
    offsets = rng.uniform(-30, 30, (count,))
    scales = rng.uniform(0.65, 1.35, (count, 1)) * rng.normal(1.0, 0.06, (count, 3))  # contrast, and a tint
    for k in range(count):
        angle = float(rng.uniform(-ROTATE_DEG, ROTATE_DEG))
        matrix: np.ndarray = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
        matrix[:, 2] = matrix[:, 2] + rng.uniform(-SHIFT_PX, SHIFT_PX, 2)
        moved = cv2.warpAffine(frames[k], matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
        out[k] = np.asarray(moved, np.float32) * scales[k] + offsets[k]
        if rng.uniform() < SHADOW_SHARE:
            out[k] *= _shadow(height, width, rng)[:, :, None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _shadow(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A soft dark band across the frame: 1 where lit."""
    rows, columns = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, np.pi)
    across = (columns - rng.uniform(0, width)) * np.cos(angle) + (rows - rng.uniform(0, height)) * np.sin(angle)
    band = np.abs(across) < rng.uniform(4, 16)
    light = np.where(band, rng.uniform(0.45, 0.8), 1.0).astype(np.float32)
    blurred: np.ndarray = cv2.GaussianBlur(light, (0, 0), 1.5)
    return blurred
