"""Node-to-node latency and throughput through `car` and through bare pyzmq: the cases and their runners.

Cases, each run through `car` (timer-driven source -> [relay ->] sink, separate processes)
and through bare pyzmq (sender -> [relay ->] receiver, separate processes):

  small_1hop, small_2hop   64 B messages at 200 Hz
  frame_1hop, frame_2hop   921,600 B (640x480x3) frames at 30 Hz
  throughput               64 B messages, sender as fast as it can
  arrow_uint8_1hop         a 921,600 B pyarrow UInt8Array at 30 Hz (car and dora, dora's own nodes)
  arrow_struct_1hop        a 100-element pyarrow struct array at 200 Hz (idem)

compare.py runs them (`compare.py --peers car,zmq` without dora) and says what it prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    messages,
    percentiles_us,
    pipeline_cpus,
    read_json,
    run_car,
    scratch,
    sink_report,
    start_pinned,
)

SMALL, FRAME = 64, 640 * 480 * 3
WARMUP_S = 0.5  # sources send nothing during their first half second: every peer starts its nodes differently
CASES = {
    "small_1hop": (SMALL, 200, 1),
    "small_2hop": (SMALL, 200, 2),
    "frame_1hop": (FRAME, 30, 1),
    "frame_2hop": (FRAME, 30, 2),
}
# car only: the source writes each frame into an array from Node.allocate_output, so sending copies nothing
LOANED_CASE = "frame_1hop_loaned"
# car only: frame_1hop with a subscriber (car.node.subscriber) joined to the source's output
SUBSCRIBED_CASE = "frame_1hop_subscribed"
# car only: dora's own source sending frames through `send_output_raw` (its zero-copy contract, car.compat.dora.sample);
# dora's row for the same nodes under dora is its frame_1hop_loaned
RAW_CASE = "frame_1hop_raw"
# car and dora, both running dora's Python API (bench/peers/dora/source.py and sink.py, unchanged under car):
# a pyarrow UInt8Array frame, and a 100-element struct array (x: double, y: int64, label: string)
ARROW_CASES = {"arrow_uint8_1hop": ("uint8", FRAME, 30), "arrow_struct_1hop": ("struct", 0, 200)}
DORA_NODES = BENCH / "peers" / "dora"
ARROW_FLOW = """
nodes:
  - id: source
    path: {nodes}/source.py
    inputs: {{tick: dora/timer/hz/{hz}}}
    outputs: [data]
    env: {{BENCH_SIZE: "{size}", BENCH_ARROW: "{arrow}", BENCH_WARMUP_S: "{warmup}", BENCH_LOANED: "{loaned}", BENCH_COUNT: "{count}"{pin_source}}}
  - id: sink
    path: {nodes}/sink.py
    inputs: {{data: source/data}}
    env: {{BENCH_OUT: "@OUT/sink.json"{pin_sink}}}
"""

LATENCY_FLOW = """
env: {{BENCH_SIZE: "{size}", BENCH_OUT: "@OUT/sink.json", BENCH_WARMUP_S: "{warmup}", BENCH_LOANED: "{loaned}", BENCH_COUNT: "{count}"}}
nodes:
  - id: source
    path: @NODES/source.py
    inputs: {{tick: dora/timer/hz/{hz}}}
    outputs: [data]
{pin_source}{relay}  - id: sink
    path: @NODES/sink.py
    inputs: {{data: {upstream}/data}}
{pin_sink}"""
RELAY = """  - id: relay
    path: @NODES/relay.py
    inputs: {{data: source/data}}
    outputs: [data]
{pin_relay}"""
THROUGHPUT_FLOW = """
env: {{BENCH_SIZE: "{size}", BENCH_COUNT: "{count}", BENCH_OUT: "@OUT/count.json"}}
nodes:
  - id: flood
    path: @NODES/flood.py
    inputs: {{go: counter/ready}}
    outputs: [data]
{pin_flood}  - id: counter
    path: @NODES/counter.py
    inputs: {{data: {{source: flood/data, queue_size: 1000}}}}
    outputs: [ready]
{pin_counter}"""


def cpu_line(pinned: bool, position: int) -> str:
    """The `cpu_affinity` line of a pipeline's `position`-th node in a `car` dataflow (none when not pinned)."""
    cpus = pipeline_cpus(pinned, position)
    return f"    cpu_affinity: {list(cpus)}\n" if cpus else ""


def car_latency(
    size: int, hz: int, hops: int, seconds: float, loaned: bool = False, pinned: bool = False, name: str = ""
) -> dict[str, Any]:
    """One run through `car`: p50/p99/max of the latencies (loaned: frames written into allocate_output arrays)."""
    relay, upstream = (RELAY.format(pin_relay=cpu_line(pinned, 1)), "relay") if hops == 2 else ("", "source")
    flow = LATENCY_FLOW.format(
        size=size,
        hz=hz,
        relay=relay,
        upstream=upstream,
        warmup=WARMUP_S,
        loaned=int(loaned),
        count=messages(seconds, hz),
        pin_source=cpu_line(pinned, 0),
        pin_sink=cpu_line(pinned, hops),
    )
    folder = run_car(flow, duration=None, name=name)
    return sink_report(folder / "sink.json")


def car_arrow(
    arrow: str, size: int, hz: int, seconds: float, pinned: bool = False, loaned: bool = False
) -> dict[str, Any]:
    """One run of dora's own benchmark nodes through `car` (its dora API): an Arrow payload, source -> sink
    (`loaned`: frames written into the buffers of dora's `send_output_raw`, RAW_CASE)."""

    def pin(position: int) -> str:
        cpus = pipeline_cpus(pinned, position)
        return f', BENCH_CPUS: "{",".join(map(str, cpus))}"' if cpus else ""

    flow = ARROW_FLOW.format(
        nodes=DORA_NODES,
        hz=hz,
        size=size,
        arrow=arrow,
        warmup=WARMUP_S,
        loaned=int(loaned),
        count=messages(seconds, hz),
        pin_source=pin(0),
        pin_sink=pin(1),
    )
    folder = run_car(flow, duration=None)
    return sink_report(folder / "sink.json")


def car_subscribed(seconds: float, pinned: bool = False) -> dict[str, Any]:
    """frame_1hop through `car` with a subscriber joined to the frames: the sink's latencies, and the subscriber's."""
    name = f"bench-subscribed-{os.getpid()}-{time.monotonic_ns()}"
    with tempfile.TemporaryDirectory(prefix="car-bench-") as folder:
        out = Path(folder) / "subscriber.json"
        probe = subprocess.Popen([sys.executable, str(BENCH / "nodes" / "subscriber_probe.py"), name, str(out)])
        try:
            sink = car_latency(FRAME, 30, 1, seconds, pinned=pinned, name=name)
            probe.wait(timeout=30)
        finally:
            if probe.poll() is None:
                probe.kill()
                probe.wait()
        found = read_json(out)
    return {**sink, "subscriber": percentiles_us(found["latencies_ns"]), "subscriber_dropped": found["dropped"]}


def start_zmq_peer(pinned: bool, position: int, *args: str) -> subprocess.Popen[bytes]:
    """Start one bare-pyzmq process, on the CPU of its place in the pipeline when pinned."""
    return start_pinned([sys.executable, str(BENCH / "peers" / "zmq_peer.py"), *args], pinned, position)


def zmq_latency(size: int, hz: int, hops: int, seconds: float, pinned: bool = False) -> dict[str, Any]:
    """One run through bare pyzmq."""
    folder = scratch("zmq-bench-")
    sink_ep, relay_ep = f"ipc://{folder}/sink.sock", f"ipc://{folder}/relay.sock"
    procs = [start_zmq_peer(pinned, hops, "receiver", sink_ep, str(folder / "out.json"))]
    if hops == 2:
        procs.append(start_zmq_peer(pinned, 1, "relay", relay_ep, sink_ep))
    first = relay_ep if hops == 2 else sink_ep
    procs.append(start_zmq_peer(pinned, 0, "sender", first, str(size), str(hz), str(seconds)))
    for proc in procs:
        proc.wait(timeout=seconds + 60)
    return sink_report(folder / "out.json")


def car_throughput(count: int, pinned: bool = False) -> dict[str, Any]:
    """Small messages as fast as a `car` node can send them; every drop counted."""
    flow = THROUGHPUT_FLOW.format(
        size=SMALL, count=count, pin_flood=cpu_line(pinned, 0), pin_counter=cpu_line(pinned, 1)
    )
    folder = run_car(flow, duration=None)
    receiver = read_json(folder / "count.json")
    sender = read_json(folder / "count.json.sender")
    dropped = sum(receiver["drops"].values()) + sum(sender["drops"].values())
    span = max(receiver["last_ns"] - receiver["first_ns"], 1)
    return {
        "msgs_per_s": round(receiver["received"] * 1e9 / span),
        "sent": sender["sent"],
        "received": receiver["received"],
        "dropped": dropped,
        "accounted": receiver["received"] + dropped == sender["sent"],
    }


def zmq_throughput(count: int, pinned: bool = False) -> dict[str, Any]:
    """The same through bare pyzmq (PUSH blocks the sender instead of dropping)."""
    folder = scratch("zmq-bench-")
    ep = f"ipc://{folder}/count.sock"
    receiver = start_zmq_peer(pinned, 1, "count", ep, str(folder / "out.json"))
    sender = start_zmq_peer(pinned, 0, "flood", ep, str(SMALL), str(count), str(folder / "out.json"))
    sender.wait(timeout=120)
    receiver.wait(timeout=120)
    result = read_json(folder / "out.json")
    span = max(result["last_ns"] - result["first_ns"], 1)
    received = result["received"]
    return {
        "msgs_per_s": round(received * 1e9 / span),
        "sent": count,
        "received": received,
        "dropped": count - received,
    }
