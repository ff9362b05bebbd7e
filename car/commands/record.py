"""`car record [DATAFLOW] -o FILE.mcap` and `car info FILE.mcap`: keep a running graph's messages, see what was kept.

`car record` joins a running graph as a subscriber (one per machine's part, each a
thread; car.node.subscriber) and writes every message of the outputs asked for (default:
all) into an MCAP file with the `mcap` library: one channel per `node/output`, the
message's timestamp (its hybrid logical clock's wall time) as log and publish time, the
encodings of car.commands.mcap_channels, and the dataflow file and the run's facts as an
attachment and metadata. It never slows the graph: a recorder that falls behind loses
messages (a bounded queue between its receiving threads and its writer), counts them and says so at the end. It stops at
Ctrl-C, after `--duration`, or when the run ends, and always leaves a complete file.
"""

from __future__ import annotations

import argparse
import enum
import json
import platform
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from car.commands import mcap_channels
from car.commands.several import coordinator_option
from car.node.subscriber import Subscriber
from car.plan.graph import Graph, find_graph
from car.plan.runs import RunError, pid_alive
from car.transport import control

RECORDER_QUEUE = 1000  # messages the recorder may fall behind before it loses the newest (counted)
JOIN_S = 15.0  # `car launch --record` holds its nodes this long at most for the recorder to subscribe


class RecordError(RunError):
    """A recording could not be made or read; the message says why and what to do."""


def _need_mcap() -> None:
    """RecordError saying how to install the `mcap` package when it is not there (a car without the extra)."""
    try:
        import mcap  # noqa: F401
    except ImportError:
        raise RecordError(
            "recording needs the `mcap` package: pip install 'smartcar[record]' (or `pip install mcap`)"
        ) from None


class Ended(enum.Enum):
    """Why a recording stopped."""

    RUN_ENDED = "run ended"  # every part's run ended (its streams closed, STOP, or its daemon died)
    STOPPED = "stopped"  # Ctrl-C, SIGTERM
    DURATION = "duration reached"


@dataclass
class Written:
    """What one channel got."""

    topic: str
    schema: str
    messages: int = 0
    bytes: int = 0


@dataclass
class Recording:
    """What a recording wrote: its channels, what it lost, and why it stopped."""

    path: str
    channels: dict[str, Written] = field(default_factory=dict)
    dropped: int = 0
    unwritable: int = 0  # messages that did not fit their channel's kind (an output that changed type)
    ended_by: Ended | None = None

    @property
    def messages(self) -> int:
        """Messages written, on every channel."""
        return sum(c.messages for c in self.channels.values())


class McapSink:
    """An MCAP file being written (by one thread): channels made as outputs first send."""

    def __init__(self, path: Path, compress: str):
        _need_mcap()
        import mcap.writer

        self._compress = compress
        self._file = open(path, "wb")  # noqa: SIM115  # closed by close()
        self._writer = mcap.writer.Writer(self._file, compression=mcap.writer.CompressionType.LZ4)
        self._writer.start(profile="", library="car record")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, mcap_channels.ChannelKind]] = {}
        self.recording = Recording(str(path))

    def describe(self, facts: dict[str, str], dataflow_file: str, launch_env: dict[str, str] | None = None) -> None:
        """The run's facts (`run_facts`) as MCAP metadata, the environment its launch options gave every node
        (`car.launch`: the simulator's track and seed, say) when it has one, and its dataflow file as an attachment
        when it can be read here."""
        now = time.time_ns()
        self._writer.add_metadata("car.run", facts)
        if launch_env:
            self._writer.add_metadata("car.launch", launch_env)
        if dataflow_file:
            try:
                text = Path(dataflow_file).read_bytes()
            except OSError:
                return
            self._writer.add_attachment(now, now, Path(dataflow_file).name, "application/yaml", text)

    def write(self, topic: str, value: Any, metadata: dict[str, Any], stamp_ns: int) -> None:
        """One message on the channel of `topic` (made on its first message)."""
        found = self._channels.get(topic)
        if found is None:
            found = self._channels[topic] = self._channel(topic, mcap_channels.kind_of(value, self._compress))
        channel_id, kind = found
        try:
            data = mcap_channels.encode(kind, value, metadata, stamp_ns, topic.partition("/")[0])
        except (ValueError, TypeError):
            self.recording.unwritable += 1
            return
        written = self.recording.channels[topic]
        self._writer.add_message(channel_id, stamp_ns, data, stamp_ns, written.messages)
        written.messages += 1
        written.bytes += len(data)

    def _channel(self, topic: str, kind: mcap_channels.ChannelKind) -> tuple[int, mcap_channels.ChannelKind]:
        schema_id = self._schemas.get(kind.schema_name)
        if schema_id is None:
            text = json.dumps(kind.schema).encode() if kind.schema is not None else b""
            encoding = "jsonschema" if kind.schema is not None else ""
            schema_id = self._schemas[kind.schema_name] = self._writer.register_schema(kind.schema_name, encoding, text)
        channel_id = self._writer.register_channel(topic, kind.message_encoding, schema_id)
        self.recording.channels[topic] = Written(topic, kind.schema_name)
        return channel_id, kind

    def close(self) -> Recording:
        """Finish the file (its summary and index): it is complete however the recording ended."""
        self._writer.finish()  # type: ignore[no-untyped-call]  # mcap leaves it unannotated
        self._file.close()
        return self.recording


def run_facts(name: str, machines: list[str], dataflow_file: str) -> dict[str, str]:
    """What a recording says of its run: its name, machines, dataflow file, where it was recorded, versions."""
    return {
        "dataflow": name,
        "dataflow_file": str(Path(dataflow_file).resolve()) if dataflow_file else "",
        "machines": ",".join(m or "here" for m in machines),
        "recorded_on": socket.gethostname(),
        "python": platform.python_version(),
        "car": _version(),
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smartcar")
    except PackageNotFoundError:
        return "unknown"


class Received(NamedTuple):
    """A message a receiving thread took from a subscriber, for the writer."""

    topic: str
    value: Any
    metadata: dict[str, Any]
    stamp_ns: int


def record(
    graph: Graph, sources: list[str], sink: McapSink, until: float, stop: threading.Event, begin: bool = False
) -> Recording:
    """Record `sources` (`node/output`s, or every output) of `graph` into `sink` until `until` (monotonic), `stop`
    is set, or every part's run has ended; `begin`: then tell the run to start its nodes (`car launch --record`).

    One thread per part receives, copies arrays out of the senders' shared memory at once (so their slots
    are free again before the sender needs them) and hands them on through one bounded queue; this thread
    encodes and writes. A writer that falls behind loses messages at the queue (counted), never the sender.
    """
    wanted = sources or ["*"]
    plans = graph.sources_by_part(wanted)
    if not plans:
        raise RecordError(f"dataflow `{graph.name}` has none of {', '.join(sources)}")
    subscribers = [Subscriber(mine, part, queue_size=RECORDER_QUEUE) for part, mine in plans]
    if begin:
        for part in graph.parts:
            part.ask(control.Begin(), control.Done)
    pending: queue.Queue[Received] = queue.Queue(RECORDER_QUEUE)
    lost = [0] * len(subscribers)  # one count per receiving thread
    run_ended = [False] * len(subscribers)

    def receive(k: int, sub: Subscriber) -> None:
        open_sources = set(sub.sources)
        gone = False  # the run ended (STOP) or its daemon died
        while not stop.is_set() and time.monotonic() < until and open_sources:
            event = sub.recv(min(0.2, max(0.0, until - time.monotonic())))
            if event is None:
                here = sub.run.local
                gone = sub.finished or (here is not None and not pid_alive(here.pid))
                if gone:
                    break
                continue
            if event.type == "INPUT":
                stamp = event.timestamp.wall_ns if event.timestamp is not None else time.time_ns()
                value = np.array(event.value) if isinstance(event.value, np.ndarray) else event.value
                try:
                    pending.put_nowait(Received(event.id, value, event.metadata, stamp))
                except queue.Full:
                    lost[k] += 1
            elif event.type == "INPUT_CLOSED":
                open_sources.discard(event.id)
        run_ended[k] = gone or not open_sources

    threads = [threading.Thread(target=receive, args=(k, sub), daemon=True) for k, sub in enumerate(subscribers)]
    try:
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads) or not pending.empty():
            try:
                message = pending.get(timeout=0.1)
            except queue.Empty:
                continue
            sink.write(message.topic, message.value, message.metadata, message.stamp_ns)
    finally:
        for thread in threads:
            thread.join()
        for sub in subscribers:
            sink.recording.dropped += sub.dropped
            sub.close()
    recording = sink.recording
    recording.dropped += sum(lost)
    recording.ended_by = Ended.RUN_ENDED if all(run_ended) else Ended.STOPPED if stop.is_set() else Ended.DURATION
    return recording


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def record_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car record`."""
    parser.add_argument("dataflow", nargs="?", help="the running dataflow's name (default: the only one running)")
    parser.add_argument("--output", "-o", required=True, metavar="FILE.mcap", help="the MCAP file to write")
    parser.add_argument("--topics", nargs="+", default=[], metavar="NODE/OUTPUT", help="only these (default: all)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (default: Ctrl-C or the end)")
    parser.add_argument("--compress", choices=["jpeg"], default="", help="images as JPEG (foxglove.CompressedImage)")
    parser.add_argument("--begin", action="store_true", help=argparse.SUPPRESS)  # `car launch --record` waits for it
    coordinator_option(parser)


def check_output(path: Path) -> None:
    """RecordError unless `path` is a FILE.mcap in a folder that exists."""
    if path.suffix != ".mcap":
        raise RecordError(f"{path}: name the file FILE.mcap (Foxglove and `car info` go by the suffix)")
    if not path.parent.is_dir():
        raise RecordError(f"{path}: the folder {path.parent} does not exist")


def start_recorder(run: str, path: Path, topics: list[str]) -> subprocess.Popen[bytes]:
    """`car record` of the launched run `run` (held until it subscribed: `Begin`), in a session of its own, so that
    Ctrl-C stops the run, whose end then ends the recording, rather than the recorder first."""
    command = [sys.executable, "-m", "car", "record", run, "-o", str(path), "--begin"]
    return subprocess.Popen(command + (["--topics", *topics] if topics else []), start_new_session=True)


def finish_recorder(recorder: subprocess.Popen[bytes]) -> int:
    """Wait for a recorder started by `start_recorder` to finish its file after the run ended."""
    try:
        return recorder.wait(timeout=30)
    except subprocess.TimeoutExpired:
        recorder.terminate()  # it finishes the file on SIGTERM too
        return recorder.wait(timeout=30)


def cmd_record(args: argparse.Namespace) -> int:
    """Record a running graph's outputs into an MCAP file."""
    path = Path(args.output)
    check_output(path)
    graph = find_graph(args.dataflow, args.coordinator_addr)
    dataflow_file = graph.parts[0].local.dataflow if graph.parts[0].local is not None else ""
    stop = threading.Event()
    until = time.monotonic() + args.duration if args.duration else float("inf")
    launch_env = graph.launch_env()
    sink = McapSink(path, args.compress)
    try:
        facts = run_facts(graph.name, [p.machine for p in graph.parts], dataflow_file)
        sink.describe(facts, dataflow_file, launch_env)
        print(f"recording {graph.name} into {path} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        with _stop_on_signals(stop):
            recording = record(graph, args.topics, sink, until, stop, args.begin)
    finally:
        recording = sink.close()
    lost = f"; lost {recording.dropped} (the recorder fell behind)" if recording.dropped else "; none lost"
    odd = f"; {recording.unwritable} did not fit their channel" if recording.unwritable else ""
    print(
        f"recorded {recording.messages} messages on {len(recording.channels)} channels into {path} "
        f"({(recording.ended_by or Ended.STOPPED).value}){lost}{odd}",
        file=sys.stderr,
    )
    return 0


# -- car info ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelInfo:
    """One channel of a recording, as `car info` shows it."""

    topic: str
    schema: str
    encoding: str
    messages: int
    rate_hz: float
    mean_bytes: int


def describe_file(path: Path, sizes: bool = True) -> dict[str, Any]:
    """A recording's duration, metadata, attachments and channels (counts, rates, and unless not `sizes`, which
    reads every message, their mean size)."""
    _need_mcap()
    import mcap.exceptions
    import mcap.reader

    try:
        with open(path, "rb") as stream:
            reader = mcap.reader.make_reader(stream)
            summary = reader.get_summary()
            total: dict[int, int] = {}
            for _, channel, message in reader.iter_messages() if sizes else ():
                total[channel.id] = total.get(channel.id, 0) + len(message.data)
            metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
            attachments = [a.name for a in reader.iter_attachments()]
    except FileNotFoundError:
        raise RecordError(f"{path}: no such file") from None
    except (OSError, ValueError, mcap.exceptions.McapError) as exc:
        raise RecordError(f"{path} is not a complete MCAP file ({exc})") from None
    if summary is None or summary.statistics is None:
        raise RecordError(f"{path} has no summary: it was not finished (a recorder that was killed?)")
    stats = summary.statistics
    duration = max(0.0, (stats.message_end_time - stats.message_start_time) / 1e9)
    channels = []
    for channel_id, channel in sorted(summary.channels.items()):
        count = stats.channel_message_counts.get(channel_id, 0)
        schema = summary.schemas.get(channel.schema_id)
        channels.append(
            ChannelInfo(
                channel.topic,
                schema.name if schema is not None else "",
                channel.message_encoding,
                count,
                round(count / duration, 2) if duration > 0 else 0.0,
                total.get(channel_id, 0) // count if count else 0,
            )
        )
    return {
        "path": str(path),
        "duration_s": round(duration, 3),
        "start_ns": stats.message_start_time,
        "messages": stats.message_count,
        "metadata": metadata,
        "attachments": attachments,
        "channels": [asdict(c) for c in channels],
    }


def info_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car info`."""
    parser.add_argument("file", metavar="FILE.mcap")
    parser.add_argument("--json", action="store_true")


def cmd_info(args: argparse.Namespace) -> int:
    """Show what a recording holds."""
    info = describe_file(Path(args.file))
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"File: {info['path']}")
    print(f"Duration: {info['duration_s']:.3f} s, {info['messages']} messages")
    for name, facts in info["metadata"].items():
        print(f"Metadata {name}: " + ", ".join(f"{k}={v}" for k, v in facts.items()))
    print(f"Attachments: {', '.join(info['attachments']) or 'none'}")
    width = max([len("CHANNEL"), *(len(c["topic"]) for c in info["channels"])])
    print(f"{'CHANNEL':<{width}}  {'SCHEMA':<24} {'MESSAGES':>9} {'RATE':>10} {'SIZE':>10}")
    for c in info["channels"]:
        print(
            f"{c['topic']:<{width}}  {c['schema']:<24} {c['messages']:>9} {c['rate_hz']:>7.1f} Hz {c['mean_bytes']:>8} B"
        )
    return 0
