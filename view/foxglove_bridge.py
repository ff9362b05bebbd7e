"""`car view --foxglove`: a running graph's outputs live in Foxglove or Lichtblick, over the Foxglove WebSocket
protocol (the `foxglove-sdk` package's server).

One channel per `node/output`, made on its first message, as `car record` makes them
(car.recording.channels): camera frames as `foxglove.RawImage` (the SDK's protobuf
encoding: the bytes as they are, no base64), JSON values as JSON with a JSON schema
(objects as they are, other values as `{"_value": ...}`, the metadata as `_metadata`).
Other values (bytes, Arrow arrays, other arrays) are counted and left out. The SDK's
server keeps a bounded queue per client, so a slow client loses messages, never the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from car.plan.running import RunningGraph
from car.plan.runs import RunError
from car.recording import channels as mcap_channels
from view.listen import Listener


class FoxgloveBridge:
    """A Foxglove WebSocket server fed by subscribers to every output of `graph`."""

    def __init__(self, graph: RunningGraph, host: str, port: int):
        try:
            import foxglove
        except ImportError:
            raise RunError("--foxglove needs the `foxglove-sdk` package: pip install 'smartcar[foxglove]'") from None
        self._foxglove = foxglove
        self.graph = graph
        self._context = foxglove.Context()
        try:
            self._server = foxglove.start_server(name=f"car {graph.name}", host=host, port=port, context=self._context)
        except RuntimeError as exc:  # FoxgloveError: the port is taken, the address not here
            raise RunError(f"--foxglove-port {port}: cannot serve on {host}:{port} ({exc}); pick another") from None
        self.port: int = self._server.port
        self._channels: dict[str, Any] = {}
        self.sent = 0
        self.left_out = 0
        self.listener = Listener(graph, self._forward, "foxglove")

    def start(self) -> None:
        """Subscribe to every output, a receiving thread per part."""
        self.listener.start()

    def stop(self) -> None:
        """End the subscriptions and the server."""
        self.listener.stop()
        self._server.stop()

    def _forward(self, topic: str, value: Any, metadata: dict[str, Any], stamp_ns: int) -> None:
        """One message onto its channel (made on the first)."""
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._channels[topic] = self._channel(topic, value)
        if channel is None:
            self.left_out += 1
            return
        if mcap_channels.is_image(value):
            messages = self._foxglove.messages
            height, width = value.shape[:2]
            image = np.ascontiguousarray(value)
            channel.log(
                messages.RawImage(
                    timestamp=messages.Timestamp(stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000),
                    frame_id=topic.partition("/")[0],
                    width=width,
                    height=height,
                    encoding=mcap_channels.image_encoding(value, metadata),
                    step=image.strides[0],
                    data=image.tobytes(),
                ),
                log_time=stamp_ns,
            )
        elif mcap_channels.kind_of(value) is mcap_channels.JSON_VALUE:
            wrapped = value if isinstance(value, dict) else {"_value": value}
            channel.log({**wrapped, "_metadata": metadata}, log_time=stamp_ns)
        else:  # the output changed kind
            self.left_out += 1
            return
        self.sent += 1

    def _channel(self, topic: str, value: Any) -> Any:
        """The channel for `topic`, whose first message is `value` (None: a kind Foxglove is not sent)."""
        if mcap_channels.is_image(value):
            from foxglove.channels import RawImageChannel

            return RawImageChannel(topic, context=self._context)
        if mcap_channels.kind_of(value) is mcap_channels.JSON_VALUE:
            schema = mcap_channels.JSON_SCHEMA
            return self._foxglove.Channel(topic, schema=schema, message_encoding="json", context=self._context)
        return None
