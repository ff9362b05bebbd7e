"""Scale, simulated on this host: 16 daemons on loopback, a 64-node graph spread over them.

16 chains of 4 nodes (source -> relay -> relay -> sink), each node on the next daemon, so
that every link crosses machines. It reports the time from `car start` to the first
message at every sink, the coordinator's CPU time and memory while the graph runs, the
heartbeat traffic per daemon (the Ping and Pong messages' bytes, without ZMTP and TCP
framing), and, after killing 4 daemons at once, how long the coordinator took to mark
each lost.

`python bench/scale.py [--daemons 16] [--chains 16] [--json]`; numbers in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import NODES, machine, scratch
from machines import CAR, _free_port, _wait

from car.plan.coordinator_client import ask
from car.plan.runs import RunError
from car.transport import cluster, control

HEARTBEAT_S, TIMEOUT_S = 0.5, 3.0


def _flow(chains: int, daemons: int, out: Path) -> str:
    lines = ["nodes:"]
    for c in range(chains):
        names = [f"s{c}", f"r{c}a", f"r{c}b", f"k{c}"]
        for hop, name in enumerate(names):
            lines.append(f"  - id: {name}")
            script = {0: "source.py", 3: "first_stamp.py"}.get(hop, "relay.py")
            lines.append(f"    path: {NODES / script}")
            lines.append(f"    deploy: {{machine: d{(c + hop) % daemons:02d}}}")
            if hop == 0:
                lines.append("    inputs: {tick: dora/timer/hz/10}")
                lines.append('    env: {BENCH_SIZE: "64", BENCH_WARMUP_S: "0", BENCH_LOANED: "0"}')
            else:
                lines.append(f"    inputs: {{data: {names[hop - 1]}/data}}")
            if hop < 3:
                lines.append("    outputs: [data]")
            else:
                lines.append(f'    env: {{BENCH_OUT: "{out}"}}')
    return "\n".join(lines) + "\n"


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def measure(daemons: int, chains: int) -> dict[str, Any]:
    """One scale run: start-up, coordinator cost, heartbeat traffic, detection of 4 lost daemons."""
    root = scratch("car-scale-")
    (root / "rt").mkdir()
    out = root / "firsts"
    out.mkdir()
    env = {**os.environ, "XDG_RUNTIME_DIR": str(root / "rt"), "XDG_STATE_HOME": str(root / "state"),
           "XDG_CONFIG_HOME": str(root / "config"), "CAR_KEYS_DIR": str(root / "no-keys")}  # fmt: skip
    dport, cport = _free_port(), _free_port()
    target = f"127.0.0.1:{cport}"

    def car(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CAR, *args, "--coordinator-addr", target], env=env, capture_output=True, text=True)

    os.environ["CAR_KEYS_DIR"] = env["CAR_KEYS_DIR"]  # this process asks the coordinator too: without keys

    def machines() -> dict[str, Any]:  # asked from this process: a `car machines` would take a second to start
        try:
            rows = ask(f"tcp://{target}", cluster.ListMachines(), cluster.Machines, timeout=2.0).machines
        except RunError:
            return {}
        return {row.machine: row.__dict__ for row in rows}

    log = open(root / "processes.log", "wb")  # noqa: SIM115
    coordinator = subprocess.Popen([*CAR, "coordinator", "--daemon-port", str(dport), "--control-port", str(cport),
                                    "--heartbeat", str(HEARTBEAT_S), "--timeout", str(TIMEOUT_S)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    procs = {}
    try:
        time.sleep(0.5)
        for k in range(daemons):
            procs[f"d{k:02d}"] = subprocess.Popen([*CAR, "daemon", "--machine-id", f"d{k:02d}", "--coordinator-addr",
                                                   f"127.0.0.1:{dport}", "--out", str(root / "out")],
                                                  env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        _wait(lambda: sum(m["state"] == "connected" for m in machines().values()) == daemons, 120, "the daemons")
        flow = root / "scale.yml"
        flow.write_text(_flow(chains, daemons, out))
        cpu_before, wall_before = _cpu_s(coordinator.pid), time.monotonic()
        started_ns = time.time_ns()
        started = car("start", str(flow), "--name", "scale")
        if started.returncode != 0:
            raise RuntimeError(f"car start failed: {started.stderr}")
        try:
            _wait(lambda: len(list(out.glob("*.json"))) == chains, 120, "every sink's first message")
        except RuntimeError:
            if os.environ.get("SCALE_DEBUG"):
                print(car("machines", "--json").stdout, file=sys.stderr)
                for spec in sorted((root / "rt" / "car").glob("part-*.json")):
                    part = json.loads(spec.read_text())
                    print(spec.name, part["listen"], file=sys.stderr)
                print(car("list").stdout, file=sys.stderr)
                for log in sorted((root / "out" / "scale").glob("*.log"))[:80]:
                    print("==", log.name, log.read_text()[-300:], file=sys.stderr)
            raise
        firsts = sorted((json.loads(p.read_text())["first_wall_ns"] - started_ns) / 1e9 for p in out.glob("*.json"))
        time.sleep(5.0)  # the graph runs: what does the coordinator cost meanwhile?
        running_s = time.monotonic() - wall_before
        cpu = _cpu_s(coordinator.pid) - cpu_before
        rss = _rss_mb(coordinator.pid)
        ping = len(control.encode(cluster.Ping(time.time_ns())))
        pong = len(control.encode(cluster.Pong("d00", time.time_ns(), time.time_ns())))
        victims = [f"d{k:02d}" for k in range(0, daemons, max(1, daemons // 4))][:4]
        killed = time.monotonic()
        for name in victims:
            procs[name].kill()
        detected: dict[str, float] = {}
        while len(detected) < len(victims) and time.monotonic() - killed < 30:
            for name, row in machines().items():
                if name in victims and row["state"] == "lost" and name not in detected:
                    detected[name] = round(time.monotonic() - killed, 2)
            time.sleep(0.05)
        return {
            "daemons": daemons,
            "nodes": chains * 4,
            "start_to_first_message_s": {"median": round(statistics.median(firsts), 2), "max": round(firsts[-1], 2)},
            "coordinator_cpu_percent": round(100 * cpu / running_s, 2),
            "coordinator_rss_mb": rss,
            "heartbeat_bytes_per_s_per_daemon": round((ping + pong) / HEARTBEAT_S, 1),
            "heartbeat_messages_per_s_per_daemon": round(2 / HEARTBEAT_S, 1),
            "lost_timeout_s": TIMEOUT_S,
            "detection_s": detected,
        }
    finally:
        car("down")
        for proc in [*procs.values(), coordinator]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*procs.values(), coordinator]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    """Print the scale report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--daemons", type=int, default=16)
    parser.add_argument("--chains", type=int, default=16, help="chains of 4 nodes (default 16: 64 nodes)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {"machine": machine(), **measure(args.daemons, args.chains)}
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    sys.exit(main())
