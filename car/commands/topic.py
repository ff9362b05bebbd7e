"""`car topic list|echo|hz|bw|info|pub`: look at a running graph's outputs without changing it.

Flags as `ros2 topic` and `dora topic` users know them. The daemon says what the graph
is (`ListTopics`: outputs, readers, queue settings); everything measured (values, rates,
sizes) is measured here, by a subscriber (car.node.subscriber) that exists only while the
command runs: a graph nobody watches pays nothing, and a slow command loses messages
(counted), never slows the graph. `pub` has the node's daemon send a JSON value into
one of its inputs, as the input's source would.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from car.commands import values
from car.commands.actions import Action, add_actions, run_action
from car.commands.common import byte_size, coordinator_option, dataflow_option
from car.node.event import Event
from car.node.subscriber import Subscriber
from car.plan.running import GraphPart, RunningGraph, find_graph
from car.plan.runs import RunError
from car.transport import control

LIST_WINDOW_S = 0.3  # how long `topic list` and `info` watch to measure rates and sizes (`hz`: longer, finer)
SILENT_GRACE_S = 1.0  # how much longer they wait for an output that sent nothing in the window (a busy machine)
REPORT_PERIOD_S = 1.0  # `hz` and `bw` print this often
SUBSCRIBER_QUEUE = 100  # messages a command may fall behind before it loses the oldest (counted)


class TopicError(RunError):
    """A mistake in what `car topic` was asked (an unknown output, a bad value); the message says what to do."""


# -- what the run has ---------------------------------------------------------------------------


def _graph(args: argparse.Namespace) -> RunningGraph:
    return find_graph(args.dataflow, args.coordinator_addr)


@dataclass(frozen=True)
class PartTopics:
    """The outputs of one machine's part of a graph."""

    part: GraphPart
    topics: list[control.Topic]


def _topics(graph: RunningGraph) -> list[PartTopics]:
    return [PartTopics(part, part.ask(control.ListTopics(), control.Topics).topics) for part in graph.parts]


def _topic(graph: RunningGraph, source: str) -> tuple[GraphPart, control.Topic]:
    """The part whose node sends `source`, and what it says of that output."""
    every = _topics(graph)
    for found in every:
        for topic in found.topics:
            if topic.source == source:
                return found.part, topic
    known = ", ".join(t.source for found in every for t in found.topics) or "none"
    raise TopicError(f"dataflow `{graph.name}` has no output `{source}` (outputs: {known})")


@dataclass
class Watched:
    """What a subscriber saw of one output."""

    count: int = 0
    size: int = 0  # bytes, in all
    type: str = ""  # the type of the last value
    first: float = 0.0  # when the first and the last message arrived (monotonic seconds)
    last: float = 0.0

    def rate(self, window: float) -> float:
        """Messages per second: over the arrivals seen, or over the window with fewer than two."""
        if self.count >= 2 and self.last > self.first:
            return (self.count - 1) / (self.last - self.first)
        return self.count / window


def watch(run: GraphPart, sources: list[str], window: float) -> dict[str, Watched]:
    """Subscribe to `sources` (of one part) for `window` seconds, and up to SILENT_GRACE_S more while one of them
    has sent nothing: what arrived, per output."""
    seen = {source: Watched() for source in sources}
    if not sources:
        return seen
    with Subscriber(sources, run, queue_size=SUBSCRIBER_QUEUE) as sub:
        end = time.monotonic() + window
        last_chance = end + SILENT_GRACE_S
        while True:
            now = time.monotonic()
            if now >= end:  # an output silent so far gets longer (its node may not have sent since it was joined)
                if now >= last_chance or all(got.count for got in seen.values()):
                    break
                end = min(last_chance, now + window)
            event = sub.recv(end - now)
            if event is None or event.type != "INPUT":
                continue
            now = time.monotonic()
            got = seen.setdefault(event.id, Watched())
            got.first = got.first or now
            got.last = now
            got.count += 1
            got.size += values.size_of(event.value)
            got.type = values.type_name(event.value)
    return seen


# -- list, info ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicRow:
    """One output as `car topic list` shows it."""

    source: str
    type: str  # the declared type, else the type of what was seen
    rate_hz: float
    mean_size_bytes: int
    readers: list[str] = field(default_factory=list)  # node/input
    subscribers: int = 0
    machine: str = ""


def topic_list(args: argparse.Namespace) -> int:
    """Every `node/output` with its readers, rate, mean size and type."""
    every = _topics(_graph(args))
    with ThreadPoolExecutor(len(every)) as pool:  # every machine's part watched at once
        watched = pool.map(lambda found: watch(found.part, [t.source for t in found.topics], args.window), every)
        seen = {source: got for part_seen in watched for source, got in part_seen.items()}
    rows = []
    for topic in (t for found in every for t in found.topics):
        got = seen[topic.source]
        rows.append(
            TopicRow(
                topic.source,
                topic.declared_type or got.type or "-",
                round(got.rate(args.window), 1),
                got.size // got.count if got.count else 0,
                [f"{r.node}/{r.input}" for r in topic.readers],
                topic.subscribers,
                topic.machine,
            )
        )
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=1))
        return 0
    widths = [max([len("OUTPUT"), *(len(r.source) for r in rows)]), max([len("TYPE"), *(len(r.type) for r in rows)])]
    print(f"{'OUTPUT':<{widths[0]}}  {'TYPE':<{widths[1]}}  {'RATE':>9}  {'SIZE':>9}  READERS")
    for row in rows:
        readers = ", ".join(row.readers) or "-"
        rate = f"{row.rate_hz:.1f} Hz"
        print(
            f"{row.source:<{widths[0]}}  {row.type:<{widths[1]}}  {rate:>9}  {byte_size(row.mean_size_bytes):>9}  {readers}"
        )
    return 0


def topic_info(args: argparse.Namespace) -> int:
    """An output's type, publisher, readers (with their queue settings) and subscribers."""
    part, topic = _topic(_graph(args), args.source)
    seen = watch(part, [topic.source], args.window)[topic.source]
    info = {
        "output": topic.source,
        "publisher": topic.source.split("/", 1)[0],
        "machine": topic.machine or "here",
        "declared_type": topic.declared_type or None,
        "seen_type": seen.type or None,
        "readers": [asdict(r) for r in topic.readers],
        "subscribers": topic.subscribers,
    }
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"Output: {topic.source}")
    print(f"Type: {topic.declared_type or seen.type or 'unknown (nothing seen)'}")
    print(f"Publisher: {info['publisher']} ({info['machine']})")
    print(f"Readers: {len(topic.readers)}")
    for reader in topic.readers:
        where = f" on {reader.machine}" if reader.machine else ""
        print(f"  {reader.node}/{reader.input}{where}: queue_size {reader.queue_size}, {reader.queue_policy}")
    print(f"Subscribers: {topic.subscribers}")
    return 0


# -- echo ------------------------------------------------------------------------------------------------


def _image(value: Any, metadata: dict[str, Any]) -> np.ndarray[Any, Any] | None:
    """The value as an 8-bit BGR (or grey) image OpenCV can write, or None when it is not an image."""
    if not isinstance(value, np.ndarray) or value.dtype != np.uint8:
        return None
    if value.ndim == 2 or (value.ndim == 3 and value.shape[2] in (1, 3, 4)):
        if metadata.get("encoding") == "rgb8" and value.ndim == 3 and value.shape[2] == 3:
            return np.ascontiguousarray(value[:, :, ::-1])
        return value
    return None


def _echo_line(event: Event, value: Any, as_json: bool, saved: str) -> str:
    if as_json:
        stamp = event.timestamp
        record = {
            "source": event.id,
            "timestamp_ns": stamp[0] if stamp else None,
            "value": values.summary(value),
            "metadata": event.metadata,
        }
        if saved:
            record["saved"] = saved
        return json.dumps(record, default=str)
    line = values.text(value)
    return f"{event.id}: {line}" + (f"  -> {saved}" if saved else "")


def topic_echo(args: argparse.Namespace) -> int:
    """Print values as they arrive: JSON as JSON, arrays as type and statistics; `--save` writes images."""
    part, _ = _topic(_graph(args), args.source)
    wanted = 1 if args.once else args.count
    folder = Path(args.save) if args.save else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    shown = 0
    with Subscriber([args.source], part, queue_size=SUBSCRIBER_QUEUE) as sub:
        open_sources = set(sub.sources)
        for event in sub:
            if event.type == "INPUT_CLOSED":
                print(f"car: {event.id} is closed (its node ended)", file=sys.stderr)
                open_sources.discard(event.id)
                if not open_sources:
                    break
            if event.type != "INPUT":
                continue
            value = event.value
            if args.field:
                try:
                    value = values.field(value, args.field)
                except KeyError as exc:
                    raise TopicError(f"{event.id}: {exc.args[0]}") from None
            saved = ""
            image = _image(value, event.metadata) if folder is not None else None
            if folder is not None and image is not None:
                import cv2  # only --save needs OpenCV (a tenth of a second to import)

                path = folder / f"{event.id.replace('/', '-')}-{shown:06d}.png"
                cv2.imwrite(str(path), image)
                saved = str(path)
            print(_echo_line(event, value, args.json, saved), flush=True)
            shown += 1
            if wanted and shown >= wanted:
                break
        if sub.dropped:
            print(
                f"car: {sub.dropped} messages were dropped on the way here (this command fell behind)", file=sys.stderr
            )
    return 0


# -- hz, bw ------------------------------------------------------------------------------------------


@dataclass
class Window:
    """The last `size` messages of an output: the intervals between their timestamps (when they were sent,
    so a command that falls behind and reads a few at once still measures the output), and their sizes."""

    size: int
    arrivals: deque[float] = field(default_factory=deque)
    sizes: deque[int] = field(default_factory=deque)
    total: int = 0

    def add(self, when: float, size: int) -> None:
        """One message arrived."""
        self.arrivals.append(when)
        self.sizes.append(size)
        self.total += 1
        while len(self.arrivals) > self.size + 1:  # size intervals need size + 1 arrivals
            self.arrivals.popleft()
        while len(self.sizes) > self.size:
            self.sizes.popleft()

    def rate(self) -> Rate:
        """The rate over the window and the spread of the intervals (seconds), as `ros2 topic hz` gives them."""
        times = list(self.arrivals)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        if not gaps:
            return Rate(rate_hz=0.0, window=0)
        mean = sum(gaps) / len(gaps)
        return Rate(
            rate_hz=round(1.0 / mean, 3) if mean > 0 else math.inf,
            min_s=round(min(gaps), 6),
            max_s=round(max(gaps), 6),
            std_s=round(statistics.pstdev(gaps), 6),
            window=len(gaps),
        )

    def bandwidth(self) -> Bandwidth:
        """Bytes per second over the window, and the message sizes."""
        times = list(self.arrivals)[-len(self.sizes) :] if self.sizes else []
        span = times[-1] - times[0] if len(times) >= 2 else 0.0
        sizes = list(self.sizes)
        if not sizes:
            return Bandwidth(bytes_per_s=0.0, window=0)
        rate = sum(sizes[1:]) / span if span > 0 else 0.0
        return Bandwidth(
            bytes_per_s=round(rate, 1),
            mean_bytes=round(sum(sizes) / len(sizes), 1),
            min_bytes=min(sizes),
            max_bytes=max(sizes),
            window=len(sizes),
        )


@dataclass(frozen=True, kw_only=True)
class Rate:
    """`car topic hz`'s figures over its window (no spread when fewer than two messages came)."""

    rate_hz: float
    window: int  # intervals measured
    min_s: float = 0.0
    max_s: float = 0.0
    std_s: float = 0.0

    def text(self) -> str:
        """As `ros2 topic hz` prints them."""
        if not self.window:
            return "no new messages"
        return (
            f"average rate: {self.rate_hz:.3f}\n"
            f"\tmin: {self.min_s:.3f}s max: {self.max_s:.3f}s std dev: {self.std_s:.5f}s window: {self.window}"
        )


@dataclass(frozen=True, kw_only=True)
class Bandwidth:
    """`car topic bw`'s figures over its window."""

    bytes_per_s: float
    window: int  # messages measured
    mean_bytes: float = 0.0
    min_bytes: int = 0
    max_bytes: int = 0

    def text(self) -> str:
        """As `ros2 topic bw` prints them."""
        if not self.window:
            return "no new messages"
        return (
            f"{byte_size(self.bytes_per_s)}/s from {self.window} messages\n"
            f"\tMessage size mean: {byte_size(self.mean_bytes)} min: {byte_size(self.min_bytes)} "
            f"max: {byte_size(self.max_bytes)}"
        )


def _measure(args: argparse.Namespace, report: Callable[[Window], Rate | Bandwidth]) -> int:
    """Watch one output until `--duration` (or Ctrl-C), printing `report(window)` once a second."""
    part, _ = _topic(_graph(args), args.source)
    window = Window(args.window)
    end = time.monotonic() + args.duration if args.duration else math.inf
    with Subscriber([args.source], part, queue_size=SUBSCRIBER_QUEUE) as sub:
        next_report = time.monotonic() + REPORT_PERIOD_S
        while (now := time.monotonic()) < end:
            event = sub.recv(max(0.0, min(next_report, end) - now))
            now = time.monotonic()
            if event is not None and event.type == "INPUT":
                sent = event.timestamp[0] / 1e9 if event.timestamp is not None else now
                window.add(sent, values.size_of(event.value))
            elif event is not None and event.type == "INPUT_CLOSED":
                print(f"car: {args.source} is closed (its node ended)", file=sys.stderr)
                break
            if now >= next_report:
                figures = report(window)
                numbers = {"source": args.source, **asdict(figures), "dropped": sub.dropped}
                print(json.dumps(numbers) if args.json else figures.text(), flush=True)
                next_report = now + REPORT_PERIOD_S
    if not window.total:
        print(f"car: no message from {args.source} arrived", file=sys.stderr)
        return 1
    return 0


def topic_hz(args: argparse.Namespace) -> int:
    """An output's rate, and the min, max and spread of the intervals between its messages."""
    return _measure(args, Window.rate)


def topic_bw(args: argparse.Namespace) -> int:
    """An output's bytes per second, and its message sizes."""
    return _measure(args, Window.bandwidth)


# -- pub --------------------------------------------------------------------------------------------------


def topic_pub(args: argparse.Namespace) -> int:
    """Send a JSON value into a node's input, once, `--times N` or at `--rate HZ`."""
    node, _, input_name = args.target.partition("/")
    if not node or not input_name:
        raise TopicError(f"`{args.target}` is not NODE/INPUT (e.g. controller/line)")
    try:
        value = json.loads(args.value)
    except json.JSONDecodeError as exc:
        raise TopicError(
            f"the value is not JSON ({exc.msg} at character {exc.pos}): quote strings, e.g. '\"x\"'"
        ) from None
    part = _graph(args).part_of(node)
    times = 1 if args.once else args.times if args.times else (0 if args.rate else 1)
    period = 1.0 / args.rate if args.rate else 0.0
    request = control.Publish(node, input_name, json.dumps(value))
    sent, source = 0, ""
    try:
        next_at = time.monotonic()
        while not times or sent < times:
            source = part.ask(request, control.Published).source  # the daemon sends it, as the source would
            sent += 1
            if period:
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))
    except KeyboardInterrupt:
        pass
    print(f"sent {sent} message{'s' if sent != 1 else ''} to {args.target}" + (f" (as {source})" if source else ""))
    return 0


# -- the command table -------------------------------------------------------------------------------


def _source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="NODE/OUTPUT")
    dataflow_option(parser)


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    dataflow_option(parser)
    parser.add_argument("--json", action="store_true", help="one JSON list")
    parser.add_argument("--window", type=float, default=LIST_WINDOW_S, help="seconds to watch for rates and sizes")


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    _source(parser)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--window", type=float, default=LIST_WINDOW_S, help="seconds to watch for the type seen")


def _echo_arguments(parser: argparse.ArgumentParser) -> None:
    _source(parser)
    parser.add_argument("--count", type=int, default=0, help="stop after N messages (default: until Ctrl-C)")
    parser.add_argument("--once", action="store_true", help="print one message and stop")
    parser.add_argument("--json", action="store_true", help="one JSON object per message")
    parser.add_argument("--field", metavar="PATH", help="print only this part of a JSON value (`a.b.0`)")
    parser.add_argument("--save", metavar="DIR", help="write images (8-bit arrays) as PNG files into DIR")


def _measure_arguments(parser: argparse.ArgumentParser) -> None:
    _source(parser)
    parser.add_argument("--window", type=int, default=100, help="messages the figures are computed over")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="one JSON object per report")


def _pub_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="NODE/INPUT")
    parser.add_argument("value", metavar="VALUE", help="a JSON value, e.g. '{\"offset\": 0.1}'")
    dataflow_option(parser)
    parser.add_argument("--rate", type=float, default=0.0, help="send at HZ until Ctrl-C (or --times)")
    parser.add_argument("--once", action="store_true", help="send once (the default without --rate)")
    parser.add_argument("--times", type=int, default=0, help="send N times")


TOPIC_COMMANDS: list[Action] = [
    Action("list", "every output with its readers, rate, mean size and type", _list_arguments, topic_list),
    Action("echo", "print an output's values as they arrive", _echo_arguments, topic_echo),
    Action("hz", "an output's rate and the spread of its intervals", _measure_arguments, topic_hz),
    Action("bw", "an output's bytes per second and message sizes", _measure_arguments, topic_bw),
    Action("info", "an output's type, publisher, readers and queue settings", _info_arguments, topic_info),
    Action("pub", "send a JSON value into a node's input", _pub_arguments, topic_pub),
]


def topic_arguments(parser: argparse.ArgumentParser) -> None:
    """`car topic`'s own actions."""
    add_actions(parser, TOPIC_COMMANDS, coordinator_option)


def cmd_topic(args: argparse.Namespace) -> int:
    """Run one `car topic` action."""
    return run_action(args, TOPIC_COMMANDS)
