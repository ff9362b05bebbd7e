"""`car view [-d NAME]`: a live web view of a running graph (`car launch FILE --view` starts one beside the run).

    car view                      # the only running graph; prints the page's URL
    car view -d follow_line-... --port 8887 --host 0.0.0.0    # reachable from other hosts (only when asked)
    car view --foxglove           # also for Foxglove / Lichtblick: ws://127.0.0.1:8765

It serves the page until the run ends or Ctrl-C, and never slows the graph (view.feeds,
view.server). `--teleop NODE/INPUT` is the input the page drives (default car_io/cmd).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from car.commands.common import coordinator_option, dataflow_option
from car.plan.running import find_graph
from car.plan.runs import RunError
from car.plan.signals import STOP_SIGNALS
from hal import description as car_description
from hal.description import DescriptionError, load_description
from nodes.launch_options import TRACK_ENV
from view.feeds import Feeds
from view.foxglove_bridge import FoxgloveBridge
from view.launch import DEFAULT_PORT, FOXGLOVE_PORT
from view.server import TrackDrawing, View, serve_view
from view.teleop import Teleop

NICENESS = 10  # added to the view's nice value
TRACK_POINTS = 1500  # at most, of the track's centre line, for the page


def arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car view`."""
    dataflow_option(parser)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this host only)")
    parser.add_argument("--teleop", default="car_io/cmd", metavar="NODE/INPUT", help="the input the page drives")
    parser.add_argument(
        "--car", metavar="FILE.yml", help="the car's description (camera model for the overlay; default: the run's)"
    )
    parser.add_argument("--foxglove", action="store_true", help="also serve the Foxglove WebSocket protocol")
    parser.add_argument(
        "--foxglove-port", type=int, default=FOXGLOVE_PORT, help=f"its port (default {FOXGLOVE_PORT}; 0: any free)"
    )
    parser.add_argument("--no-page", action="store_true", help="no web page (with --foxglove: Foxglove only)")
    parser.add_argument("--port-option", default="--port", help=argparse.SUPPRESS)  # as `car launch --view` names it
    coordinator_option(parser)


def main(argv: list[str]) -> None:
    """`car view ARGS`."""
    parser = argparse.ArgumentParser(prog="car view", description="a live web view of a running graph")
    arguments(parser)
    args = parser.parse_args(argv)
    for option, port in (("--port", args.port), ("--foxglove-port", args.foxglove_port)):
        if not 0 <= port <= 65535:
            parser.error(f"{option} {port}: give 0-65535")
    if args.no_page and not args.foxglove:
        parser.error("--no-page leaves nothing to serve: add --foxglove")
    if "/" not in args.teleop:
        parser.error(f"--teleop {args.teleop}: give NODE/INPUT (e.g. car_io/cmd)")
    try:
        sys.exit(view(args))
    except (RunError, DescriptionError) as exc:
        print(f"car view: {exc}", file=sys.stderr)
        sys.exit(2)


def view(args: argparse.Namespace) -> int:
    """Serve the view of the graph `args` names until its run ends or a signal."""
    from nodes.line_detector import LineDetector  # the camera model the detector uses, for the overlay

    os.nice(NICENESS)  # the nodes come first: on a busy car the view waits, the control loop does not
    graph = find_graph(args.dataflow, args.coordinator_addr)
    launch_env = graph.launch_env()  # what `car launch --track ... --car ...` gave the nodes
    description = load_description(args.car or launch_env.get(car_description.ENV_VAR))
    track = _track(launch_env.get(TRACK_ENV))
    feeds = Feeds(graph, wheel_base=description.car.wheel_base)
    teleop = Teleop(graph, args.teleop, description.car.wheel_base)
    teleop.find_commander()
    detector = LineDetector(description.camera)
    bridge = FoxgloveBridge(graph, args.host, args.foxglove_port) if args.foxglove else None
    if bridge is not None:
        bridge.start()
        print(f"car view: {graph.name} for Foxglove at ws://{_shown(args.host)}:{bridge.port}", file=sys.stderr)

    def ready(url: str) -> None:
        print(f"car view: {graph.name} at {url} (Ctrl-C to stop)", file=sys.stderr, flush=True)

    async def serve() -> None:
        shown = View(graph, feeds, teleop, detector.floor_to_pixel, track)
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, shown.finished.set)
        if args.no_page:
            while not shown.finished.is_set() and not (bridge is not None and bridge.listener.ended):
                await asyncio.sleep(0.2)
            return
        feeds.start()
        await serve_view(shown, args.host, args.port, ready)

    try:
        asyncio.run(serve())
    except OSError as exc:
        option = args.port_option
        raise RunError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another {option}") from None
    finally:
        feeds.stop()
        if bridge is not None:
            bridge.stop()
    return 0


def _track(name: str | None) -> TrackDrawing | None:
    """The simulator's track the run drives on, for the page to draw under the trail (None: none, a real car)."""
    if not name:
        return None
    from sim.track import TrackError, TrackStyle, load_track  # the simulator's tracks: only for a simulated run

    try:
        track = load_track(name)
    except TrackError as exc:
        print(f"car view: the track is not drawn: {exc}", file=sys.stderr)
        return None
    step = max(1, -(-len(track.points) // TRACK_POINTS))

    def thinned(line: Any) -> list[list[float]]:
        shown = [[round(float(x), 4), round(float(y), 4)] for x, y in line[::step]]
        if track.closed and shown[-1] != shown[0]:
            shown.append(shown[0])
        return shown

    boxes = [[box.x, box.y, box.width, box.depth] for box in track.obstacles]
    if track.style is not TrackStyle.LANE:
        return TrackDrawing(track.name, thinned(track.points), track.line_width, boxes)
    edges = [thinned(track.offset_centre(side * track.lane_width)) for side in (1, -1)]
    return TrackDrawing(track.name, thinned(track.points), track.line_width, boxes, edges, thinned(track.centre))


def _shown(host: str) -> str:
    """The host part of an address to print: 127.0.0.1 for this host only, the address given otherwise."""
    return "127.0.0.1" if host in ("127.0.0.1", "localhost") else host
