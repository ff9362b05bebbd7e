"""Cross-machine cases: one pipeline split over two machines' daemons on this host, node to node over tcp://.

car: a coordinator and daemons `m1` (source) and `m2` (sink) in a runtime folder of their
own, on loopback; `--keys` with CurveZMQ keys (`car keys init`) for every link. dora: its
coordinator and two daemons (`--machine-id m1/m2`, their own listen ports), the same
nodes placed with `deploy`. Cases: 64 B at 200 Hz and 921,600 B at 30 Hz, source
on m1 -> sink on m2; throughput: 64 B messages as fast as the sender can, m1 -> m2.
`--netns` runs car's two daemons in two network namespaces joined by a veth pair (root).

Run alone: `python bench/machines.py [--seconds S] [--json]`; compare.py includes it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from common import NODES, messages, read_json, scratch, sink_report
from latency import FRAME, SMALL, WARMUP_S

from car.plan.coordinator_client import ask
from car.plan.runs import RunError
from car.transport import cluster

SPLIT_CASES = {"small_split": (SMALL, 200), "frame_split": (FRAME, 30)}
SPLIT_COUNT = 20_000  # messages in a throughput run across machines
R = TypeVar("R", bound=cluster.CoordinatorReply)
SPLIT_FLOW = """
env: {{BENCH_SIZE: "{size}", BENCH_OUT: "{out}/sink.json", BENCH_WARMUP_S: "{warmup}", BENCH_LOANED: "0", BENCH_COUNT: "{count}"}}
nodes:
  - id: source
    path: {nodes}/source.py
    inputs: {{tick: dora/timer/hz/{hz}}}
    outputs: [data]
    deploy: {{machine: m1}}
  - id: sink
    path: {nodes}/sink.py
    inputs: {{data: source/data}}
    deploy: {{machine: m2}}
"""
SPLIT_THROUGHPUT = """
env: {{BENCH_SIZE: "{size}", BENCH_COUNT: "{count}", BENCH_OUT: "{out}/count.json"}}
nodes:
  - id: flood
    path: {nodes}/flood.py
    inputs: {{go: counter/ready}}
    outputs: [data]
    deploy: {{machine: m1}}
  - id: counter
    path: {nodes}/counter.py
    inputs: {{data: {{source: flood/data, queue_size: 1000}}}}
    outputs: [ready]
    deploy: {{machine: m2}}
"""
CAR = [sys.executable, "-m", "car"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


class CarCluster:
    """A car coordinator and daemons m1, m2 on this host (in network namespaces with `netns`), keys optional."""

    def __init__(self, keys: bool, netns: tuple[str, str] | None = None, apart: bool = False):
        """`apart`: m2 has a home, runtime and cache folder of its own (it shares no files with the `car` commands,
        as a car does not share the laptop's)."""
        self.root = scratch("car-split-")
        (self.root / "rt").mkdir()
        self.env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.root / "rt"),
            "XDG_STATE_HOME": str(self.root / "state"),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "CAR_KEYS_DIR": str(self.root / "keys-hub"),
        }
        self.netns = netns
        self.host = "10.78.0.1" if netns else "127.0.0.1"
        self.daemon_port, self.control_port = _free_port(), _free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        if keys:
            self._make_keys()
        listen = "*" if keys else "127.0.0.1"
        inside = (["ip", "netns", "exec", netns[0]], ["ip", "netns", "exec", netns[1]]) if netns else ([], [])
        self._spawn([*inside[0], *CAR, "coordinator", "--bind", self.host, "--daemon-port", str(self.daemon_port),
                     "--control-port", str(self.control_port)], "hub")  # fmt: skip
        time.sleep(0.3)
        self.home = self.root / "m2-home"
        own = {
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.root / "m2-rt"),
            "XDG_CACHE_HOME": str(self.root / "m2-cache"),
        }
        for machine, prefix in zip(("m1", "m2"), inside, strict=True):
            self._spawn([*prefix, *CAR, "daemon", "--machine-id", machine, "--listen", listen,
                         "--coordinator-addr", f"{self.host}:{self.daemon_port}", "--out", str(self.root / "out")],
                        machine if keys else "hub", own if apart and machine == "m2" else {})  # fmt: skip
        _wait(self._connected, 20, "the daemons to connect")

    def _make_keys(self) -> None:
        def keys(*args: str) -> None:
            subprocess.run([*CAR, "keys", *args], env=self.env, check=True, capture_output=True)

        hub = str(self.root / "keys-hub")
        keys("init", "--coordinator", "--dir", hub)
        for machine in ("m1", "m2"):
            folder = str(self.root / f"keys-{machine}")
            keys("init", "--dir", folder)
            keys("trust", "coordinator", f"{hub}/self.key", "--dir", folder)
            keys("trust", machine, f"{folder}/self.key", "--dir", hub)

    def _spawn(self, argv: list[str], keys: str, own: dict[str, str] | None = None) -> None:
        for folder in ("HOME", "XDG_RUNTIME_DIR"):
            if own and folder in own:
                Path(own[folder]).mkdir(parents=True, exist_ok=True)
        env = {**self.env, **(own or {}), "CAR_KEYS_DIR": str(self.root / f"keys-{keys}")}
        log = open(self.root / f"{len(self.procs)}.log", "wb")  # noqa: SIM115  # the process keeps it
        self.procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))

    def car(self, *args: str) -> subprocess.CompletedProcess[str]:
        prefix = ["ip", "netns", "exec", self.netns[0]] if self.netns else []
        argv = [*prefix, *CAR, *args, "--coordinator-addr", f"{self.host}:{self.control_port}"]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)

    def _ask(self, message: cluster.ClientToCoordinator, answer: type[R]) -> R | None:
        """Ask the coordinator from this process (a `car` command takes a second to start), or None when it
        cannot be reached from here (in another network namespace)."""
        if self.netns:
            return None
        os.environ["CAR_KEYS_DIR"] = self.env["CAR_KEYS_DIR"]
        try:
            return ask(f"tcp://{self.host}:{self.control_port}", message, answer, timeout=5.0)
        except RunError:
            return None

    def _connected(self) -> bool:
        machines = self._ask(cluster.ListMachines(), cluster.Machines)
        if machines is not None:
            return sum(1 for row in machines.machines if row.state == "connected") == 2
        listed = self.car("machines", "--json")
        rows = json.loads(listed.stdout) if listed.returncode == 0 else []
        return sum(1 for row in rows if row["state"] == "connected") == 2

    def _finished(self, name: str) -> bool:
        flows = self._ask(cluster.ListDataflows(), cluster.Dataflows)
        if flows is not None:
            return any(f.name == name and f.state in ("finished", "failed") for f in flows.dataflows)
        return "finished" in self.car("list").stdout.split(name, 1)[1].split("\n")[0]

    def run(self, flow: str) -> None:
        """Start the dataflow and wait for it to end (its source sends a counted number of messages)."""
        path = self.root / f"flow-{time.monotonic_ns()}.yml"
        path.write_text(flow)
        started = self.car("start", str(path), "--name", path.stem)
        if started.returncode != 0:
            raise RuntimeError(f"car start failed: {started.stderr}")
        _wait(lambda: self._finished(path.stem), 600, "the run")

    def close(self) -> None:
        self.car("down")
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class DoraCluster:
    """dora's coordinator and two daemons (m1, m2) on loopback, from bench/.dora-venv."""

    def __init__(self) -> None:
        from peers.dora.runner import BIN, VENV

        self.bin = BIN
        self.root = scratch("dora-split-")
        self.port = _free_port()
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(VENV),
                    "DORA_COORDINATOR_PORT": str(self.port)}  # fmt: skip
        self.procs: list[subprocess.Popen[bytes]] = []
        self._spawn([str(BIN / "dora"), "coordinator", "--port", str(self.port), "--store", "memory", "--quiet"])
        time.sleep(0.5)
        zenoh = f"tcp/127.0.0.1:{_free_port()}"
        for machine in ("m1", "m2"):
            self._spawn([str(BIN / "dora"), "daemon", "--machine-id", machine, "--coordinator-port", str(self.port),
                         "--local-listen-port", str(_free_port()), "--zenoh-peer", zenoh, "--quiet"])  # fmt: skip
        time.sleep(2.0)

    def _spawn(self, argv: list[str]) -> None:
        log = open(self.root / f"{len(self.procs)}.log", "wb")  # noqa: SIM115
        self.procs.append(subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root))

    def run(self, flow: str) -> None:
        """Start the dataflow and wait for it to end (its source sends a counted number of messages)."""
        path = self.root / f"flow{time.monotonic_ns()}.yml"
        path.write_text(flow)
        args = [str(self.bin / "dora"), "start", str(path), "--name", path.stem, "--coordinator-port", str(self.port)]
        subprocess.run([*args, "--attach"], env=self.env, cwd=self.root, capture_output=True, timeout=600)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def namespaces() -> Iterator[tuple[str, str]]:
    """Two network namespaces joined by a veth pair (10.78.0.1, 10.78.0.2); RuntimeError where that cannot be."""
    tag = f"cb{os.getpid() % 100000}"
    a, b = f"{tag}a", f"{tag}b"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

    try:
        try:
            for ns in (a, b):
                ip("netns", "add", ns)
                ip("-n", ns, "link", "set", "lo", "up")
            ip("link", "add", f"{tag}x", "netns", a, "type", "veth", "peer", "name", f"{tag}y", "netns", b)
            ip("-n", a, "addr", "add", "10.78.0.1/24", "dev", f"{tag}x")
            ip("-n", b, "addr", "add", "10.78.0.2/24", "dev", f"{tag}y")
            ip("-n", a, "link", "set", f"{tag}x", "up")
            ip("-n", b, "link", "set", f"{tag}y", "up")
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or exc
            raise RuntimeError(f"network namespaces cannot be made here: {detail!r}") from None
        yield a, b
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def split_latency(cluster: CarCluster | DoraCluster, size: int, hz: int, seconds: float) -> dict[str, Any]:
    """One latency run of the split pipeline: the sink's p50/p99 (its source sends `seconds` of messages after its
    warm-up, counted, and the run ends)."""
    out = scratch("split-out-")
    count = messages(seconds, hz)
    flow = SPLIT_FLOW.format(size=size, hz=hz, out=out, warmup=WARMUP_S, nodes=NODES_FOR[type(cluster)], count=count)
    cluster.run(flow)
    _wait(lambda: (out / "sink.json").exists(), 20, "the sink's report")
    return sink_report(out / "sink.json")


def split_throughput(cluster: CarCluster | DoraCluster, count: int) -> dict[str, Any]:
    """`count` small messages m1 -> m2 as fast as the sender goes: delivered per second, and drops."""
    out = scratch("split-out-")
    flow = SPLIT_THROUGHPUT.format(size=SMALL, count=count, out=out, nodes=NODES_FOR[type(cluster)])
    cluster.run(flow)
    receiver = read_json(out / "count.json")
    span = max(receiver["last_ns"] - receiver["first_ns"], 1)
    return {"msgs_per_s": round(receiver["received"] * 1e9 / span), "received": receiver["received"], "sent": count}


NODES_FOR: dict[type, Path] = {CarCluster: NODES, DoraCluster: NODES.parent / "peers" / "dora"}


def measure(seconds: float, count: int, dora: bool, netns: bool) -> dict[str, Any]:
    """Every cross-machine case once: car plain and with keys (and across namespaces), and dora's two daemons.

    {"cases": {case: {peer: sink report}}, "throughput": {peer: rate}, "netns": why it was left out, or ""}."""
    cases: dict[str, dict[str, Any]] = {case: {} for case in SPLIT_CASES}
    throughput: dict[str, Any] = {}
    setups: list[tuple[str, Any]] = [
        ("car", lambda: CarCluster(keys=False)),
        ("car_keys", lambda: CarCluster(keys=True)),
    ]
    if dora:
        setups.append(("dora", DoraCluster))
    for peer, make in setups:
        cluster = make()
        try:
            for case, (size, hz) in SPLIT_CASES.items():
                cases[case][peer] = split_latency(cluster, size, hz, seconds)
            throughput[peer] = split_throughput(cluster, count)
        finally:
            cluster.close()
    skipped = "" if netns else "not asked for"
    if netns:
        try:
            with namespaces() as pair:
                cluster = CarCluster(keys=True, netns=pair)
                try:
                    for case, (size, hz) in SPLIT_CASES.items():
                        cases[case]["car_keys_netns"] = split_latency(cluster, size, hz, seconds)
                finally:
                    cluster.close()
        except RuntimeError as exc:
            skipped = str(exc)
    return {"cases": cases, "throughput": throughput, "netns": skipped}


def print_rows(cases: dict[str, dict[str, Any]], throughput: dict[str, Any]) -> None:
    """The cross-machine rows of a table."""
    for case, peers in cases.items():
        for peer, row in peers.items():
            print(f"{case:<18} {peer:<15} p50 {row['p50_us']:>9.1f} µs   p99 {row['p99_us']:>9.1f} µs")
    for peer, row in throughput.items():
        print(
            f"{'throughput_split':<18} {peer:<15} {row['msgs_per_s']:>9,} msg/s ({row['received']:,} of {row['sent']:,} received)"
        )


def main() -> None:
    """Print the cross-machine table (or --json)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=SPLIT_COUNT)
    parser.add_argument("--no-dora", action="store_true")
    parser.add_argument("--netns", action="store_true", help="also across network namespaces (needs root)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dora = not args.no_dora
    if dora:
        from peers.dora import runner
        from peers.venv import PeerUnavailable

        try:
            runner.ensure()
        except PeerUnavailable as exc:
            print(f"dora is not available ({exc}): measuring car only", file=sys.stderr)
            dora = False
    results = measure(args.seconds, args.count, dora, args.netns)
    if args.json:
        print(json.dumps(results))
        return
    print_rows(results["cases"], results["throughput"])
    if results["netns"]:
        print(f"across network namespaces: {results['netns']}")


if __name__ == "__main__":
    main()
