"""`car`, dora and bare pyzmq side by side: the same pipelines, interleaved, in one run.

With `--peers car,dora,zmq,iceoryx2` it also runs the latency cases on iceoryx2 (a
zero-copy middleware with a compiled core, driven from Python; no throughput case): a
reference for what this machine allows, installed on demand into bench/.iceoryx2-venv.

Cases (see latency.py): small_1hop, small_2hop (64 B at 200 Hz), frame_1hop, frame_2hop
(921,600 B arrays at 30 Hz), each a timer-driven source -> [relay ->] sink in separate
processes; and throughput (64 B messages, the sender as fast as it can, between two nodes).
frame_1hop_loaned: the source writes each frame into a buffer the framework lends it in
shared memory (car: `Node.allocate_output`, dora: `send_output_raw`), so the send copies
nothing; bare pyzmq has no such thing (its row shows a dash).
frame_1hop_raw (car only): dora's own source (peers/dora/source.py) writing each frame into the buffer of
dora's `send_output_raw`, run by car; its dora counterpart is dora's frame_1hop_loaned row (the same nodes).
frame_1hop_subscribed (car only): frame_1hop with a subscriber (car.node.subscriber, a
process of its own) joined to the source's frames; the row is the sink's latency (what
a subscriber costs the graph: ratio frame_subscribed_sink_p50_added_us), and
frame_subscriber_p50_us the subscriber's own.
arrow_uint8_1hop, arrow_struct_1hop (car and dora): dora's own benchmark nodes
(peers/dora/source.py, sink.py), run unchanged by both: a 921,600 B pyarrow UInt8Array at
30 Hz, and a 100-element struct array (double, int64, string) at 200 Hz.
Operators (car only, bench/operators.py, in every repetition): an operator-to-operator hop against the
same operators as two nodes (a process hop) and against small_1hop, a 3-stage chain as operators against
the same chain as nodes, an operator restarted in place against a node restarted, and Python-bound work in
two operators of one node against two nodes (the GIL).
Every peer stamps perf_counter_ns() just before the send (car and dora in the metadata,
pyzmq in the payload) and the receiver subtracts it from its own perf_counter_ns().
Sources send nothing during a 0.5 s warm-up, and the first 10 samples are dropped.

The machine is shared and noisy: every case runs --repeat times, the peers interleaved
(their order rotates from one repetition to the next), and each figure is the median
over the repetitions. dora (1.x) is installed on demand into bench/.dora-venv; without
network, or when that fails, it says so and measures the others.

--pin puts every peer's nodes on CPUs the same way: source (and throughput sender) on
CPU 0, relay on CPU 1, sink (and throughput receiver) on the CPU its sender is not on;
`car` through the dataflow's `cpu_affinity`, pyzmq by starting its processes pinned,
dora's nodes by pinning themselves before `Node()`. Without it the kernel places them.

`--json` prints one object:
  machine, repeat, seconds, count, peers, pinned, and dora and iceoryx2 (version, why it is
    missing, or "not asked for")
  cases.<case>.<peer>: p50_us, p99_us (medians over repetitions), runs (every run)
  throughput.<peer>: msgs_per_s delivered, sent, received, dropped (car counts its drops;
    dora's are sent - received; pyzmq blocks the sender instead)
  operators: cases (operator_hop, operator_process_hop, chain3_operators, chain3_nodes), restart (operator_ms,
    node_ms), gil (operators_handled_share, nodes_handled_share), ratios (operator_hop_over_process_hop,
    operator_hop_over_node_hop, chain3_operators_over_nodes, operator_restart_over_node_restart)
  ratios: small_p50_car_over_dora, frame_p50_car_over_dora, small_p50_car_over_zmq,
    frame_p50_car_over_zmq, frame_loaned_p50_car_over_dora (both zero-copy sends),
    frame_loaned_p50_car_over_zmq (over pyzmq's copied frames), frame_raw_p50_car_over_dora,
    throughput_car_over_dora, throughput_car_over_zmq,
    arrow_uint8_p50_car_over_dora, arrow_struct_p50_car_over_dora,
    small_2hop_added_us, frame_2hop_added_us (car: 2-hop p50 minus 1-hop p50),
    small_p50_car_over_iceoryx2, frame_p50_car_over_iceoryx2, frame_loaned_p50_car_over_iceoryx2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

import machines
import operators
from common import machine, sink_report
from latency import (
    ARROW_CASES,
    CASES,
    FRAME,
    LOANED_CASE,
    RAW_CASE,
    SMALL,
    SUBSCRIBED_CASE,
    WARMUP_S,
    car_arrow,
    car_latency,
    car_subscribed,
    car_throughput,
    zmq_latency,
    zmq_throughput,
)
from peers import iceoryx2_runner as iceoryx2
from peers import venv
from peers.dora import runner as dora

from car.daemon import affinity

PEERS = ("car", "dora", "zmq", "iceoryx2")
DEFAULT_PEERS = "car,dora,zmq"
INSTALLED = {"dora": dora.ensure, "iceoryx2": iceoryx2.ensure}  # peers installed on demand
PINNED = "every peer's nodes pinned alike: source CPU 0, relay CPU 1, sink on the other CPU from its sender"


def dora_latency(
    size: int, hz: int, hops: int, seconds: float, loaned: bool = False, pinned: bool = False
) -> dict[str, Any]:
    """One run through dora."""
    return sink_report(dora.latency(size, hz, hops, seconds, WARMUP_S, loaned, pinned))


def dora_arrow(arrow: str, size: int, hz: int, seconds: float, pinned: bool = False) -> dict[str, Any]:
    """One run of an Arrow payload through dora (the same nodes `car` runs for this case)."""
    return sink_report(dora.latency(size, hz, 1, seconds, WARMUP_S, pinned=pinned, arrow=arrow))


def iceoryx2_latency(
    size: int, hz: int, hops: int, seconds: float, loaned: bool = False, pinned: bool = False
) -> dict[str, Any]:
    """One run through iceoryx2."""
    return sink_report(iceoryx2.latency(size, hz, hops, seconds, WARMUP_S, loaned, pinned))


def dora_throughput(count: int, pinned: bool = False) -> dict[str, Any]:
    """Small messages as fast as a dora node can send them."""
    result = dora.throughput(SMALL, count, pinned)
    span = max(result["last_ns"] - result["first_ns"], 1)
    return {
        "msgs_per_s": round(result["received"] * 1e9 / span),
        "sent": count,
        "received": result["received"],
        "dropped": count - result["received"],
    }


# Each runner takes `pinned` as a keyword (see --pin).
LATENCY: dict[str, Callable[..., dict[str, Any]]] = {  # (size, hz, hops, seconds)
    "car": car_latency,
    "dora": dora_latency,
    "zmq": zmq_latency,
    "iceoryx2": iceoryx2_latency,
}
LOANED: dict[str, Callable[..., dict[str, Any]]] = {  # zero-copy sends: (size, hz, hops, seconds, loaned)
    "car": car_latency,
    "dora": dora_latency,
    "iceoryx2": iceoryx2_latency,
}
ARROW: dict[str, Callable[..., dict[str, Any]]] = {  # dora's nodes, pyarrow payloads: (arrow, size, hz, seconds)
    "car": car_arrow,
    "dora": dora_arrow,
}
THROUGHPUT: dict[str, Callable[..., dict[str, Any]]] = {  # (count)
    "car": car_throughput,
    "dora": dora_throughput,
    "zmq": zmq_throughput,
}


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


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b to 3 places, or None when either is missing."""
    return round(a / b, 3) if a and b else None


def measure(
    peers: list[str],
    repeat: int,
    seconds: float,
    count: int,
    pinned: bool = False,
    split: bool = True,
    netns: bool = False,
    with_operators: bool = True,
) -> dict[str, Any]:
    """Run every case for every peer, interleaved (`with_operators`: operators.py's too); the report `--json` prints."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {case: {p: [] for p in peers} for case in CASES}
    throughput: dict[str, list[dict[str, Any]]] = {p: [] for p in peers if p in THROUGHPUT}
    split_runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    split_throughput: dict[str, list[dict[str, Any]]] = {}
    netns_note = "not asked for"
    operator_runs: list[dict[str, Any]] = []
    for rep in range(repeat):
        if split and "car" in peers:  # two daemons on this host, tcp:// between them (bench/machines.py)
            found = machines.measure(seconds, machines.SPLIT_COUNT, "dora" in peers, netns=netns)
            for case, by_peer in found["cases"].items():
                for peer, result in by_peer.items():
                    split_runs.setdefault(case, {}).setdefault(peer, []).append(result)
            for peer, result in found["throughput"].items():
                split_throughput.setdefault(peer, []).append(result)
            netns_note = found["netns"]
        order = peers[rep % len(peers) :] + peers[: rep % len(peers)]
        for case, (size, hz, hops) in CASES.items():
            for peer in order:
                runs[case][peer].append(LATENCY[peer](size, hz, hops, seconds, pinned=pinned))
        for peer in order:
            if peer in LOANED:
                loaned = LOANED[peer](FRAME, 30, 1, seconds, True, pinned=pinned)
                runs.setdefault(LOANED_CASE, {}).setdefault(peer, []).append(loaned)
        if "car" in peers:
            runs.setdefault(SUBSCRIBED_CASE, {}).setdefault("car", []).append(car_subscribed(seconds, pinned=pinned))
            raw = car_arrow("uint8", FRAME, 30, seconds, pinned=pinned, loaned=True)
            runs.setdefault(RAW_CASE, {}).setdefault("car", []).append(raw)
        for case, (arrow, size, hz) in ARROW_CASES.items():
            for peer in order:
                if peer in ARROW:
                    result = ARROW[peer](arrow, size, hz, seconds, pinned=pinned)
                    runs.setdefault(case, {}).setdefault(peer, []).append(result)
        for peer in order:
            if peer in throughput:
                throughput[peer].append(THROUGHPUT[peer](count, pinned=pinned))
        if "car" in peers and with_operators:  # operators (car.operators) against nodes: bench/operators.py
            operator_runs.append(operators.measure_once(seconds))
    cases = {case: {peer: summarise(results) for peer, results in by_peer.items()} for case, by_peer in runs.items()}
    best = {peer: median_run(results) for peer, results in throughput.items()}

    def p50(case: str, peer: str) -> float | None:
        return cases[case][peer]["p50_us"] if peer in cases.get(case, {}) else None

    def rate(peer: str) -> float | None:
        return best[peer]["msgs_per_s"] if peer in best else None

    car_small, car_frame, car_loaned = p50("small_1hop", "car"), p50("frame_1hop", "car"), p50(LOANED_CASE, "car")
    added = {}
    if "car" in peers:
        for kind in ("small", "frame"):
            extra = cases[f"{kind}_2hop"]["car"]["p50_us"] - cases[f"{kind}_1hop"]["car"]["p50_us"]
            added[f"{kind}_2hop_added_us"] = round(extra, 1)
        subscribed = runs[SUBSCRIBED_CASE]["car"]
        added["frame_subscribed_sink_p50_added_us"] = round(cases[SUBSCRIBED_CASE]["car"]["p50_us"] - car_frame, 1)
        added["frame_subscriber_p50_us"] = round(statistics.median(r["subscriber"]["p50_us"] for r in subscribed), 1)
        added["frame_subscriber_dropped"] = sum(r["subscriber_dropped"] for r in subscribed)
    split_cases = {case: {p: summarise(r) for p, r in by_peer.items()} for case, by_peer in split_runs.items()}
    split_best = {peer: median_run(results) for peer, results in split_throughput.items()}

    def split_p50(case: str, peer: str) -> float | None:
        return split_cases[case][peer]["p50_us"] if peer in split_cases.get(case, {}) else None

    def split_rate(peer: str) -> float | None:
        return split_best[peer]["msgs_per_s"] if peer in split_best else None

    operator_report = operators.summarise(operator_runs) if operator_runs else {}
    if operator_report:
        operator_report["ratios"]["operator_hop_over_node_hop"] = ratio(
            operator_report["cases"]["operator_hop"]["p50_us"], car_small
        )
    return {
        "cases": cases,
        "throughput": best,
        "operators": operator_report,
        "machines": {"cases": split_cases, "throughput": split_best, "netns": netns_note},
        "ratios": {
            "small_split_p50_car_over_dora": ratio(split_p50("small_split", "car"), split_p50("small_split", "dora")),
            "frame_split_p50_car_over_dora": ratio(split_p50("frame_split", "car"), split_p50("frame_split", "dora")),
            "frame_split_p50_keys_over_plain": ratio(
                split_p50("frame_split", "car_keys"), split_p50("frame_split", "car")
            ),
            "throughput_split_car_over_dora": ratio(split_rate("car"), split_rate("dora")),
            "small_p50_car_over_dora": ratio(car_small, p50("small_1hop", "dora")),
            "frame_p50_car_over_dora": ratio(car_frame, p50("frame_1hop", "dora")),
            "small_p50_car_over_zmq": ratio(car_small, p50("small_1hop", "zmq")),
            "frame_p50_car_over_zmq": ratio(car_frame, p50("frame_1hop", "zmq")),
            "frame_loaned_p50_car_over_dora": ratio(car_loaned, p50(LOANED_CASE, "dora")),
            "frame_loaned_p50_car_over_zmq": ratio(car_loaned, p50("frame_1hop", "zmq")),
            "frame_raw_p50_car_over_dora": ratio(p50(RAW_CASE, "car"), p50(LOANED_CASE, "dora")),
            "throughput_car_over_dora": ratio(rate("car"), rate("dora")),
            "throughput_car_over_zmq": ratio(rate("car"), rate("zmq")),
            **added,
            "small_p50_car_over_iceoryx2": ratio(car_small, p50("small_1hop", "iceoryx2")),
            "frame_p50_car_over_iceoryx2": ratio(car_frame, p50("frame_1hop", "iceoryx2")),
            "frame_loaned_p50_car_over_iceoryx2": ratio(car_loaned, p50(LOANED_CASE, "iceoryx2")),
            "arrow_uint8_p50_car_over_dora": ratio(p50("arrow_uint8_1hop", "car"), p50("arrow_uint8_1hop", "dora")),
            "arrow_struct_p50_car_over_dora": ratio(p50("arrow_struct_1hop", "car"), p50("arrow_struct_1hop", "dora")),
        },
    }


def print_table(report: dict[str, Any]) -> None:
    """The report as a table."""
    peers = report["peers"]
    info = report["machine"]
    print(
        f"{info['date']}, {info['cpus']} CPUs, Python {info['python']}; medians of {report['repeat']} interleaved runs"
    )
    print(PINNED if report["pinned"] else "nodes not pinned: the kernel places them")
    for name in INSTALLED:
        if str(report[name]).startswith("unavailable"):
            print(f"{name}: {report[name]}")
    head = "".join(f" {p + ' p50':>13} {p + ' p99':>13}" for p in peers)
    ratios = [p for p in PEERS[1:] if p in peers and "car" in peers]
    print(f"{'case':<18}{head}" + "".join(f" {'car/' + p:>13}" for p in ratios) + "   (µs)")
    for case, row in report["cases"].items():
        cells = "".join(
            f" {row[p]['p50_us']:>13.1f} {row[p]['p99_us']:>13.1f}" if p in row else f" {'-':>13} {'-':>13}"
            for p in peers
        )
        frames = report["cases"]["frame_1hop"]  # pyzmq's loaned row: its frames, copied
        against = {p: row.get(p) or (frames[p] if case == LOANED_CASE else None) for p in ratios}
        shares = "".join(
            f" {row['car']['p50_us'] / theirs['p50_us']:>13.2f}" if theirs else f" {'-':>13}"
            for theirs in against.values()
        )
        print(f"{case:<18}{cells}{shares}")
    for peer, tp in report["throughput"].items():
        print(
            f"throughput {peer:<4} {tp['msgs_per_s']:>10,} msg/s delivered "
            f"({tp['received']:,} of {tp['sent']:,} received, {tp['dropped']:,} dropped)"
        )
    split = report["machines"]
    if split["cases"]:
        print("across machines (two daemons on this host, node to node over tcp://; car_keys: CurveZMQ):")
        machines.print_rows(split["cases"], split["throughput"])
        if split["netns"]:
            print(f"across network namespaces: {split['netns']}")
    if report["operators"]:
        print("operators (car.operators; operator_hop_over_node_hop is against small_1hop):")
        operators.print_rows(report["operators"])
    named = {k: v for k, v in report["ratios"].items() if v is not None}
    print("ratios: " + ", ".join(f"{k} {v}" for k, v in named.items()))


def main(default_peers: str = DEFAULT_PEERS) -> None:
    """Parse the command line, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", default=default_peers, help=f"comma-separated, of {', '.join(PEERS)}")
    parser.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="of messages in each latency run, at its rate, after its warm-up (default 5)",
    )
    parser.add_argument("--count", type=int, default=200_000, help="messages in each throughput run")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of every case (default 3)")
    parser.add_argument("--pin", action="store_true", help=f"{PINNED} (needs 2 CPUs)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--no-machines", action="store_true", help="leave out the cross-machine cases (machines.py)")
    parser.add_argument("--netns", action="store_true", help="cross-machine cases across network namespaces too (root)")
    parser.add_argument("--no-operators", action="store_true", help="leave out the operator cases (operators.py)")
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}: choose from {', '.join(PEERS)}")
    if args.pin and len(affinity.usable_cpus() or ()) < 2:
        parser.error("--pin needs a system that pins processes and 2 CPUs to put the nodes on")
    states = {name: "not asked for" for name in INSTALLED}
    for name, ensure in INSTALLED.items():
        if name in peers:
            try:
                states[name] = ensure()
            except venv.PeerUnavailable as exc:
                states[name] = f"unavailable: {exc}"
                peers.remove(name)
                print(f"compare.py: {name} is {states[name]}; measuring {', '.join(peers)}", file=sys.stderr)
    report = {
        "machine": machine(),
        "repeat": args.repeat,
        "seconds": args.seconds,
        "count": args.count,
        "peers": peers,
        **states,
        "pinned": args.pin,
        **measure(
            peers,
            args.repeat,
            args.seconds,
            args.count,
            args.pin,
            not args.no_machines,
            args.netns,
            not args.no_operators,
        ),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
