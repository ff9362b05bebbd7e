"""`dora.testing.MockNode`: test a dora node's logic without a running dataflow.

node = MockNode([("tick", pa.array([0]))])
for event in node:
    if event["type"] == "INPUT":
        node.send_output("result", pa.array([42]))
assert node.outputs["result"][0].to_pylist() == [42]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["MockNode"]


class MockNode:
    """A stand-in for `dora.Node`: the given inputs as INPUT events, then STOP; what is sent is kept in `outputs`."""

    def __init__(self, inputs: list[tuple[str, Any]], metadata: dict[str, Any] | None = None):
        events: list[dict[str, Any]] = [
            {"kind": "dora", "type": "INPUT", "id": input_id, "value": data, "metadata": dict(metadata or {})}
            for input_id, data in inputs
        ]
        events.append({"kind": "dora", "type": "STOP", "id": "MANUAL"})
        self._events = iter(events)
        self.outputs: dict[str, list[Any]] = {}
        self.metadata: dict[str, list[dict[str, Any] | None]] = {}  # the metadata of each send, by output

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._events)

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event, or None once they are all handed out (`timeout` is unused)."""
        return next(self._events, None)

    async def recv_async(self, timeout: float | None = None) -> dict[str, Any] | None:
        """`next`, for asyncio nodes."""
        return self.next(timeout)

    def send_output(self, output_id: str, data: Any, metadata: dict[str, Any] | None = None) -> None:
        """Keep what the node sends, for the test to look at."""
        self.outputs.setdefault(output_id, []).append(data)
        self.metadata.setdefault(output_id, []).append(metadata)
