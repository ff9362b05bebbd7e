"""The learned pilot's model: what goes in, what comes out, and running it with OpenCV's DNN module on the car.

The contract between `car train` (which makes the model, learn.train) and the learned pilot
(nodes.learned_pilot, which runs it) is here, once:

- In: one camera frame, shrunk to `INPUT_WIDTH` x `INPUT_HEIGHT` by pixel-area averaging
  (`shrink`), as a 1 x 3 x H x W float blob of (BGR value - 127.5) / 255 (`blob`).
- Out: three numbers, `Decision.from_outputs`: the path's curvature (1/m, left positive,
  over `CURVATURE_SCALE`), the speed to drive (m/s, over `SPEED_SCALE`), and how sure the
  model is that the car is on its road (a logit: positive means on it).

A model file is an ONNX graph with one input named `frame` of that shape and one output of
shape 1 x 3; `load_model` checks both by running it once, so a wrong file is refused with
one clear error before anything starts (`car launch --model`). The car needs nothing but
OpenCV for it (`cv2.dnn`), as the rest of the car side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MODEL_ENV = "CAR_MODEL"  # the model file (absolute), as `car launch --model` gives it to the learned pilot
INPUT_WIDTH = 64
INPUT_HEIGHT = 48
INPUT_NAME = "frame"
CURVATURE_SCALE = 5.0  # 1/m: the model's first output times this is the curvature
SPEED_SCALE = 1.0  # m/s: its second output times this is the speed


class ModelError(ValueError):
    """A model file that cannot drive: the message names the file and what is wrong."""


@dataclass(frozen=True)
class Decision:
    """What the model makes of one frame."""

    curvature: float  # 1/m, left positive
    speed: float  # m/s
    on_road: float  # the probability that the car is on its road, 0..1

    @classmethod
    def from_outputs(cls, outputs: np.ndarray) -> Decision:
        """Decode the model's three outputs."""
        curvature, speed, logit = (float(v) for v in np.asarray(outputs, dtype=np.float64).reshape(-1)[:3])
        return cls(curvature * CURVATURE_SCALE, speed * SPEED_SCALE, 1 / (1 + math.exp(-max(-50.0, min(50.0, logit)))))


def shrink(frame: np.ndarray) -> np.ndarray:
    """A camera frame (H x W x 3 BGR uint8) at the model's size, averaged over pixel areas (uint8)."""
    if frame.shape[:2] == (INPUT_HEIGHT, INPUT_WIDTH):
        return frame
    return cv2.resize(frame, (INPUT_WIDTH, INPUT_HEIGHT), interpolation=cv2.INTER_AREA)


def blob(small: np.ndarray) -> np.ndarray:
    """Shrunk frames (N x H x W x 3, or one H x W x 3) as the model's input (N x 3 x H x W float32)."""
    batch = small[None] if small.ndim == 3 else small
    return ((batch.astype(np.float32) - 127.5) / 255.0).transpose(0, 3, 1, 2).copy()


class PilotModel:
    """An ONNX model run by OpenCV's DNN module on one core."""

    def __init__(self, net: cv2.dnn.Net, path: Path):
        self._net = net
        self.path = path

    def decide(self, frame: np.ndarray) -> Decision:
        """The model's decision for one camera frame."""
        self._net.setInput(blob(shrink(frame)), INPUT_NAME)
        return Decision.from_outputs(self._net.forward())


def load_model(path: str | Path) -> PilotModel:
    """Load and check a model file; ModelError (naming the file) when it is missing, not ONNX, or of the wrong shape."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file (make one with `car train`, or use models/lane.onnx)")
    try:
        net = cv2.dnn.readNetFromONNX(str(path))
    except cv2.error:
        raise ModelError(f"{path}: not an ONNX model OpenCV can read (make one with `car train`)") from None
    if net.empty():
        raise ModelError(f"{path}: the ONNX file holds no network")
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    model = PilotModel(net, path)
    probe = np.zeros((INPUT_HEIGHT, INPUT_WIDTH, 3), np.uint8)
    try:
        net.setInput(blob(probe), INPUT_NAME)
        out = net.forward()
    except cv2.error as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "it failed"
        raise ModelError(
            f"{path}: the model does not take a 1x3x{INPUT_HEIGHT}x{INPUT_WIDTH} `{INPUT_NAME}` frame ({first}); "
            "train it with `car train`"
        ) from None
    if out.size != 3:
        raise ModelError(f"{path}: the model gives {out.size} numbers per frame, not 3 (curvature, speed, on-road)")
    return model
