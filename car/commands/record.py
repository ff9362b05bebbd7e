"""`car record [-d NAME] -o FILE.mcap` and `car info FILE.mcap`: keep a running graph's messages, see what was kept.

`car record` joins a running graph as a subscriber (one per machine's part, each a
thread; car.node.subscriber) and writes every message of the outputs asked for (default:
all) into an MCAP file with the `mcap` library: one channel per `node/output`, the
message's timestamp (its hybrid logical clock's wall time) as log and publish time, the
encodings of car.recording.channels (written by car.recording.sink), and the dataflow file and the run's facts as an
attachment and metadata. It never slows the graph: a recorder that falls behind loses
messages (a bounded queue between its receiving threads and its writer), counts them and says so at the end.
Its frames are kept for it in the senders' shared memory while their rings can grow
(`keep_frames`), so a busy machine does not cost it frames. It stops at
Ctrl-C, after `--duration`, or when the run ends, and always leaves a complete file.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from car.commands.common import coordinator_option, dataflow_option
from car.node.subscriber import Subscriber
from car.plan.running import RunningGraph, find_graph
from car.plan.runs import pid_alive
from car.recording.sink import Ended, McapSink, RecordError, Recording, check_output, describe_file, run_facts
from car.transport import control

RECORDER_QUEUE = 1000  # messages the recorder may fall behind before it loses the newest (counted)
JOIN_S = 15.0  # `car launch --record` holds its nodes this long at most for the recorder to subscribe


class Received(NamedTuple):
    """A message a receiving thread took from a subscriber, for the writer."""

    topic: str
    value: Any
    metadata: dict[str, Any]
    stamp_ns: int


def record(
    graph: RunningGraph, sources: list[str], sink: McapSink, until: float, stop: threading.Event, begin: bool = False
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
    subscribers = [Subscriber(mine, part, queue_size=RECORDER_QUEUE, keep_frames=True) for part, mine in plans]
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
    dataflow_option(parser)
    parser.add_argument("--output", "-o", required=True, metavar="FILE.mcap", help="the MCAP file to write")
    parser.add_argument("--topics", nargs="+", default=[], metavar="NODE/OUTPUT", help="only these (default: all)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (default: Ctrl-C or the end)")
    parser.add_argument("--compress", choices=["jpeg"], default="", help="images as JPEG (foxglove.CompressedImage)")
    parser.add_argument("--begin", action="store_true", help=argparse.SUPPRESS)  # `car launch --record` waits for it
    coordinator_option(parser)


def start_recorder(run: str, path: Path, topics: list[str]) -> subprocess.Popen[bytes]:
    """`car record` of the launched run `run` (held until it subscribed: `Begin`), in a session of its own, so that
    Ctrl-C stops the run, whose end then ends the recording, rather than the recorder first."""
    command = [sys.executable, "-m", "car", "record", "-d", run, "-o", str(path), "--begin"]
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
