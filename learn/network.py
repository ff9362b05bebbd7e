"""The pilot's network: a small convolutional network from a shrunk camera frame to (curvature, speed, on-road).

Four 2-strided convolutions (12, 24, 32, 48 channels) take the 64 x 48 frame down to
4 x 3, then two dense layers give the three outputs nodes.pilot_model reads. About 45,000
weights (180 kB as float32), so a frame takes well under a millisecond with OpenCV's DNN
module on the car. Written with equinox over JAX; learn.export writes the same layers as
ONNX.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp

from nodes.pilot_model import INPUT_HEIGHT, INPUT_WIDTH


@dataclass(frozen=True)
class ConvShape:
    """One convolution: channels out, kernel size, stride (padding keeps size / stride)."""

    channels: int
    kernel: int
    stride: int = 2

    @property
    def padding(self) -> int:
        """Padding on each side."""
        return self.kernel // 2


CONVS = (ConvShape(12, 5), ConvShape(24, 3), ConvShape(32, 3), ConvShape(48, 3))
HIDDEN = 64
OUTPUTS = 3


def _after(size: int, shape: ConvShape) -> int:
    return (size + 2 * shape.padding - shape.kernel) // shape.stride + 1


def flat_size() -> int:
    """The number of values the last convolution gives per frame."""
    height, width = INPUT_HEIGHT, INPUT_WIDTH
    for shape in CONVS:
        height, width = _after(height, shape), _after(width, shape)
    return CONVS[-1].channels * height * width


class PilotNet(eqx.Module):
    """The network; call it on one frame blob (3 x H x W), vmap it over a batch."""

    convs: list[eqx.nn.Conv2d]
    hidden: eqx.nn.Linear
    out: eqx.nn.Linear

    def __init__(self, key: jax.Array):
        keys = jax.random.split(key, len(CONVS) + 2)
        channels = 3
        convs = []
        for shape, k in zip(CONVS, keys, strict=False):
            convs.append(eqx.nn.Conv2d(channels, shape.channels, shape.kernel, shape.stride, shape.padding, key=k))
            channels = shape.channels
        self.convs = convs
        self.hidden = eqx.nn.Linear(flat_size(), HIDDEN, key=keys[-2])
        self.out = eqx.nn.Linear(HIDDEN, OUTPUTS, key=keys[-1])

    def __call__(self, x: jax.Array) -> jax.Array:
        """Three outputs for one frame blob (3 x H x W)."""
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        x = jax.nn.relu(self.hidden(jnp.reshape(x, (-1,))))
        return self.out(x)


def weights(model: PilotNet) -> int:
    """How many weights the network has."""
    arrays = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))
    return int(sum(a.size for a in arrays))
