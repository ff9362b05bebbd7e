"""Operators (car.operators) against nodes: the same code as tasks of one runtime process, and as processes.

Cases, each run through `car` (compare.py runs them in its repetitions; alone: `python bench/operators.py`):

  operator_hop          64 B at 200 Hz, source -> sink, two operators of one node
  operator_process_hop  the same two operators, each a node of its own (a process hop)
  chain3_operators      source -> relay -> sink, three operators of one node
  chain3_nodes          the same three, each a node of its own
  restart               an operator that raises, restarted in place (restart_policy: on-failure), against
                        the same code as a node the daemon restarts: from the failure to the new instance's
                        first event (ms), with 1 ms ticks (so up to 1 ms of each figure is waiting for a tick)
  gil                   two operators doing pure-Python work (7 ms per tick at 100 Hz each, 140 % of a CPU
                        together) in one node, against the same two as nodes: the share of ticks each handled
                        while it ran (about 1 / 1.4 = 71 % at most in one process).
                        Python's GIL runs one thread's bytecode at a time, so operators share one CPU for
                        Python work; nodes have a CPU each.

The operators' code is bench/nodes/op_*.py (dora's operator API). `--json` prints
{"cases": {case: {p50_us, p99_us, runs}}, "restart": {...}, "gil": {...}, "ratios": {...}}.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from common import messages, read_json, run_car, sink_report

WARMUP_S = 0.5
RESTART_RUN_S = 2.0
HOP_HZ = 200  # the hop cases' rate
HOP_CASES = ("operator_hop", "operator_process_hop", "chain3_operators", "chain3_nodes")

_STAGES = {  # stage -> (its operator file, its input, or "" for the timer)
    "source": ("op_source.py", ""),
    "relay": ("op_relay.py", "source"),
    "sink": ("op_sink.py", "relay"),
}


def pipeline_flow(stages: list[str], together: bool, count: int) -> str:
    """`stages` (source, [relay,] sink) as operators of one node, or each a single-operator node; the source sends
    `count` messages after its warm-up, then the run ends."""
    env = (
        f'env: {{BENCH_SIZE: "64", BENCH_OUT: "@OUT/sink.json", BENCH_WARMUP_S: "{WARMUP_S}", BENCH_COUNT: "{count}"}}'
    )
    lines = [env, "nodes:"]
    if together:
        lines += ["  - id: pipeline", "    operators:"]
    previous = ""
    for stage in stages:
        file, _ = _STAGES[stage]
        source = (
            f"dora/timer/hz/{HOP_HZ}"
            if not previous
            else f"pipeline/{previous}/data"
            if together
            else f"{previous}/data"
        )
        outputs = "[data]" if stage != "sink" else "[]"
        if together:
            lines += [f"      - id: {stage}", f"        python: @NODES/{file}"]
            lines += [f"        inputs: {{x: {source}}}", f"        outputs: {outputs}"]
        else:
            lines += [f"  - id: {stage}", "    operator:", f"      python: @NODES/{file}"]
            lines += [f"      inputs: {{x: {source}}}", f"      outputs: {outputs}"]
        previous = stage
    return "\n".join(lines) + "\n"


def hop(case: str, seconds: float) -> dict[str, Any]:
    """One run of a latency case: p50/p99/max."""
    stages = ["source", "relay", "sink"] if case.startswith("chain3") else ["source", "sink"]
    together = case in ("operator_hop", "chain3_operators")
    folder = run_car(pipeline_flow(stages, together, messages(seconds, HOP_HZ)), duration=None)
    return sink_report(folder / "sink.json")


RESTART_FLOW = """
nodes:
  - id: victim
    restart_policy: on-failure
    env: {{BENCH_OUT: "@OUT/restart.json", BENCH_FAIL_AT: "200"}}
{body}"""
AS_OPERATOR = """    operator:
      python: @NODES/op_victim.py
      inputs: {tick: dora/timer/millis/1}
"""
AS_NODE = """    path: @NODES/op_victim.py
    inputs: {tick: dora/timer/millis/1}
"""


def restart(as_operator: bool) -> float:
    """Milliseconds from an operator's failure to its next instance's first event (as an operator, or a node)."""
    folder = run_car(RESTART_FLOW.format(body=AS_OPERATOR if as_operator else AS_NODE), duration=RESTART_RUN_S)
    found = read_json(folder / "restart.json")
    if "back_ns" not in found:
        raise RuntimeError(f"the victim was not back within {RESTART_RUN_S} s ({folder})")
    return round((found["back_ns"] - found["failed_ns"]) / 1e6, 3)


GIL_HZ = 100
GIL_FLOW_TOGETHER = """
env: {BENCH_OUT_DIR: "@OUT", BENCH_WARMUP_S: "0.5", BENCH_BUSY_MS: "7"}
nodes:
  - id: busy
    operators:
      - id: a
        python: @NODES/op_busy.py
        inputs: {tick: dora/timer/hz/100}
      - id: b
        python: @NODES/op_busy.py
        inputs: {tick: dora/timer/hz/100}
"""
GIL_FLOW_APART = """
env: {BENCH_OUT_DIR: "@OUT", BENCH_WARMUP_S: "0.5", BENCH_BUSY_MS: "7"}
nodes:
  - id: a
    operator: {python: @NODES/op_busy.py, inputs: {tick: dora/timer/hz/100}}
  - id: b
    operator: {python: @NODES/op_busy.py, inputs: {tick: dora/timer/hz/100}}
"""


def gil(together: bool, seconds: float) -> float:
    """The share of their ticks two Python-bound operators handled (one node, or two)."""
    folder = run_car(GIL_FLOW_TOGETHER if together else GIL_FLOW_APART, duration=seconds + WARMUP_S)
    found = [read_json(path) for path in sorted(Path(folder).glob("busy-*.json"))]
    if len(found) != 2 or not all(f["seconds"] > 0 for f in found):
        raise RuntimeError(f"expected two counts, found {found} ({folder})")
    return round(statistics.mean(f["handled"] / (GIL_HZ * f["seconds"] + 1) for f in found), 3)


def measure_once(seconds: float) -> dict[str, Any]:
    """One run of every case (the hops interleaved)."""
    return {
        "cases": {case: hop(case, seconds) for case in HOP_CASES},
        "restart": {"operator_ms": restart(True), "node_ms": restart(False)},
        "gil": {"operators_handled_share": gil(True, seconds), "nodes_handled_share": gil(False, seconds)},
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repetitions of `measure_once`, and the ratios."""

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    cases = {
        case: {
            "p50_us": median([r["cases"][case]["p50_us"] for r in runs]),
            "p99_us": median([r["cases"][case]["p99_us"] for r in runs]),
            "runs": [r["cases"][case] for r in runs],
        }
        for case in HOP_CASES
    }
    restart = {key: median([r["restart"][key] for r in runs]) for key in ("operator_ms", "node_ms")}
    shares = {key: median([r["gil"][key] for r in runs]) for key in ("operators_handled_share", "nodes_handled_share")}
    p50 = {case: cases[case]["p50_us"] for case in HOP_CASES}
    return {
        "cases": cases,
        "restart": restart,
        "gil": shares,
        "ratios": {
            "operator_hop_over_process_hop": round(p50["operator_hop"] / p50["operator_process_hop"], 3),
            "chain3_operators_over_nodes": round(p50["chain3_operators"] / p50["chain3_nodes"], 3),
            "operator_restart_over_node_restart": round(restart["operator_ms"] / restart["node_ms"], 4),
        },
    }


def print_rows(report: dict[str, Any]) -> None:
    """The operator cases as lines of a table."""
    for case, row in report["cases"].items():
        print(f"{case:<22} p50 {row['p50_us']:>8.1f} µs   p99 {row['p99_us']:>8.1f} µs")
    restart = report["restart"]
    print(f"restart: an operator in place {restart['operator_ms']:.2f} ms, a node {restart['node_ms']:.1f} ms")
    shares = report["gil"]
    print(
        f"Python-bound work (GIL): two operators of one node handled {shares['operators_handled_share']:.0%} of their "
        f"ticks, the same as two nodes {shares['nodes_handled_share']:.0%}"
    )
    print("ratios: " + ", ".join(f"{k} {v}" for k, v in report["ratios"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = summarise([measure_once(args.seconds) for _ in range(args.repeat)])
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_rows(report)


if __name__ == "__main__":
    main()
