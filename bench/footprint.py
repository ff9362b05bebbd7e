"""Start-up time and memory: how soon a graph runs, and what its nodes cost.

start-up: `car launch` of a 5-node chain (timer -> source -> relay -> relay -> relay -> sink),
  from starting the command to the first message arriving at the last node (the sink
  stamps perf_counter_ns, the same clock as this script's), --repeat times; median and max.
memory: `car launch dataflows/follow_line.yml` headless in real time; after --settle
  seconds, every node process's RSS and PSS (from /proc: PSS shares pages such as
  numpy's and OpenCV's libraries and shared-memory frames among the processes that map
  them, so the PSS of the nodes adds up to what the graph really uses), and the daemon's.

`--json` prints: machine, startup {runs_ms, p50_ms, max_ms}, memory {nodes: {id: {rss_mb,
pss_mb}}, daemon: {...}, total_rss_mb, total_pss_mb}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import BENCH, NODES, machine, scratch

CHAIN = """
nodes:
  - id: source
    path: {nodes}/source.py
    inputs: {{tick: dora/timer/millis/10}}
    outputs: [data]
    env: {{BENCH_SIZE: "64", BENCH_WARMUP_S: "0"}}
{relays}  - id: sink
    path: {nodes}/first_message.py
    inputs: {{data: relay3/data}}
    env: {{BENCH_OUT: "{out}"}}
"""
RELAY = """  - id: relay{k}
    path: {nodes}/relay.py
    inputs: {{data: {upstream}/data}}
    outputs: [data]
"""


def startup_ms(folder: Path) -> float:
    """One launch of the 5-node chain: command start to the sink's first message, in ms."""
    out = folder / "first.json"
    out.unlink(missing_ok=True)
    relays = "".join(
        RELAY.format(k=k, nodes=NODES, upstream="source" if k == 1 else f"relay{k - 1}") for k in (1, 2, 3)
    )
    flow = folder / "chain.yml"
    flow.write_text(CHAIN.format(nodes=NODES, relays=relays, out=out))
    command = [sys.executable, "-m", "car", "launch", str(flow), "--quiet", "--out", str(folder / "out")]
    started = time.perf_counter_ns()
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise SystemExit(f"car launch failed:\n{result.stderr}")
    return (json.loads(out.read_text())["first_ns"] - started) / 1e6


def children(pid: int) -> list[int]:
    """The direct children of a process."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def memory_mb(pid: int) -> dict[str, float]:
    """RSS and PSS of a process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key.lower() + "_mb"] = round(int(rest.split()[0]) / 1024, 1)
    return values


def node_id(pid: int) -> str:
    """The node a process runs (from the configuration the daemon gave it)."""
    for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if item.startswith(b"CAR_NODE_CONFIG="):
            config: dict[str, Any] = json.loads(item.split(b"=", 1)[1])
            return str(config["node_id"])
    return f"pid {pid}"


def follow_line_memory(settle: float) -> dict[str, Any]:
    """Memory of every process of follow_line.yml, sampled once it has run `settle` seconds."""
    flow = BENCH.parent / "dataflows" / "follow_line.yml"
    folder = scratch("car-footprint-")
    command = [sys.executable, "-m", "car", "launch", str(flow), "--headless", "--quiet", "--realtime-factor", "1"]
    command += ["--duration", str(settle + 2), "--out", str(folder / "out")]
    launch = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(settle)
        nodes = {node_id(pid): memory_mb(pid) for pid in children(launch.pid)}
        daemon = memory_mb(launch.pid)
    finally:
        launch.wait(timeout=60)
    return {
        "nodes": nodes,
        "daemon": daemon,
        "total_rss_mb": round(sum(n["rss_mb"] for n in nodes.values()) + daemon["rss_mb"], 1),
        "total_pss_mb": round(sum(n["pss_mb"] for n in nodes.values()) + daemon["pss_mb"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="launches of the 5-node chain (default 5)")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds of follow_line before sampling memory")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = scratch("car-startup-")
    runs = [round(startup_ms(folder), 1) for _ in range(args.repeat)]
    report = {
        "machine": machine(),
        "startup": {"runs_ms": runs, "p50_ms": round(statistics.median(runs), 1), "max_ms": max(runs)},
        "memory": follow_line_memory(args.settle),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    start, memory = report["startup"], report["memory"]
    print(f"{report['machine']['date']}, {report['machine']['cpus']} CPUs")
    print(f"5-node launch to first message at the last node: p50 {start['p50_ms']} ms, max {start['max_ms']} ms")
    print("follow_line.yml memory (MB):      RSS     PSS")
    for name, figures in [*memory["nodes"].items(), ("(daemon: car launch)", memory["daemon"])]:
        print(f"  {name:<28} {figures['rss_mb']:>7} {figures['pss_mb']:>7}")
    print(f"  {'total':<28} {memory['total_rss_mb']:>7} {memory['total_pss_mb']:>7}")


if __name__ == "__main__":
    main()
