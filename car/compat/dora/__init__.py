"""`from dora import Node` for Python nodes written for dora, run unchanged by car.

The daemon puts `car/compat` on the PYTHONPATH of the nodes it starts, so this module
stands in for dora's only there. dora hands values to Python as pyarrow arrays; this
shim gives them as pyarrow arrays too, and accepts pyarrow arrays, bytes and numpy
arrays on send. It needs pyarrow (`pip install smartcar[dora]`), as dora's nodes do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from car.node.api import Event
from car.node.api import Node as _CarNode

__all__ = ["Event", "Node"]


def _to_arrow(value: Any) -> Any:
    if value is None:
        return pa.array([], type=pa.null())
    if isinstance(value, np.ndarray):
        return pa.array(value.ravel())
    if isinstance(value, bytes):
        return pa.array(np.frombuffer(value, dtype=np.uint8))
    if isinstance(value, list):
        return pa.array(value)
    return pa.array([value])


def _from_arrow(data: Any) -> Any:
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks()
    if isinstance(data, pa.Array):
        if pa.types.is_integer(data.type) or pa.types.is_floating(data.type) or pa.types.is_boolean(data.type):
            return data.to_numpy(zero_copy_only=False)
        return data.to_pylist()
    return data


class Node(_CarNode):
    """dora's Python Node API on top of car's."""

    def _hand_out(self, event: Event) -> Event:
        """Every event passes here on its way out: its value becomes a pyarrow array, like dora's."""
        if event.type == "INPUT":
            event.value = _to_arrow(event.value)
        return super()._hand_out(event)

    def send_output(self, output_id: str, data: Any = None, metadata: dict[str, Any] | None = None) -> None:
        """Send a pyarrow array (or bytes, numpy array, JSON-able value)."""
        super().send_output(output_id, _from_arrow(data), metadata)
