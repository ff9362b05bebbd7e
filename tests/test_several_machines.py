"""Several machines on this one: a real coordinator and real daemons with different machine ids on loopback.

Each test gets its own runtime folder (XDG_RUNTIME_DIR) and ports, so the daemons see
only each other; every process they start mentions that folder, and none may be left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from car.plan.coordinator_client import ask
from car.plan.runs import RunError
from car.recording.sink import describe_file
from car.transport import cluster
from tests.helpers import (
    BURST_PY,
    COUNTING_FLOW,
    LAGGING_PY,
    burst_accounted,
    counting_source,
    processes_mentioning,
    read_recording,
    wait_until,
    wait_until_gone,
    write_flow,
)

pytestmark = pytest.mark.slow
R = TypeVar("R", bound=cluster.CoordinatorReply)

SINK = """
import json
from car import Node

node = Node()
got = {"small": [], "frame": 0, "closed": [], "stop": False}
for event in node:
    if event.type == "INPUT" and event.id == "small":
        got["small"].append(event.value["n"])
    elif event.type == "INPUT":
        frame = event.value
        n = event.metadata["n"]
        wrong = int((frame != n % 256).sum()) if frame.shape == (480, 640, 3) else -1
        assert wrong == 0, f"frame {n}: shape {frame.shape}, {wrong} bytes not {n % 256} ({frame.min()}..{frame.max()})"
        got["frame"] += 1
    elif event.type == "INPUT_CLOSED":
        got["closed"].append(event.id)
        print("closed", event.id, flush=True)
    elif event.type == "STOP":
        got["stop"] = True
print(json.dumps(got), flush=True)
"""

# As COUNTING_FLOW, over two machines: the sink's queues hold 2 s of messages (the tests count every one).
SPLIT = """
nodes:
  - id: src
    path: src.py
    inputs: {tick: dora/timer/millis/20}
    outputs: [small, frame]
    deploy: {machine: m1}
  - id: sink
    path: sink.py
    inputs: {small: {source: src/small, queue_size: 100}, frame: {source: src/frame, queue_size: 100}}
    deploy: {machine: m2}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Cluster:
    """A coordinator and daemons started for one test, in a runtime folder of their own."""

    def __init__(
        self,
        root: Path,
        timeout: float = 1.5,
        lost_grace: float = 10.0,
        keys: Path | None = None,
        netns: str = "",
        bind: str = "127.0.0.1",
    ):
        """`keys`: the coordinator's (and this test's `car` commands') keys folder; None: no keys anywhere.
        `netns`: the network namespace the coordinator (and this test's `car` commands) run in, at `bind`."""
        self.root = root
        self.netns = netns
        self.runtime = root / "rt"
        self.runtime.mkdir()
        self.env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_CONFIG_HOME": str(root / "config"),  # no keys of the user's
            "CAR_KEYS_DIR": str(keys or root / "no-keys"),
        }
        self.daemon_port, self.control_port = free_port(), free_port()
        self.bind = bind
        self.control = f"{bind}:{self.control_port}"
        self.timeout = timeout
        self.lost_grace = lost_grace
        self.daemons: dict[str, subprocess.Popen[str]] = {}
        self.coordinator = self.restart_coordinator()

    def restart_coordinator(self) -> subprocess.Popen[str]:
        """Start the coordinator (again, on the same ports)."""
        return self._start(
            "coordinator",
            "--daemon-port",
            str(self.daemon_port),
            "--control-port",
            str(self.control_port),
            "--heartbeat",
            "0.25",
            "--timeout",
            str(self.timeout),
            "--bind",
            self.bind,
            netns=self.netns,
        )

    def _start(
        self, *args: str, keys: Path | None = None, netns: str = "", env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        log = open(self.root / f"{args[0]}-{len(self.daemons)}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        env = {**self.env, **(env or {}), **({"CAR_KEYS_DIR": str(keys)} if keys else {})}
        inside = ["ip", "netns", "exec", netns] if netns else []
        return subprocess.Popen(
            [*inside, sys.executable, "-m", "car", *args], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )

    def add_daemon(
        self,
        machine: str,
        keys: Path | None = None,
        netns: str = "",
        coordinator_host: str = "127.0.0.1",
        listen: str = "127.0.0.1",
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[str]:
        """`env`: more of its environment (a HOME and XDG_RUNTIME_DIR of its own: a machine that does not share
        this host's files)."""
        proc = self._start(
            "daemon",
            "--machine-id",
            machine,
            "--listen",
            listen,
            "--coordinator-addr",
            f"{coordinator_host}:{self.daemon_port}",
            "--out",
            str(self.root / "out"),
            "--lost-grace",
            str(self.lost_grace),
            keys=keys,
            netns=netns,
            env=env,
        )
        self.daemons[machine] = proc
        return proc

    def car(
        self,
        *args: str,
        cwd: Path | None = None,
        timeout: float = 60,
        keys: Path | None = None,
        elsewhere: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """A `car` command of this cluster; `elsewhere`: as on a host that runs none of its daemons (a runtime
        folder of its own: it sees no run here, and reaches every part through the coordinator)."""
        inside = ["ip", "netns", "exec", self.netns] if self.netns else []
        env = {**self.env, "CAR_KEYS_DIR": str(keys)} if keys else dict(self.env)
        if elsewhere:
            env["XDG_RUNTIME_DIR"] = str(self.root / "elsewhere")
            (self.root / "elsewhere").mkdir(exist_ok=True)
        return subprocess.run(
            [*inside, sys.executable, "-m", "car", *args, "--coordinator-addr", self.control],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ask(self, message: cluster.ClientToCoordinator, answer: type[R]) -> R:
        previous = os.environ.get("CAR_KEYS_DIR")
        os.environ["CAR_KEYS_DIR"] = self.env["CAR_KEYS_DIR"]  # as this test's `car` commands
        try:
            return ask(f"tcp://{self.control}", message, answer)
        finally:
            if previous is None:
                del os.environ["CAR_KEYS_DIR"]
            else:
                os.environ["CAR_KEYS_DIR"] = previous

    def machines(self) -> dict[str, cluster.MachineRow]:
        return {m.machine: m for m in self.ask(cluster.ListMachines(), cluster.Machines).machines}

    def wait_connected(self, *machines: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                rows = self.machines()
            except RunError:  # the coordinator is still starting
                rows = {}
            if all(m in rows and rows[m].state == "connected" for m in machines):
                return
            time.sleep(0.05)
        raise AssertionError(f"machines {machines} did not connect: {self.machines()}")

    def flow(self, name: str) -> cluster.DataflowRow:
        return next(f for f in self.ask(cluster.ListDataflows(), cluster.Dataflows).dataflows if f.name == name)

    def wait_state(self, name: str, states: tuple[str, ...], timeout: float = 30.0) -> cluster.DataflowRow:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            flow = self.flow(name)
            if flow.state in states:
                return flow
            if flow.state == "failed":  # it will not change: say why, from its nodes' logs
                break
            time.sleep(0.05)
        logs = {log.name: log.read_text()[-1500:] for log in sorted((self.root / "out" / name).glob("*.log"))}
        daemons = {log.name: log.read_text()[-1500:] for log in sorted(self.root.glob("daemon-*.log"))}
        raise AssertionError(
            f"dataflow {name} is {self.flow(name).state}, not {states}; logs {logs}; daemons {daemons}"
        )

    def home(self, machine: str) -> Path:
        """The home folder of a machine apart (see `two_machines`)."""
        return self.root / f"{machine}-home"

    def log(self, name: str, node: str) -> str:
        """What node `node` of run `name` has printed so far ("" before its log is made)."""
        log = self.root / "out" / name / f"{node}.log"
        return log.read_text() if log.is_file() else ""

    def sink_result(self, name: str, node: str = "sink") -> dict[str, Any]:
        """What the sink (`node`) of run `name` printed at its end."""
        line = next(line for line in self.log(name, node).splitlines() if line.startswith("{"))
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        for proc in [*self.daemons.values(), self.coordinator]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in [*self.daemons.values(), self.coordinator]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def two_machines(keys: bool = False, apart: bool = False) -> Iterator[Cluster]:
    """A coordinator and daemons m1 and m2 (`keys`: each with keys, over CurveZMQ; `apart`: m2 has a home,
    runtime and cache folder of its own, `Cluster.home("m2")`, so it shares no files with this test's `car`
    commands, as a car does not share a laptop's); no process they started may outlive it."""
    root = Path(tempfile.mkdtemp(prefix="cl", dir="/tmp"))
    made = make_keys(root, "hub", "m1", "m2") if keys else {}
    group = Cluster(root, keys=made.get("hub"))
    try:
        group.add_daemon("m1", keys=made.get("m1"))
        own = {
            "HOME": str(group.home("m2")),
            "XDG_RUNTIME_DIR": str(root / "m2-rt"),
            "XDG_CACHE_HOME": str(root / "m2-cache"),
        }
        if apart:
            for folder in (group.home("m2"), root / "m2-rt"):
                folder.mkdir()
        group.add_daemon("m2", keys=made.get("m2"), env=own if apart else None)
        group.wait_connected("m1", "m2")
        yield group
    finally:
        group.close()
        left = wait_until_gone(str(root), timeout=10)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes left running: {left}"


@pytest.fixture
def split_cluster() -> Iterator[Cluster]:
    """A coordinator and daemons m1 and m2 (`two_machines`)."""
    with two_machines() as group:
        yield group


def write_split(folder: Path, count: int = 40, flow: str = SPLIT) -> Path:
    return write_flow(folder, flow, src_py=counting_source(count), sink_py=SINK)


def test_a_dataflow_split_over_two_machines_delivers_frames_and_messages_node_to_node(
    split_cluster: Cluster, tmp_path: Path
) -> None:
    flow = write_split(tmp_path)
    started = split_cluster.car("start", str(flow), "--name", "split", "--attach", cwd=tmp_path, timeout=90)
    assert started.returncode == 0, started.stderr
    assert "started split" in started.stdout and "on m1, m2" in started.stdout
    got = split_cluster.sink_result("split")
    assert got["small"] == list(range(1, 41)) and got["frame"] == 40  # every one, in order, whole
    assert sorted(got["closed"]) == ["frame", "small"]  # the end of src's streams crossed too
    assert '"frame": 40' in started.stdout  # --attach printed the sink's output
    flow_row = split_cluster.flow("split")
    assert flow_row.state == "finished" and [p.machine for p in flow_row.parts] == ["m1", "m2"]
    listed = split_cluster.car("list")
    assert "split" in listed.stdout and "m2 (finished)" in listed.stdout, listed.stdout
    logs = split_cluster.car("logs", "sink", "-d", "split")
    assert logs.returncode == 0 and '"frame": 40' in logs.stdout, logs.stderr
    machines = json.loads(split_cluster.car("machines", "--json").stdout)
    assert {m["machine"]: m["state"] for m in machines} == {"m1": "connected", "m2": "connected"}
    assert all(abs(m["offset_ms"]) < 1000 and m["rtt_ms"] > 0 for m in machines)  # one clock: a small offset


def test_starting_on_a_machine_that_is_not_connected_fails_at_once_naming_it(
    split_cluster: Cluster, tmp_path: Path
) -> None:
    flow = write_split(tmp_path, flow=SPLIT.replace("machine: m2", f"machine: m3, working_dir: {tmp_path}"))
    result = split_cluster.car("start", str(flow), cwd=tmp_path, timeout=30)
    assert result.returncode == 2 and "m3 not connected" in result.stderr and "connected: m1, m2" in result.stderr
    assert split_cluster.ask(cluster.ListDataflows(), cluster.Dataflows).dataflows == []


def test_a_path_one_daemon_cannot_find_starts_nothing_on_any_machine(split_cluster: Cluster, tmp_path: Path) -> None:
    flow = write_split(
        tmp_path, flow=SPLIT.replace("deploy: {machine: m2}", "deploy: {machine: m2, working_dir: /nonexistent-car}")
    )
    # as a CLI on another host would: m2 does not share its files, so only m2's daemon can check its path
    message = cluster.StartDataflow(flow.read_text(), str(flow), "nowhere", ["m1"])
    with pytest.raises(Exception, match=r"nothing was started:\non machine `m2`: .*sink.py"):
        split_cluster.ask(message, cluster.Started)
    assert split_cluster.ask(cluster.ListDataflows(), cluster.Dataflows).dataflows == []
    assert not list((split_cluster.root / "rt" / "car").glob("*@m1"))  # no part started on m1


MODULE_SPLIT = """
nodes:
  - id: src
    path: src.py
    inputs: {tick: dora/timer/millis/20}
    outputs: [small, frame]
    deploy: {machine: m1, working_dir: WORK}
  - id: far
    module: mods/far.yml
    inputs: {small: {source: src/small, queue_size: 100}, frame: {source: src/frame, queue_size: 100}}
    deploy: {machine: m2, working_dir: WORK}
"""
FAR_MODULE = """
module:
  name: far
  inputs: [small, frame]
nodes:
  - id: sink
    path: sink.py
    inputs: {small: {source: _mod/small, queue_size: 100}, frame: {source: _mod/frame, queue_size: 100}}
"""


def test_a_module_file_travels_with_the_dataflow_to_machines_that_do_not_have_it(
    split_cluster: Cluster, tmp_path: Path
) -> None:
    """As from a CLI on another host: the dataflow file and its module file are on no machine of the run (`car start`
    sends the module files' texts it read with the dataflow's); the nodes' own files are in their working_dir."""
    write_split(tmp_path, count=20)
    (tmp_path / "mods").mkdir()
    (tmp_path / "sink.py").rename(tmp_path / "mods" / "sink.py")  # a module's paths are from its file's folder
    text = MODULE_SPLIT.replace("WORK", str(tmp_path))
    elsewhere = "/nonexistent-laptop/project/flow.yml"
    with pytest.raises(Exception, match=r"module node `far`: module file `mods/far.yml` was not sent"):
        split_cluster.ask(cluster.StartDataflow(text, elsewhere, "far", [], {}), cluster.Started)
    with_module = cluster.StartDataflow(text, elsewhere, "far", [], {"mods/far.yml": FAR_MODULE})
    assert split_cluster.ask(with_module, cluster.Started).machines == ["m1", "m2"]
    split_cluster.wait_state("far", ("finished",))
    got = split_cluster.sink_result("far", node="far.sink")
    assert got["small"] == list(range(1, 21)) and got["frame"] == 20


def test_a_remote_node_with_a_relative_path_needs_a_working_dir(tmp_path: Path) -> None:
    from car.spec.loader import load_dataflow
    from car.spec.model import DataflowError, Placement

    flow = write_split(tmp_path)
    with pytest.raises(DataflowError) as caught:
        load_dataflow(flow, Placement(frozenset({"m1"})))
    (problem,) = caught.value.problems
    assert "runs on machine `m2`" in problem.message and "working_dir" in (problem.hint or "")
    load_dataflow(flow, Placement(frozenset({"m1", "m2"})))  # both share this host's files: fine
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "rt")}  # no daemon runs "here"
    (tmp_path / "rt").mkdir()
    home = write_split(tmp_path, flow="deploy: {machine: m1}\n" + SPLIT)  # m1: the file's own machine
    checked = subprocess.run([sys.executable, "-m", "car", "check", str(home)], env=env, capture_output=True, text=True)
    assert checked.returncode == 2 and "node `sink` runs on machine `m2`" in checked.stderr
    assert "node `src`" not in checked.stderr


def test_a_killed_daemon_is_detected_its_readers_get_input_closed_and_it_can_come_back(
    split_cluster: Cluster, tmp_path: Path
) -> None:
    flow = write_split(tmp_path, count=100_000)
    started = split_cluster.car("start", str(flow), "--name", "lossy", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 30
    while '"small"' not in split_cluster.car("logs", "sink", "-d", "lossy").stdout and time.monotonic() < deadline:
        if (split_cluster.root / "out" / "lossy" / "src.log").exists():
            break
        time.sleep(0.1)
    time.sleep(1.0)
    split_cluster.daemons["m1"].kill()  # the source's machine goes away
    killed = time.monotonic()
    while split_cluster.machines()["m1"].state != "lost":
        assert time.monotonic() - killed < split_cluster.timeout + 3.0, "the loss was not detected in time"
        time.sleep(0.05)
    detected = time.monotonic() - killed
    assert detected >= split_cluster.timeout * 0.5
    row = split_cluster.flow("lossy")
    assert row.state == "degraded" and {p.machine: p.state for p in row.parts}["m1"] == "lost"
    wait = time.monotonic() + 10
    while "closed" not in split_cluster.log("lossy", "sink") and time.monotonic() < wait:
        time.sleep(0.05)
    assert "closed small" in split_cluster.log("lossy", "sink")  # INPUT_CLOSED for what m1 sent
    assert wait_until_gone(str(tmp_path / "src.py"), 10) == []  # m1's part stopped with its daemon
    split_cluster.add_daemon("m1")
    split_cluster.wait_connected("m1")
    row = split_cluster.wait_state("lossy", ("failed",))  # m1 came back without its part; m2's sink ended
    assert {p.machine: p.state for p in row.parts} == {"m1": "failed", "m2": "finished"}
    again = split_cluster.car(
        "start", str(write_split(tmp_path, count=20)), "--name", "again", "--attach", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert split_cluster.sink_result("again")["frame"] == 20


LEASED_SUBSCRIBER = """
import sys, time
import car.node.subscriber as subscriber

subscriber.LEASE_S, subscriber.RENEW_S = 1.0, 0.3  # a short lease, so that its end is seen soon
sub = subscriber.Subscriber(["src/small"], run=sys.argv[1])
print("joined", flush=True)
time.sleep(60)
"""


def _subscribers(group: Cluster, source: str) -> int:
    info = group.car("topic", "info", source, "-d", "seen", "--json", "--window", "0.1", elsewhere=True)
    assert info.returncode == 0, info.stderr
    count: int = json.loads(info.stdout)["subscribers"]
    return count


def test_looking_inside_a_graph_on_two_machines_from_its_hosts_and_from_elsewhere(
    split_cluster: Cluster, tmp_path: Path
) -> None:
    flow = write_split(tmp_path, count=100_000)
    assert split_cluster.car("start", str(flow), "--name", "seen", cwd=tmp_path).returncode == 0
    split_cluster.wait_state("seen", ("running",))
    deadline = time.monotonic() + 20
    while not all(p.nodes and p.nodes[0].rate > 0 for p in split_cluster.flow("seen").parts):
        assert time.monotonic() < deadline, split_cluster.flow("seen")  # the timers start once both are ready
        time.sleep(0.1)
    for elsewhere in (False, True):  # both parts on this host's daemons; then every part through the coordinator
        top = split_cluster.car("top", "-d", "seen", "--once", "--json", elsewhere=elsewhere)
        assert top.returncode == 0, top.stderr
        nodes = {n["id"]: n for n in json.loads(top.stdout)["nodes"]}
        assert {node: n["machine"] for node, n in nodes.items()} == {"src": "m1", "sink": "m2"}
        assert nodes["src"]["sent_rate"] > 0 and nodes["sink"]["received_rate"] > 0, nodes
        assert all(n["rss_bytes"] > 0 for n in nodes.values()), nodes
        assert nodes["sink"]["latency_p50_ms"] >= 0  # measured across machines, as it is watched
    listed = split_cluster.car("topic", "list", "-d", "seen", "--json", elsewhere=True)
    assert listed.returncode == 0, listed.stderr
    rows = {row["source"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"src/small", "src/frame"} and all(row["machine"] == "m1" for row in rows.values())
    assert rows["src/frame"]["rate_hz"] > 0 and rows["src/frame"]["readers"] == ["sink/frame"]

    echo = split_cluster.car("topic", "echo", "src/frame", "-d", "seen", "--count", "3", "--json", elsewhere=True)
    assert echo.returncode == 0, echo.stderr
    frames = [json.loads(line) for line in echo.stdout.splitlines()]
    assert len(frames) == 3 and all(f["value"]["shape"] == [480, 640, 3] for f in frames)  # over tcp://, whole
    assert all(f["value"]["min"] == f["value"]["max"] == f["metadata"]["n"] % 256 for f in frames)
    hz = split_cluster.car("topic", "hz", "src/small", "-d", "seen", "--duration", "2.5", "--json", elsewhere=True)
    assert hz.returncode == 0, hz.stderr
    rate = json.loads(hz.stdout.splitlines()[-1])["rate_hz"]
    assert 40 <= rate <= 60, rate  # a 20 ms timer on m1
    assert _subscribers(split_cluster, "src/small") == 0  # echo and hz left: their subscriptions ended on m1

    joined = subprocess.Popen(
        [sys.executable, "-c", LEASED_SUBSCRIBER, "seen"],
        env={
            **split_cluster.env,
            "XDG_RUNTIME_DIR": str(split_cluster.root / "elsewhere"),
            "CAR_COORDINATOR": split_cluster.control,
        },
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert joined.stdout is not None and joined.stdout.readline().strip() == "joined"
        time.sleep(1.5)  # longer than its lease: it renews
        assert _subscribers(split_cluster, "src/small") == 1
        joined.kill()  # renews no more: m1 ends the subscription when its lease runs out
        joined.wait()
        deadline = time.monotonic() + 10
        while _subscribers(split_cluster, "src/small"):
            assert time.monotonic() < deadline, "the subscription of a killed subscriber elsewhere was kept"
            time.sleep(0.2)
    finally:
        joined.kill()
        joined.wait()

    info = split_cluster.car("node", "info", "sink", "-d", "seen", elsewhere=True)
    assert info.returncode == 0 and "Machine: m2" in info.stdout, info.stderr
    restarted = split_cluster.car("node", "restart", "sink", "-d", "seen", elsewhere=True)
    assert restarted.returncode == 0 and "restarted sink" in restarted.stdout, restarted.stderr
    params = split_cluster.car("param", "list", "sink", "-d", "seen", elsewhere=True)
    assert params.returncode == 0 and "declares no parameters" in params.stdout, params.stderr
    pub = split_cluster.car("topic", "pub", "sink/small", '{"n": -5}', "-d", "seen", elsewhere=True)
    assert pub.returncode == 0 and "as src/small" in pub.stdout, pub.stderr
    wrong = split_cluster.car("topic", "echo", "src/nope", "-d", "seen", "--once", elsewhere=True)
    assert wrong.returncode == 2 and "no output `src/nope`" in wrong.stderr and "src/frame" in wrong.stderr
    assert split_cluster.car("stop", "-d", "seen", "--timeout", "30").returncode == 0
    results = [json.loads(line) for line in split_cluster.log("seen", "sink").splitlines() if line.startswith("{")]
    assert len(results) == 2 and results[0]["stop"]  # the sink before its restart, and after
    assert -5 in results[1]["small"]  # what pub sent reached the restarted sink on m2


def test_car_stop_ends_the_run_on_every_machine(split_cluster: Cluster, tmp_path: Path) -> None:
    flow = write_split(tmp_path, count=100_000)
    assert split_cluster.car("start", str(flow), "--name", "long", cwd=tmp_path).returncode == 0
    split_cluster.wait_state("long", ("running",))
    deadline = time.monotonic() + 20
    while not all(p.nodes and p.nodes[0].rate > 0 for p in split_cluster.flow("long").parts):  # frames flow
        assert time.monotonic() < deadline, split_cluster.flow("long")  # (running is not yet sending: stop then,
        time.sleep(0.1)  # and under load no frame had crossed yet)
    stopped = split_cluster.car("stop", "-d", "long", "--timeout", "30")
    assert stopped.returncode == 0 and "stopped long on m1, m2" in stopped.stdout, stopped.stderr
    assert split_cluster.flow("long").state == "finished"
    assert processes_mentioning(str(tmp_path / "src.py")) == processes_mentioning(str(tmp_path / "sink.py")) == []
    got = split_cluster.sink_result("long")
    assert got["stop"] and got["frame"] > 0
    said = "".join(p.read_text() for p in split_cluster.root.glob("daemon-*.log"))
    assert "could not" not in said, said  # no part was asked anything while it ended


def test_a_recorder_node_on_the_car_keeps_the_run_when_the_laptop_goes_away(
    split_cluster: Cluster, tmp_path: Path
) -> None:
    flow = write_split(tmp_path, count=250)
    for wrong, said in (
        (["--record", "car.bag"], "FILE.mcap"),
        (["--record", "car.mcap", "--record-machine", "m9"], "give one of the file's machines (m1, m2)"),
        (["--record", "car.mcap", "--topics", "src/nope"], "no such output"),
        (["--topics", "src/small"], "give --record"),
    ):
        refused = split_cluster.car("start", str(flow), *wrong, cwd=tmp_path)
        assert refused.returncode == 2 and said in refused.stderr and "Traceback" not in refused.stderr, wrong
    recorded = ["--record", str(tmp_path / "car.mcap")]  # on the first node's machine: m1, the car
    started = split_cluster.car("start", str(flow), "--name", "kept", *recorded, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 30
    while not (split_cluster.root / "out" / "kept" / "src.log").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.5)
    split_cluster.daemons["m2"].kill()  # the laptop (the sink's machine) goes away mid-run
    row = split_cluster.wait_state("kept", ("failed", "finished", "degraded"), timeout=30)
    deadline = time.monotonic() + 30
    while "recorded" not in split_cluster.log("kept", "recorder"):  # src ends after 250: the recorder finishes
        assert time.monotonic() < deadline, (row, split_cluster.log("kept", "recorder"))
        time.sleep(0.2)
    assert "recorded 500 messages on 2 channels" in split_cluster.log("kept", "recorder")
    got = read_recording(tmp_path / "car.mcap")  # on m1, in its node's folder
    assert [value["n"] for _, value, _ in got["src/small"]] == list(range(1, 251))  # type: ignore[index]
    assert len(got["src/frame"]) == 250
    assert describe_file(tmp_path / "car.mcap")["metadata"]["car.run"]["dataflow"] == "kept"


def test_a_daemon_without_its_coordinator_stops_its_nodes_after_the_grace_period(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="cl", dir="/tmp"))
    group = Cluster(root, lost_grace=1.0)
    try:
        group.add_daemon("m1")
        group.add_daemon("m2")
        group.wait_connected("m1", "m2")
        flow = write_split(tmp_path, count=100_000)
        assert group.car("start", str(flow), "--name", "orphaned", cwd=tmp_path).returncode == 0
        group.wait_state("orphaned", ("running",))
        time.sleep(1.0)
        group.coordinator.kill()
        group.coordinator.wait()
        for machine in ("m1", "m2"):  # the daemons stay, their nodes stop
            assert group.daemons[machine].poll() is None
        assert (
            wait_until_gone(str(tmp_path / "src.py"), 15) == [] and wait_until_gone(str(tmp_path / "sink.py"), 15) == []
        )
        wait_until(
            "a daemon to say it stops its runs",
            lambda: "stopping this machine's runs" in "".join(p.read_text() for p in root.glob("daemon-*.log")),
        )
    finally:
        group.close()
        left = wait_until_gone(str(root), timeout=10)
        shutil.rmtree(root, ignore_errors=True)
        assert not left


def make_keys(root: Path, *hosts: str) -> dict[str, Path]:
    """A keys folder per host with `car keys`; the first host runs the coordinator and trusts the others."""
    folders = {host: root / f"keys-{host}" for host in hosts}
    env = {**os.environ, "XDG_CONFIG_HOME": str(root / "config")}

    def run(*args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "car", "keys", *args], env=env, capture_output=True, text=True, check=True
        )

    coordinator, *others = hosts
    run("init", "--coordinator", "--dir", str(folders[coordinator]))
    for host in others:
        run("init", "--dir", str(folders[host]))
        run("trust", "coordinator", str(folders[coordinator] / "self.key"), "--dir", str(folders[host]))
        run("trust", host, str(folders[host] / "self.key"), "--dir", str(folders[coordinator]))
    return folders


def forge(endpoint: str, source: str, keys: tuple[bytes, bytes, bytes] | None, until: Any = None) -> None:
    """Send one message as `source` to a node's tcp:// socket, plainly or with a key pair and the server's key;
    keep the connection until `until()` is true (at most 10 s), else for 0.2 s."""
    import zmq

    from car.transport import wire

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    if keys is not None:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = keys
    sock.connect(endpoint)
    sock.send_multipart(wire.encode(wire.KIND_DATA, source.encode(), (time.time_ns(), 0), {"n": -1}))
    deadline = time.monotonic() + (10.0 if until else 0.2)
    while time.monotonic() < deadline and not (until and until()):
        time.sleep(0.05)
    ctx.destroy(linger=0)


def test_with_keys_only_trusted_daemons_and_commands_get_in_and_node_links_are_authenticated(tmp_path: Path) -> None:
    import zmq.auth

    root = Path(tempfile.mkdtemp(prefix="cl", dir="/tmp"))
    keys = make_keys(root, "hub", "m1", "m2", "stranger")
    (keys["hub"] / "trusted" / "stranger.key").unlink()  # made, but the coordinator does not trust it
    mode = (keys["m1"] / "self.key_secret").stat().st_mode & 0o777
    assert mode == 0o600
    group = Cluster(root, keys=keys["hub"])
    try:
        group.add_daemon("m1", keys=keys["m1"])
        group.add_daemon("m2", keys=keys["m2"])
        group.add_daemon("m3", keys=keys["stranger"])
        group.wait_connected("m1", "m2")
        rows = group.machines()
        assert "m3" not in rows and all(row.encrypted for row in rows.values())
        refused = [  # an untrusted key, and none: each waits for an answer that does not come (at once)
            subprocess.Popen(
                [sys.executable, "-m", "car", command, "--coordinator-addr", group.control],
                env={**group.env, "CAR_KEYS_DIR": str(folder)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for command, folder in (("list", keys["stranger"]), ("machines", root / "none"))
        ]
        for proc in refused:
            _, stderr = proc.communicate(timeout=30)
            assert proc.returncode == 2 and "no coordinator answered" in stderr, stderr
        flow = write_split(tmp_path, count=600)
        started = group.car("start", str(flow), "--name", "sealed", cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 30
        while not any(
            p.machine == "m2" and p.nodes and p.nodes[0].state == "running" for p in group.flow("sealed").parts
        ):
            assert time.monotonic() < deadline, "the sink did not start"
            time.sleep(0.05)
        echo = group.car("topic", "echo", "src/small", "-d", "sealed", "--count", "2", "--json", elsewhere=True)
        assert echo.returncode == 0, echo.stderr  # over CurveZMQ: m1's node to this command, which lets in only m1
        assert [json.loads(line)["value"]["n"] > 0 for line in echo.stdout.splitlines()] == [True, True]
        part = json.loads(next((root / "rt" / "car").glob("part-*-m2.json")).read_text())
        endpoint = part["listen"]["sink"]
        stranger_public, stranger_secret = zmq.auth.load_certificate(keys["stranger"] / "self.key_secret")
        m2_public, _ = zmq.auth.load_certificate(keys["m2"] / "self.key")
        forge(endpoint, "src/small", None)  # no key: refused by CurveZMQ

        def refused() -> bool:
            return "refused a peer" in group.log("sealed", "sink")

        forge(endpoint, "src/small", (stranger_public, stranger_secret, m2_public), refused)  # not the run's machines
        following = subprocess.Popen(  # until src's streams end: their end reaches it over CurveZMQ too
            [
                sys.executable,
                "-m",
                "car",
                "topic",
                "echo",
                "src/small",
                "-d",
                "sealed",
                "--coordinator-addr",
                group.control,
            ],
            env={**group.env, "XDG_RUNTIME_DIR": str(root / "elsewhere")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        group.wait_state("sealed", ("finished",), timeout=60)
        try:
            _, said = following.communicate(timeout=20)
        finally:
            following.kill()
        assert following.returncode == 0 and "src/small is closed" in said, said
        got = group.sink_result("sealed")
        assert got["small"] == list(range(1, 601)) and got["frame"] == 600  # nothing forged got in
        logs = "".join(p.read_text() for p in root.glob("*.log"))
        assert "refused a peer without a trusted key" in logs  # the stranger daemon, logged by the coordinator
        assert "refused a peer" in group.log("sealed", "sink")  # the forged sender, logged by the sink
    finally:
        group.close()
        left = wait_until_gone(str(root), timeout=10)
        shutil.rmtree(root, ignore_errors=True)
        assert not left


def test_machines_in_separate_network_namespaces_over_a_veth_pair_with_keys(
    two_namespaces: tuple[str, str], tmp_path: Path
) -> None:
    a, b = two_namespaces
    root = Path(tempfile.mkdtemp(prefix="cl", dir="/tmp"))
    keys = make_keys(root, "hub", "m1", "m2")
    group = Cluster(root, keys=keys["hub"], netns=a, bind="10.78.0.1")
    try:
        group.add_daemon("m1", keys["m1"], netns=a, coordinator_host="10.78.0.1", listen="*")
        group.add_daemon("m2", keys["m2"], netns=b, coordinator_host="10.78.0.1", listen="*")
        deadline = time.monotonic() + 20
        machines: dict[str, Any] = {}
        while time.monotonic() < deadline:
            listed = group.car("machines", "--json")
            machines = {m["machine"]: m for m in json.loads(listed.stdout or "[]")} if listed.returncode == 0 else {}
            if len(machines) == 2 and all(m["state"] == "connected" for m in machines.values()):
                break
            time.sleep(0.2)
        assert machines["m1"]["address"] == "10.78.0.1" and machines["m2"]["address"] == "10.78.0.2", machines
        flow = write_split(tmp_path, count=60)
        started = group.car("start", str(flow), "--name", "veth", "--attach", cwd=tmp_path, timeout=90)
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr
        got = group.sink_result("veth")
        assert got["small"] == list(range(1, 61)) and got["frame"] == 60  # across the veth pair, encrypted
    finally:
        group.close()
        left = wait_until_gone(str(root), timeout=10)
        shutil.rmtree(root, ignore_errors=True)
        assert not left


BURST = """
from car import Node

node = Node()
for n in range(1, 301):
    node.send_output("small", {"n": n})  # as fast as it can: only the reader's credits hold it back
"""

SLOW_SINK = """
import json
import time
from car import Node

node = Node()
got, stamps = [], []
for event in node:
    if event.type == "INPUT":
        got.append(event.value["n"])
        stamps.append(tuple(event.timestamp))
        time.sleep(0.002)
print(json.dumps({"small": got, "increasing": all(a < b for a, b in zip(stamps, stamps[1:]))}), flush=True)
"""


def test_backpressure_holds_across_machines_and_timestamps_only_go_forward(
    split_cluster: Cluster, tmp_path: Path
) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - {id: src, path: src.py, outputs: [small], deploy: {machine: m1}}
          - id: sink
            path: sink.py
            inputs: {small: {source: src/small, queue_size: 2, queue_policy: backpressure}}
            deploy: {machine: m2}
        """,
        src_py=BURST,
        sink_py=SLOW_SINK,
    )
    started = split_cluster.car("start", str(flow), "--name", "credits", "--attach", cwd=tmp_path, timeout=90)
    assert started.returncode == 0, started.stderr
    got = split_cluster.sink_result("credits")
    assert got["small"] == list(range(1, 301))  # a queue of 2, a slow reader, and not one dropped
    assert got["increasing"]  # hybrid-logical timestamps from the other machine never go back
    assert "dropped" not in split_cluster.log("credits", "src")


def test_a_node_that_ends_waits_until_readers_on_other_machines_have_its_last_messages(
    split_cluster: Cluster, tmp_path: Path
) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - {id: burst, path: burst.py, outputs: [n], deploy: {machine: m1}}
          - id: lagging
            path: lagging.py
            inputs: {n: {source: burst/n, queue_size: 10000}}
            deploy: {machine: m2}
        """,
        burst_py=BURST_PY,
        lagging_py=LAGGING_PY,
    )
    started = split_cluster.car("start", str(flow), "--name", "flush", "--attach", cwd=tmp_path, timeout=90)
    assert started.returncode == 0, started.stderr
    got, dropped = burst_accounted(tmp_path)  # both machines run in this folder here
    assert got == sorted(got) and len(set(got)) == len(got)
    # everything sent was received or counted as dropped: none vanished when the sender ended
    assert len(got) + dropped == 3000, (len(got), dropped)
    assert "may be lost" not in split_cluster.log("flush", "burst")


BLOCKED_SENDER = """
import time
from car import Node
node = Node()
start = time.monotonic()
for n in range(3000):
    node.send_output("n", n)
print(f"sent all in {time.monotonic() - start:.1f} s", flush=True)
"""


def test_a_backpressure_sender_stops_waiting_for_a_reader_whose_machine_is_lost(
    split_cluster: Cluster, tmp_path: Path
) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - {id: src, path: src.py, outputs: [n], deploy: {machine: m1}}
          - id: sink
            path: sink.py
            inputs: {n: {source: src/n, queue_size: 2, queue_policy: backpressure}}
            deploy: {machine: m2}
        """,
        src_py=BLOCKED_SENDER,
        sink_py="""
import time
from car import Node
node = Node()
for event in node:
    time.sleep(0.01)  # 3000 messages would take 30 s
""",
    )
    assert split_cluster.car("start", str(flow), "--name", "held", cwd=tmp_path).returncode == 0
    split_cluster.wait_state("held", ("running",))
    time.sleep(1.5)
    split_cluster.daemons["m2"].kill()  # the reader's machine goes away; its part stops its nodes
    killed = time.monotonic()
    deadline = killed + split_cluster.timeout + 30  # generous: the sender then sends the rest of its 3000
    while "sent all" not in split_cluster.log("held", "src"):
        assert time.monotonic() < deadline, "the sender still waits for the lost reader: " + split_cluster.log(
            "held", "src"
        )
        time.sleep(0.1)
    row = split_cluster.wait_state("held", ("degraded", "failed", "finished"))
    assert {p.machine: p.state for p in row.parts}["m2"] == "lost"


def test_a_restarted_coordinator_knows_the_running_dataflows_again(split_cluster: Cluster, tmp_path: Path) -> None:
    flow = write_split(tmp_path, count=100_000)
    assert split_cluster.car("start", str(flow), "--name", "kept", cwd=tmp_path).returncode == 0
    split_cluster.wait_state("kept", ("running",))
    split_cluster.coordinator.kill()
    split_cluster.coordinator.wait()
    split_cluster.coordinator = split_cluster.restart_coordinator()
    split_cluster.wait_connected("m1", "m2")
    deadline = time.monotonic() + 15
    while True:
        rows = split_cluster.ask(cluster.ListDataflows(), cluster.Dataflows).dataflows
        kept = [r for r in rows if r.name == "kept"]
        if kept and {p.machine: p.state for p in kept[0].parts} == {"m1": "running", "m2": "running"}:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
    assert kept[0].state == "running" and kept[0].uptime_s > 0
    while not all(p.nodes for p in split_cluster.flow("kept").parts):  # node states come again
        assert time.monotonic() < deadline, split_cluster.flow("kept")
        time.sleep(0.1)
    logs = split_cluster.car("logs", "sink", "-d", "kept")
    assert logs.returncode == 0, logs.stderr
    stopped = split_cluster.car("stop", "-d", "kept", "--timeout", "30")
    assert stopped.returncode == 0 and "stopped kept on m1, m2" in stopped.stdout, stopped.stderr
    assert processes_mentioning(str(tmp_path / "src.py")) == processes_mentioning(str(tmp_path / "sink.py")) == []
    assert split_cluster.sink_result("kept")["stop"]


def test_car_up_runs_a_coordinator_and_a_daemon_here_and_car_down_leaves_nothing(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="cl", dir="/tmp"))
    (root / "rt").mkdir()
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(root / "rt"),
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "CAR_KEYS_DIR": str(root / "no-keys"),
    }

    def car(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "car", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90
        )

    ports = ["--daemon-port", str(free_port()), "--control-port", str(free_port())]
    try:
        up = car("up", "--machine-id", "box", *ports)
        assert up.returncode == 0 and "daemon `box` are up" in up.stdout, up.stderr
        assert car("up", *ports).returncode == 2  # one is enough
        flow = write_flow(tmp_path, COUNTING_FLOW, src_py=counting_source(100_000), sink_py=SINK)
        started = car("start", str(flow), "--name", "boxed")  # no deploy: the daemon beside the coordinator
        assert started.returncode == 0 and "on box" in started.stdout, started.stderr
        deadline = time.monotonic() + 20
        while "sink:running" not in car("list").stdout:
            assert time.monotonic() < deadline, car("list").stdout
            time.sleep(0.2)
        machines = car("machines")
        assert "box" in machines.stdout and "connected" in machines.stdout
        down = car("down")
        assert down.returncode == 0, down.stderr
        assert wait_until_gone(str(tmp_path / "src.py"), 10) == [] and wait_until_gone(str(root), 10) == []
        sink = (root / "state" / "car" / "runs" / "boxed" / "sink.log").read_text()
        assert '"stop": true' in sink  # stopped in order: the sink saw STOP
        assert car("list").stdout.strip() == "no dataflow is running"
        runtime = root / "rt" / "car"
        assert not list(runtime.glob("daemon-*")) and not list(runtime.glob("part-*")), list(runtime.iterdir())
    finally:
        left = wait_until_gone(str(root), timeout=10)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
        assert not left


def test_car_launch_of_a_file_for_several_machines_runs_everything_here_and_says_so(tmp_path: Path) -> None:
    flow = write_split(tmp_path, flow=SPLIT.replace("machine: m2", "machine: m2, working_dir: /srv/on-the-laptop"))
    result = subprocess.run(
        [sys.executable, "-m", "car", "launch", str(flow), "--out", str(tmp_path / "out"), "--name", "alone"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "places nodes" in line]
    assert said == ["car: the file places nodes on m1, m2: all run here (`car start` places them)"]
    line = next(x for x in (tmp_path / "out" / "alone" / "sink.log").read_text().splitlines() if x.startswith("{"))
    assert json.loads(line)["frame"] == 40


LATE = """
from car import Node

for event in Node():
    if event.type == "INPUT":
        print("got", event.id, event.value["n"], flush=True)
    elif event.type == "INPUT_CLOSED":
        print("closed", event.id, flush=True)
"""


def test_a_graph_on_two_machines_is_edited_while_it_runs(split_cluster: Cluster, tmp_path: Path) -> None:
    """From another host, through the coordinator: a node added on m2, connected to m1's source (each machine does
    its half: m2 listens, m1 sends), disconnected and removed; mistakes refused with car check's words."""
    edit_across_machines(split_cluster, tmp_path)


def test_a_graph_on_two_machines_with_keys_is_edited_while_it_runs(tmp_path: Path) -> None:
    """The same over CurveZMQ: the added node listens for m1 only once it is connected, and lets in the run's machines."""
    with two_machines(keys=True) as group:
        edit_across_machines(group, tmp_path)


def edit_across_machines(split_cluster: Cluster, tmp_path: Path) -> None:
    """Add a node on m2, connect m1's source to it, disconnect it, remove it (see the tests above)."""
    flow = write_split(tmp_path, count=100_000)
    (tmp_path / "late.py").write_text(LATE)
    (tmp_path / "late.yml").write_text("id: late\npath: late.py\ndeploy: {machine: m2}\n")
    (tmp_path / "lost.yml").write_text("id: lost\npath: late.py\n")
    assert split_cluster.car("start", str(flow), "--name", "edited", cwd=tmp_path).returncode == 0
    split_cluster.wait_state("edited", ("running",))

    def edit(*args: str) -> subprocess.CompletedProcess[str]:
        return split_cluster.car("node", *args, "-d", "edited", cwd=tmp_path, elsewhere=True)

    def late_log() -> str:
        try:
            return split_cluster.log("edited", "late")
        except (OSError, StopIteration):
            return ""

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 30
        while text not in late_log():
            assert time.monotonic() < deadline, (text, late_log(), split_cluster.log("edited", "src")[-2000:])
            time.sleep(0.1)

    nowhere = edit("add", "--from-yaml", "lost.yml")
    assert nowhere.returncode != 0 and "give the node `deploy: {machine: M}`" in nowhere.stderr, nowhere.stderr
    added = edit("add", "--from-yaml", "late.yml")
    assert added.returncode == 0 and "added late to edited (running" in added.stdout, added.stderr
    wrong = edit("connect", "src/smal", "late/small")
    assert wrong.returncode != 0 and "`src` declares no output `smal` (did you mean `small`?)" in wrong.stderr
    sending = split_cluster.car("topic", "echo", "src/small", "-d", "edited", "--count", "1", elsewhere=True)
    assert sending.returncode == 0, sending.stderr  # the source is sending (on a busy machine it may start late)
    connected = edit("connect", "src/small", "late/small")
    assert connected.returncode == 0, connected.stderr
    wait_for("got small")  # from m1 to m2, over tcp://
    counts = [int(line.split()[2]) for line in late_log().splitlines() if line.startswith("got small")]
    assert counts == sorted(counts) and counts[0] > 1  # joined mid-stream, in order
    disconnected = edit("disconnect", "src/small", "late/small")
    assert disconnected.returncode == 0, disconnected.stderr
    wait_for("closed small")
    removed = edit("remove", "late")
    assert removed.returncode == 0 and "removed late from edited (exited)" in removed.stdout, removed.stderr
    assert split_cluster.car("stop", "-d", "edited", "--timeout", "30").returncode == 0
    got = [line for line in late_log().splitlines() if line.startswith("got small")]
    after = late_log().split("closed small", 1)[1]
    assert got and "got small" not in after  # nothing on the input once it was disconnected
