"""The node `car replay` runs in place of a recorded node: it sends that node's recorded outputs again.

`python -m car.recording.player FILE.mcap --topics NODE/OUTPUT ... [--rate X | --fast] [--loop]
[--start-offset S]` runs as the node whose outputs it plays (same id, same outputs), so its
readers cannot tell it from the node it stands in for. Each message goes out with its
recorded value and metadata (images as the numpy arrays the node sent), at its recorded
time from the recording's first message (`--rate` scales it), or, with `--fast`, as soon
as the readers take it (`car replay` makes their inputs `backpressure`, so nothing is
dropped and a deterministic reader computes exactly what it computed in the recording).
It ends after the last message (its readers see their inputs close) unless `--loop`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from car.node.api import Node
from car.recording import channels as mcap_channels


@dataclass(frozen=True)
class Recorded:
    """One message to play: when it was sent (ns since the recording's first message), where, and what."""

    offset_ns: int
    output: str
    value: Any
    metadata: dict[str, Any]


def recorded_messages(path: str, topics: list[str], start_offset_s: float) -> Iterator[Recorded]:
    """The messages of `topics` (`node/output`) in the MCAP file at `path`, in time order, from `start_offset_s`
    seconds after its first message (of any channel)."""
    import mcap.reader

    with open(path, "rb") as stream:
        reader = mcap.reader.make_reader(stream)
        summary = reader.get_summary()
        first = summary.statistics.message_start_time if summary is not None and summary.statistics else 0
        start = first + int(start_offset_s * 1e9)
        for schema, channel, message in reader.iter_messages(topics=topics, starting_at=start, log_time_order=True):
            value, metadata = mcap_channels.decode(schema.name if schema is not None else "", message.data)
            yield Recorded(message.log_time - start, channel.topic.partition("/")[2], value, metadata)


def player_arguments() -> argparse.ArgumentParser:
    """The player's command line (`car replay` writes it into the node's `args`)."""
    parser = argparse.ArgumentParser(prog="car.recording.player")
    parser.add_argument("file")
    parser.add_argument("--topics", nargs="+", required=True)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--loop", action="store_true")
    parser.add_argument("--start-offset", type=float, default=0.0)
    return parser


def play(node: Node, args: argparse.Namespace) -> int:
    """Send the recorded messages until the last (or STOP); the number sent."""
    sent = 0
    while True:
        began = time.monotonic()
        for message in recorded_messages(args.file, args.topics, args.start_offset):
            if args.fast:
                stopped = node.next(0) is not None  # STOP is the only event a player gets
            else:
                due = began + message.offset_ns / 1e9 / args.rate
                stopped = _wait_until(node, due)
            if stopped:
                return sent
            node.send_output(message.output, message.value, message.metadata)
            sent += 1
        if not args.loop or sent == 0:
            return sent


def _wait_until(node: Node, due: float) -> bool:
    """Wait until `due` (monotonic); True when the run stops meanwhile."""
    while True:
        left = due - time.monotonic()
        if left <= 0:
            return False
        event = node.next(left)
        if event is not None and event.type == "STOP":
            return True


def main() -> None:
    """The player node."""
    args = player_arguments().parse_args()
    with Node() as node:
        sent = play(node, args)
        print(f"played {sent} recorded messages of {', '.join(args.topics)}", file=sys.stderr)


if __name__ == "__main__":
    main()
