"""`cpu_affinity`: nodes pinned to CPUs by the daemon, and clear errors for CPUs a machine lacks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from car.plan.build import plan_machine
from car.spec.loader import load_dataflow
from tests.helpers import assert_problems_mention, car, launch, problems, processes_mentioning, write_flow

CPUS = sorted(os.sched_getaffinity(0))

# Every thread of the node (Python's, ZeroMQ's I/O thread, the node's own) says where it may run.
REPORT_THREADS = """
import json, os, sys
from pathlib import Path
from car import Node

node = Node()
allowed = {}
for task in Path("/proc/self/task").iterdir():
    status = (task / "status").read_text()
    allowed[task.name] = next(l.split()[1] for l in status.splitlines() if l.startswith("Cpus_allowed_list"))
Path(sys.argv[1]).write_text(json.dumps({"threads": allowed, "main": sorted(os.sched_getaffinity(0))}))
"""


def test_cpu_affinity_forms_load(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - id: one
            path: a.py
            cpu_affinity: 1
          - id: two
            path: a.py
            cpu_affinity: [0, 1]
          - id: free
            path: a.py
        """,
        a_py="",
    )
    one, two, free = load_dataflow(flow).nodes
    assert (one.cpu_affinity, two.cpu_affinity, free.cpu_affinity) == ((1,), (0, 1), ())
    assert one.cpu_affinity_location is not None and one.cpu_affinity_location.line == 5


def test_bad_cpu_affinity_is_located(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        nodes:
          - id: a
            path: a.py
            cpu_affinity: [0, -1]
          - id: b
            path: b.py
            cpu_affinity: [1, 1]
          - id: c
            path: a.py
            cpu_affinity: fast
          - id: d
            path: dynamic
            cpu_affinity: [1]
        """,
    )
    assert_problems_mention(
        found,
        ":4:19: node `a`.cpu_affinity must be a CPU number or a list of them",
        ":7:19: node `b`.cpu_affinity names a CPU twice",
        ":10:19: node `c`.cpu_affinity must be a CPU number",
        ":13:19: node `d`.cpu_affinity: car does not start a dynamic node",
        "taskset -c 1 car run-node d",
    )


def test_launch_pins_every_thread_of_a_node(tmp_path: Path) -> None:
    last = CPUS[-1]
    flow = write_flow(
        tmp_path,
        f"""
        nodes:
          - id: pinned
            path: report.py
            args: pinned.json
            cpu_affinity: [{last}]
          - id: free
            path: report.py
            args: free.json
        """,
        report_py=REPORT_THREADS,
    )
    launch(flow)
    pinned = json.loads((tmp_path / "pinned.json").read_text())
    free = json.loads((tmp_path / "free.json").read_text())
    assert pinned["main"] == [last]
    assert len(pinned["threads"]) >= 2, pinned  # Python's thread and at least ZeroMQ's I/O thread
    assert set(pinned["threads"].values()) == {str(last)}, pinned
    assert free["main"] == CPUS  # the daemon's own thread went back to every CPU after the fork


def test_a_cpu_the_machine_lacks_stops_the_launch(tmp_path: Path) -> None:
    missing = max(CPUS) + 1
    flow = write_flow(
        tmp_path,
        f"""
        nodes:
          - id: sleeper
            path: sleeper.py
            cpu_affinity: [0, {missing}]
        """,
        sleeper_py="import time; time.sleep(30)",
    )
    result = car("launch", str(flow), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"flow.yml:5:19: node `sleeper`.cpu_affinity names CPU {missing}" in result.stderr
    assert "use CPUs of" in result.stderr and "nothing was started" in result.stderr
    assert "Traceback" not in result.stderr
    assert not processes_mentioning(str(tmp_path / "sleeper.py"))
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs to pin nodes apart")
def test_pinned_nodes_still_exchange_messages(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        f"""
        nodes:
          - id: source
            path: source.py
            inputs: {{tick: dora/timer/millis/5}}
            outputs: [n]
            cpu_affinity: {CPUS[0]}
          - id: sink
            path: sink.py
            inputs: {{n: source/n}}
            cpu_affinity: {CPUS[1]}
        """,
        source_py="""
            from car import Node
            node = Node()
            sent = 0
            for event in node:
                if event.type == "INPUT" and sent < 50:
                    node.send_output("n", sent)
                    sent += 1
                elif sent == 50:
                    break
        """,
        sink_py="""
            import os
            from pathlib import Path
            from car import Node
            seen = [event.value for event in Node() if event.type == "INPUT"]
            Path("seen.txt").write_text(f"{sorted(os.sched_getaffinity(0))} {seen}")
        """,
    )
    launch(flow)
    assert (tmp_path / "seen.txt").read_text() == f"[{CPUS[1]}] {list(range(50))}"


def test_readers_are_apart_only_when_both_ends_are_pinned_to_cpus_they_do_not_share(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - id: camera
            path: a.py
            outputs: [image]
            cpu_affinity: [0]
          - {id: apart, path: a.py, inputs: {image: camera/image}, cpu_affinity: [1, 2]}
          - {id: sharing, path: a.py, inputs: {image: camera/image}, cpu_affinity: [0, 1]}
          - {id: free, path: a.py, inputs: {image: camera/image}}
        """,
        a_py="",
    )
    config = plan_machine(load_dataflow(flow), "t", "t", str(tmp_path), "ipc://unused").nodes
    assert {d.node: d.apart for d in config["camera"].outputs["image"]} == {
        "apart": True,
        "sharing": False,
        "free": False,
    }
