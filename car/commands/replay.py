"""`car replay FILE.mcap`: a recording's outputs played into a dataflow, in place of the nodes that sent them.

The dataflow (`--dataflow FILE`, else the file the recording was made from) runs as `car
launch` runs it, except that each node whose outputs are played is replaced by a player
(car.recording.player): the same id and outputs, no inputs, sending the recorded messages
with their values and metadata. Played are the recorded outputs of the `--replace` nodes,
or the `--topics` named, or, by default, every recorded output of a node the dataflow
has (as `ros2 bag play` plays every topic): the other nodes run live and read them. With
`--fast` the readers' inputs from players become `backpressure`, so the players send as
fast as the graph takes them and none is dropped: a deterministic node computes what it
computed when the recording was made.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from car.recording.sink import RecordError
from car.spec.model import Dataflow, NodeSpec, QueuePolicy, RestartPolicy

PLAYER = "-m car.recording.player"


@dataclass(frozen=True)
class Replay:
    """A dataflow with players in place of the replaced nodes, what each plays, and what nobody will send."""

    dataflow: Dataflow
    played: dict[str, list[str]]  # replaced node -> the `node/output`s its player sends
    silent: list[str]  # outputs of replaced nodes the recording lacks (or that were left out): never sent


def replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car replay` of its own (the rest are `car launch`'s)."""
    parser.add_argument("recording", metavar="FILE.mcap", help="a recording made by `car record` or `--record`")
    parser.add_argument("--dataflow", metavar="FILE", help="play into this dataflow (default: the one recorded)")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--topics", nargs="+", default=[], metavar="NODE/OUTPUT", help="play only these outputs")
    chosen.add_argument("--replace", nargs="+", default=[], metavar="NODE", help="play these nodes' recorded outputs")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=1.0, metavar="X", help="X times the recorded speed (default 1)")
    pace.add_argument("--fast", action="store_true", help="as fast as the graph takes them, none dropped")
    parser.add_argument("--loop", action="store_true", help="start again after the last message")
    parser.add_argument("--start-offset", type=float, default=0.0, metavar="S", help="skip the first S seconds")


def recorded_dataflow(recording: Path, info: dict[str, Any]) -> str:
    """The dataflow file the recording was made from, when it is on this machine (RecordError otherwise)."""
    path = info["metadata"].get("car.run", {}).get("dataflow_file", "")
    if path and Path(path).is_file():
        return str(path)
    known = f"it was made from {path}, which is not here" if path else "it does not say which dataflow it came from"
    raise RecordError(f"{recording}: {known}; give --dataflow FILE")


def plan_replay(dataflow: Dataflow, recording: Path, info: dict[str, Any], args: argparse.Namespace) -> Replay:
    """`dataflow` with players in place of the nodes whose recorded outputs `args` asks to play (`info`: what
    car.recording.sink.describe_file says of the recording)."""
    if args.rate <= 0:
        raise RecordError(f"--rate {args.rate}: give a speed above 0 (2: twice as fast; or --fast)")
    if args.start_offset < 0:
        raise RecordError(f"--start-offset {args.start_offset}: give seconds from the start, 0 or more")
    recorded = [c["topic"] for c in info["channels"] if c["messages"]]
    if args.start_offset >= info["duration_s"]:
        raise RecordError(f"--start-offset {args.start_offset}: {recording} lasts {info['duration_s']} s")
    outputs = {f"{n.id}/{o}": n.id for n in dataflow.nodes for o in n.outputs}
    if args.topics:
        for topic in args.topics:
            if topic not in recorded:
                raise RecordError(f"--topics {topic}: {recording} has no messages of it ({', '.join(recorded)})")
            if topic not in outputs:
                raise RecordError(f"--topics {topic}: {dataflow.file} has no such output ({', '.join(outputs)})")
        played_topics = list(args.topics)
    elif args.replace:
        played_topics = []
        for node_id in args.replace:
            if node_id not in {n.id for n in dataflow.nodes}:
                raise RecordError(f"--replace {node_id}: {dataflow.file} has no such node")
            mine = [t for t in recorded if outputs.get(t) == node_id]
            if not mine:
                raise RecordError(f"--replace {node_id}: {recording} has no output of `{node_id}`")
            played_topics += mine
    else:
        played_topics = [t for t in recorded if t in outputs]
        if not played_topics:
            raise RecordError(
                f"{recording}: none of its channels ({', '.join(recorded)}) is an output of {dataflow.file}"
            )
    played: dict[str, list[str]] = {}
    for topic in played_topics:
        played.setdefault(outputs[topic], []).append(topic)
    silent = [t for t, node_id in outputs.items() if node_id in played and t not in played_topics]
    nodes = tuple(
        _player(node, played[node.id], recording, args)
        if node.id in played
        else _reader(node, played_topics, args.fast)
        for node in dataflow.nodes
    )
    return Replay(dataclasses.replace(dataflow, nodes=nodes), played, silent)


def _player(node: NodeSpec, topics: list[str], recording: Path, args: argparse.Namespace) -> NodeSpec:
    """The player that stands in for `node`: its id and outputs, no inputs, no build, never restarted."""
    pace = ["--fast"] if args.fast else ["--rate", repr(args.rate)]
    options = [*pace, *(["--loop"] if args.loop else []), "--start-offset", repr(args.start_offset)]
    return dataclasses.replace(
        node,
        path=PLAYER,
        args=(str(recording.resolve()), "--topics", *topics, *options),
        inputs={},
        input_types={},
        env={},
        build="",
        restart_policy=RestartPolicy.NEVER,
        send_logs_as="",
        send_stdout_as="",
    )


def _reader(node: NodeSpec, played: list[str], fast: bool) -> NodeSpec:
    """A live node; with `fast`, its inputs from players make the players wait for it (backpressure)."""
    if not fast or not any(i.source in played for i in node.inputs.values()):
        return node
    inputs = {
        name: dataclasses.replace(i, queue_policy=QueuePolicy.BACKPRESSURE) if i.source in played else i
        for name, i in node.inputs.items()
    }
    return dataclasses.replace(node, inputs=inputs)
