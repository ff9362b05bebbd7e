"""Node-to-node latency and throughput through `car`, next to bare pyzmq PUSH/PULL over ipc://.

Cases, each run through `car` (timer-driven source -> [relay ->] sink, separate processes)
and through bare pyzmq (sender -> [relay ->] receiver, separate processes):

  small_1hop, small_2hop   64 B messages at 200 Hz
  frame_1hop, frame_2hop   921,600 B (640x480x3) frames at 30 Hz
  throughput               64 B messages, sender as fast as it can

Latency is perf_counter_ns() at the receiver minus perf_counter_ns() taken just before the
send (carried in metadata for car, in the payload for pyzmq); warm-up samples are dropped.
The machine is shared and noisy, so every case runs --repeat times, car and pyzmq
interleaved, and the figures are the medians over the repetitions.

`--json` prints one object:
  machine: date, cpus, platform, python
  repeat: repetitions per case
  cases.<case>.car / .zmq: p50_us, p99_us (medians over repetitions), runs (each run's figures)
  cases.<case>.ratio_p50: car p50 / zmq p50
  throughput.car: msgs_per_s (delivered), sent, received, dropped (every drop counted)
  throughput.zmq: msgs_per_s, sent, received
  throughput.ratio: car msgs_per_s / zmq msgs_per_s
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import BENCH, machine, percentiles_us, read_json, run_car

SMALL, FRAME = 64, 640 * 480 * 3
CASES = {
    "small_1hop": (SMALL, 200, 1),
    "small_2hop": (SMALL, 200, 2),
    "frame_1hop": (FRAME, 30, 1),
    "frame_2hop": (FRAME, 30, 2),
}

LATENCY_FLOW = """
env: {{BENCH_SIZE: "{size}", BENCH_OUT: "@OUT/sink.json"}}
nodes:
  - id: source
    path: @NODES/source.py
    inputs: {{tick: dora/timer/hz/{hz}}}
    outputs: [data]
{relay}  - id: sink
    path: @NODES/sink.py
    inputs: {{data: {upstream}/data}}
"""
RELAY = """  - id: relay
    path: @NODES/relay.py
    inputs: {data: source/data}
    outputs: [data]
"""
THROUGHPUT_FLOW = """
env: {{BENCH_SIZE: "{size}", BENCH_COUNT: "{count}", BENCH_OUT: "@OUT/count.json"}}
nodes:
  - id: flood
    path: @NODES/flood.py
    inputs: {{go: counter/ready}}
    outputs: [data]
  - id: counter
    path: @NODES/counter.py
    inputs: {{data: {{source: flood/data, queue_size: 1000}}}}
    outputs: [ready]
"""


def car_latency(size: int, hz: int, hops: int, seconds: float) -> dict[str, Any]:
    flow = LATENCY_FLOW.format(
        size=size, hz=hz, relay=RELAY if hops == 2 else "", upstream="relay" if hops == 2 else "source"
    )
    folder = run_car(flow, duration=seconds)
    return percentiles_us(read_json(folder / "sink.json")["latencies_ns"])


def zmq_latency(size: int, hz: int, hops: int, seconds: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="zmq-bench-"))
    peer = [sys.executable, str(BENCH / "peers" / "zmq_peer.py")]
    sink_ep, relay_ep = f"ipc://{folder}/sink.sock", f"ipc://{folder}/relay.sock"
    procs = [subprocess.Popen([*peer, "receiver", sink_ep, str(folder / "out.json")])]
    if hops == 2:
        procs.append(subprocess.Popen([*peer, "relay", relay_ep, sink_ep]))
    first = relay_ep if hops == 2 else sink_ep
    procs.append(subprocess.Popen([*peer, "sender", first, str(size), str(hz), str(seconds)]))
    for proc in procs:
        proc.wait(timeout=seconds + 60)
    return percentiles_us(read_json(folder / "out.json")["latencies_ns"])


def car_throughput(count: int) -> dict[str, Any]:
    folder = run_car(THROUGHPUT_FLOW.format(size=SMALL, count=count), duration=None)
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


def zmq_throughput(count: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="zmq-bench-"))
    peer = [sys.executable, str(BENCH / "peers" / "zmq_peer.py")]
    ep = f"ipc://{folder}/count.sock"
    receiver = subprocess.Popen([*peer, "count", ep, str(folder / "out.json")])
    sender = subprocess.Popen([*peer, "flood", ep, str(SMALL), str(count), str(folder / "out.json")])
    sender.wait(timeout=120)
    receiver.wait(timeout=120)
    result = read_json(folder / "out.json")
    span = max(result["last_ns"] - result["first_ns"], 1)
    return {"msgs_per_s": round(result["received"] * 1e9 / span), "sent": count, "received": result["received"]}


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median p50 and p99 over repeated runs, and the runs themselves."""
    return {
        "p50_us": round(statistics.median(r["p50_us"] for r in results), 1),
        "p99_us": round(statistics.median(r["p99_us"] for r in results), 1),
        "runs": results,
    }


def median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput."""
    return sorted(results, key=lambda r: r["msgs_per_s"])[len(results) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each latency case (default 5)")
    parser.add_argument("--count", type=int, default=200_000, help="messages in the throughput case")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of every case (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()

    report: dict[str, Any] = {"machine": machine(), "repeat": args.repeat, "cases": {}}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {case: {"car": [], "zmq": []} for case in CASES}
    throughput: dict[str, list[dict[str, Any]]] = {"car": [], "zmq": []}
    for _ in range(args.repeat):
        for case, (size, hz, hops) in CASES.items():
            runs[case]["car"].append(car_latency(size, hz, hops, args.seconds))
            runs[case]["zmq"].append(zmq_latency(size, hz, hops, args.seconds))
        throughput["car"].append(car_throughput(args.count))
        throughput["zmq"].append(zmq_throughput(args.count))
    for case, by_peer in runs.items():
        row: dict[str, Any] = {peer: summarise(results) for peer, results in by_peer.items()}
        row["ratio_p50"] = round(row["car"]["p50_us"] / row["zmq"]["p50_us"], 2)
        report["cases"][case] = row
    car_tp, zmq_tp = median_run(throughput["car"]), median_run(throughput["zmq"])
    report["throughput"] = {
        "car": car_tp,
        "zmq": zmq_tp,
        "ratio": round(car_tp["msgs_per_s"] / zmq_tp["msgs_per_s"], 3),
    }

    if args.json:
        print(json.dumps(report, indent=2))
        return
    info = report["machine"]
    print(f"{info['date']}, {info['cpus']} CPUs, Python {info['python']}; medians of {args.repeat} interleaved runs")
    print(f"{'case':<12} {'car p50':>9} {'car p99':>9} {'zmq p50':>9} {'zmq p99':>9} {'car/zmq p50':>12}   (µs)")
    for case, row in report["cases"].items():
        car, zmq = row["car"], row["zmq"]
        print(
            f"{case:<12} {car['p50_us']:>9.1f} {car['p99_us']:>9.1f} {zmq['p50_us']:>9.1f} {zmq['p99_us']:>9.1f} {row['ratio_p50']:>12.2f}"
        )
    tp = report["throughput"]
    print(
        f"throughput   car {tp['car']['msgs_per_s']:,} msg/s delivered ({tp['car']['received']:,} received, "
        f"{tp['car']['dropped']:,} dropped and counted, of {tp['car']['sent']:,}); "
        f"zmq {tp['zmq']['msgs_per_s']:,} msg/s; car/zmq {tp['ratio']:.3f}"
    )


if __name__ == "__main__":
    main()
