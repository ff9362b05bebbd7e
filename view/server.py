"""The live view's web server: the page, its files and one WebSocket per page (`websockets`, asyncio).

`GET /` is the page (view/static: HTML, JavaScript and uPlot, shipped: no network and no
build step). On `/ws` a page gets, every 100 ms, a JSON `state` message (new plot
samples, new trail points, each node's rates, drops and latency, the run's status, the
teleop state) and, each time it asks (`{"type": "frame", "after": N}`), one binary
message with the newest frame as JPEG (a 4-byte length, a JSON header with what to draw
over it, then the JPEG bytes). A page first gets the track the simulator drives on (`track`:
its centre line and tape width), when the run has one. A page asks for the next frame only when it has drawn the
last (and at most MAX_FPS a second), so a slow page gets fewer frames and nothing queues;
each frame is encoded once however many pages ask. A page may also send `{"type": "act", "action"}` (a key),
`{"type": "drive", "speed", "turn"}` (a gamepad),
`{"type": "manual", "on": bool}` and `{"type": "stop"}`.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import time
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import cv2
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from car.commands import top
from car.plan.running import RunningGraph
from car.plan.runs import RunError
from car.transport import control
from view.feeds import Feeds, Frame
from view.teleop import Teleop

STATIC = Path(__file__).with_name("static")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
STATE_PERIOD_S = 0.1
NODES_PERIOD_S = 1.0
JPEG_QUALITY = 80
FRAME_POLL_S = 0.01
MAX_FPS = 15  # frames a page gets each second at most: enough to watch, half the camera's encoding work
LINE_WAIT_S = 0.03  # how long a frame waits for its detection before it is drawn with the newest one


@dataclass(frozen=True)
class TrackDrawing:
    """The simulator's track as the page draws it under the trail: the line the car should drive (m: a tape track's
    tape), its width, the boxes standing on the floor ([x, y, width, depth], m), and a lane track's road: its solid
    edge lines and its dashed centre line (empty for tape)."""

    name: str
    points: list[list[float]]
    width: float
    boxes: list[list[float]]
    edges: list[list[list[float]]] = field(default_factory=list)
    centre: list[list[float]] = field(default_factory=list)


@dataclass
class Encoded:
    """The newest frame as the pages get it, encoded once."""

    number: int = 0
    message: bytes = b""


@dataclass
class View:
    """What every page shares: the feeds, the teleop, the node table and the encoded frame."""

    graph: RunningGraph
    feeds: Feeds
    teleop: Teleop
    project: Any  # floor (x, y) -> pixel (u, v), for drawing the detected line; None: not drawn
    track: TrackDrawing | None = None  # None: a real car (no track known), only the trail is drawn
    nodes: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""
    pages: int = 0
    frames_sent: int = 0
    encoded: Encoded = field(default_factory=Encoded)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def watch_nodes(self) -> None:
        """Refresh the node table every second (asking the nodes to measure their latency meanwhile)."""
        while not self.finished.is_set():
            try:
                snapshot = await asyncio.to_thread(top.watched, self.graph)
            except RunError as exc:  # the run ended, or is busy: the page says so
                self.status = f"the run is not answering ({exc})"
                if self.feeds.ended:
                    self.finished.set()
                await asyncio.sleep(NODES_PERIOD_S)
                continue
            self.nodes = [{"machine": machine, **asdict(row)} for machine, row in snapshot.nodes]
            self.status = "  ".join(f"{row.id}: {row.status}" for _, row in snapshot.nodes if row.status)
            await asyncio.sleep(NODES_PERIOD_S)

    async def frame_after(self, seen: int, not_before: float) -> bytes | None:
        """The newest frame as a binary message, once there is one newer than `seen` and the clock (monotonic) has
        passed `not_before` (None: the run ended)."""
        await asyncio.sleep(max(0.0, not_before - time.monotonic()))
        while not self.finished.is_set():
            frame = self.feeds.frame
            if frame is not None and frame.number > seen:
                if self.encoded.number != frame.number:
                    line = await self._line_of(frame)
                    message = await asyncio.to_thread(self._encode, frame, line)
                    self.encoded = Encoded(frame.number, message)
                return self.encoded.message
            await asyncio.sleep(FRAME_POLL_S)
        return None

    async def _line_of(self, frame: Frame) -> dict[str, Any] | None:
        """The frame's own detection, waiting a little for it (LINE_WAIT_S); else the newest one."""
        deadline = time.monotonic() + LINE_WAIT_S
        while time.monotonic() < deadline:
            line = self.feeds.line_of(frame)
            if line is not None:
                return line
            await asyncio.sleep(0.003)
        return self.feeds.latest_line

    def _encode(self, frame: Frame, line: dict[str, Any] | None) -> bytes:
        ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError("OpenCV could not encode the frame as JPEG")
        line_px: list[list[float]] = []
        if line is not None and self.project is not None:
            for x, y in line.get("points") or []:
                u, v = self.project(x, y)
                if math.isfinite(u) and math.isfinite(v):
                    line_px.append([round(u, 1), round(v, 1)])
        height, width = frame.image.shape[:2]
        header = {
            "number": frame.number,
            "width": width,
            "height": height,
            "frame": frame.metadata.get("frame"),
            "line": line_px,
            "found": bool(line and line.get("found")),
        }
        text = json.dumps(header).encode()
        return struct.pack("<I", len(text)) + text + jpeg.tobytes()


async def _page(view: View, connection: ServerConnection) -> None:
    """One page: its state every 100 ms, frames when it asks, and what it asks for."""
    view.pages += 1
    if view.track is not None:
        await connection.send(json.dumps({"type": "track", **asdict(view.track)}))
    sender = asyncio.create_task(_send_state(view, connection))
    framer: asyncio.Task[None] | None = None
    next_frame_at = 0.0  # monotonic: this page gets at most MAX_FPS frames a second
    try:
        async for text in connection:
            if not isinstance(text, str):
                continue
            try:
                asked = json.loads(text)
            except json.JSONDecodeError:
                continue
            kind = asked.get("type") if isinstance(asked, dict) else None
            if kind == "frame" and (framer is None or framer.done()):
                framer = asyncio.create_task(_send_frame(view, connection, int(asked.get("after") or 0), next_frame_at))
                next_frame_at = max(time.monotonic(), next_frame_at) + 1 / MAX_FPS
            elif kind == "act":
                view.teleop.act(connection.id.hex, asked.get("action"))
            elif kind == "drive":
                view.teleop.drive(connection.id.hex, asked.get("speed"), asked.get("turn"))
            elif kind == "manual":
                await asyncio.to_thread(view.teleop.set_manual, connection.id.hex, bool(asked.get("on")))
            elif kind == "stop":
                await asyncio.to_thread(_stop_run, view.graph)
    except ConnectionClosed:
        pass
    finally:
        view.pages -= 1
        sender.cancel()
        if framer is not None:
            framer.cancel()
        await asyncio.to_thread(view.teleop.page_gone, connection.id.hex)  # manual: the car stops


async def _send_state(view: View, connection: ServerConnection) -> None:
    seen, trail_seen, trail_kind = 0, 0, ""
    try:
        while True:
            seen, samples = view.feeds.samples_since(seen)
            if view.feeds.trail_kind != trail_kind:  # a new trail (a pose came after odometry): from its start
                trail_seen, trail_kind = 0, view.feeds.trail_kind
            trail_seen, new_trail = view.feeds.trail_since(trail_seen)
            state = {
                "type": "state",
                "t": time.time(),
                "samples": [[s.t, s.series, s.value] for s in samples],
                "trail": [[round(x, 4), round(y, 4), round(h, 3)] for x, y, h in new_trail],
                "trail_kind": view.feeds.trail_kind,
                "nodes": view.nodes,
                "status": view.status,
                "safety": [
                    {"node": node, "change": e.change.value, "reason": e.reason.value, "text": e.text()}
                    for node, e in view.feeds.safety().items()
                ],
                "teleop": view.teleop.state(),
                "lost": view.feeds.lost,
                "ended": view.finished.is_set(),
                "pages": view.pages,
            }
            await connection.send(json.dumps(state))
            await asyncio.sleep(STATE_PERIOD_S)
    except ConnectionClosed:
        pass


async def _send_frame(view: View, connection: ServerConnection, after: int, not_before: float) -> None:
    message = await view.frame_after(after, not_before)
    if message is not None:
        try:
            await connection.send(message)
            view.frames_sent += 1
        except ConnectionClosed:
            pass


def _stop_run(graph: RunningGraph) -> None:
    for part in graph.parts:
        part.ask(control.StopRun(grace=2.0), control.Done)


def _files(connection: ServerConnection, request: Request) -> Response | None:
    """The page's files; None lets `/ws` become a WebSocket."""
    path = request.path.split("?", 1)[0]
    if path == "/ws":
        return None
    name = "index.html" if path == "/" else path.lstrip("/")
    file = (STATIC / name).resolve()
    if file.parent != STATIC.resolve() or not file.is_file():
        return connection.respond(HTTPStatus.NOT_FOUND, f"{path}: no such page\n")
    body = file.read_bytes()
    headers = Headers(
        [
            ("Content-Type", TYPES.get(file.suffix, "application/octet-stream")),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(HTTPStatus.OK.value, "OK", headers, body)


async def serve_view(view: View, host: str, port: int, ready: Any) -> None:
    """Serve the view until the run ends; `ready(url)` once it listens."""
    async with serve(
        lambda connection: _page(view, connection),
        host,
        port,
        process_request=_files,
        compression=None,  # JPEG and JSON samples: deflate costs more than it saves
        ping_interval=2,  # a page that went away is noticed within seconds (and a manual car stops)
        ping_timeout=4,
        max_size=65536,
    ) as server:
        bound = server.sockets[0].getsockname()[1] if server.sockets else port
        ready(f"http://{'127.0.0.1' if host in ('127.0.0.1', 'localhost') else host}:{bound}/")
        watcher = asyncio.create_task(view.watch_nodes())
        teleop = asyncio.create_task(view.teleop.run(view.finished))
        while not view.finished.is_set():
            if view.feeds.ended:
                view.finished.set()
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # the pages hear that it ended
        watcher.cancel()
        teleop.cancel()
