"""Joining a running graph: subscribers get what node inputs get, bounded, and leave nothing behind."""

from __future__ import annotations

import json
import mmap
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from car.node.subscriber import Subscriber
from car.plan.runs import RunError, find_run
from tests.helpers import launched, processes_mentioning, run_status, write_flow

pytestmark = pytest.mark.slow

SOURCE = """
    import json
    import numpy as np
    from car import Node
    node = Node()
    n = 0
    for event in node:
        if event.type == "INPUT":
            n += 1
            node.send_output("small", {"n": n}, {"n": n, "kind": "small"})
            node.send_output("frame", np.full((480, 640, 3), n % 256, np.uint8), {"n": n})
        elif event.type == "STOP":
            break
    json.dump({"sent": n, "copied": node.copied}, open("source.json", "w"))
"""

RELAY = """
    import json, time
    from car import Node
    node = Node()
    small = []
    for event in node:
        if event.type == "INPUT" and event.id == "small":
            small.append([event.value["n"], list(event.timestamp), event.metadata, time.time()])
            node.send_output("small", event.value, event.metadata)
        elif event.type == "STOP":
            break
    json.dump(small, open("relay.json", "w"))
"""

SINK = """
    from car import Node
    for event in Node():
        pass
"""


def three_nodes(folder: Path) -> Path:
    """source (small messages and 640x480x3 frames at 30 Hz) -> relay -> sink."""
    return write_flow(
        folder,
        """
        nodes:
          - id: source
            path: source.py
            inputs: {tick: dora/timer/millis/33}
            outputs: [small, frame]
          - id: relay
            path: relay.py
            inputs: {small: source/small, frame: {source: source/frame, queue_size: 2}}
            outputs: [small]
          - id: sink
            path: sink.py
            inputs: {small: relay/small}
        """,
        source_py=SOURCE,
        relay_py=RELAY,
        sink_py=SINK,
    )


@contextmanager
def running(flow: Path, name: str) -> Iterator[None]:
    """The three nodes of `three_nodes` launched in the background until the block ends."""
    with launched(flow, name, ("source", "relay", "sink"), flow.parent):
        yield


def events_for(sub: Subscriber, seconds: float) -> list[tuple[str, object, dict[str, object], tuple[int, int]]]:
    """What `sub` receives in `seconds`: (source, value summary, metadata, timestamp); frames checked whole."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        event = sub.recv(timeout=0.2)
        if event is None or event.type != "INPUT":
            continue
        assert event.timestamp is not None
        value: object = event.value
        if event.id == "source/frame":
            frame = event.value
            n = int(event.metadata["n"])
            assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8 and not frame.flags.writeable
            assert int(frame.min()) == int(frame.max()) == n % 256  # whole, and not changed under us
            assert isinstance(frame.base, mmap.mmap)  # a view of the sender's shared memory: no copy
            value = n
        got.append((event.id, value, event.metadata, tuple(event.timestamp)))
    return got


def test_a_subscriber_gets_every_message_after_it_joined_as_a_node_input_does(tmp_path: Path) -> None:
    name = f"sub-{os.getpid()}"
    flow = three_nodes(tmp_path)
    with running(flow, name):
        with Subscriber(["source"], run=name, queue_size=50) as sub:  # both outputs of `source`
            assert sorted(sub.sources) == ["source/frame", "source/small"]
            assert run_status(name).subscriptions == 1
            got = events_for(sub, 2.5)
            assert sub.dropped == 0
        assert run_status(name).subscriptions == 0
    small = [(v["n"], meta, ts) for src, v, meta, ts in got if src == "source/small"]  # type: ignore[index]
    frames = [v for src, v, _, _ in got if src == "source/frame"]
    assert len(small) >= 30 and len(frames) >= 30
    first = small[0][0]
    assert [n for n, _, _ in small] == list(range(first, first + len(small)))  # every one, in order
    assert frames == list(range(frames[0], frames[0] + len(frames)))
    relay = {n: (tuple(ts), meta) for n, ts, meta, _ in json.loads((tmp_path / "relay.json").read_text())}
    for n, meta, ts in small:  # the same timestamp and metadata the relay's input got
        assert relay[n] == (ts, meta)
    assert json.loads((tmp_path / "source.json").read_text())["copied"] == 0


def test_a_subscriber_that_never_reads_does_not_slow_the_graph_and_its_losses_are_counted(tmp_path: Path) -> None:
    name = f"stuck-{os.getpid()}"
    flow = three_nodes(tmp_path)
    with running(flow, name):
        time.sleep(3.0)
        joined = time.time()
        sub = Subscriber(["source"], run=name, queue_size=2)
        time.sleep(3.0)  # never reading
        left = time.time()
        events_for(sub, 1.0)
        dropped = sub.dropped
        sub.close()
    assert dropped > 0  # the oldest frames and messages went, counted
    arrivals = [t for _, _, _, t in json.loads((tmp_path / "relay.json").read_text())]
    before = sum(joined - 3.0 <= t < joined for t in arrivals)
    during = sum(joined <= t < left for t in arrivals)
    assert before > 50 and during >= 0.8 * before  # about 90 either way: the sender went on at its rate
    assert json.loads((tmp_path / "source.json").read_text())["copied"] == 0  # no slot was held up for it


def test_a_subscriber_that_keeps_frames_gets_every_one_after_falling_behind(tmp_path: Path) -> None:
    """A recorder (`keep_frames`) that stops reading for 1.5 s (45 frames, against the ring of a few slots the relay
    needs) still gets every frame whole: the sender grew its ring rather than reuse what it lacked, and copied
    nothing for its node readers. Without `keep_frames` the ring goes on around it (counted losses)."""
    name = f"keeper-{os.getpid()}"
    flow = three_nodes(tmp_path)
    with running(flow, name), Subscriber(["source/frame"], run=name, queue_size=200, keep_frames=True) as sub:
        got = events_for(sub, 0.5)
        time.sleep(1.5)  # it falls behind
        got += events_for(sub, 2.0)
        dropped = sub.dropped
    frames = [v for _, v, _, _ in got]
    assert len(frames) >= 60 and dropped == 0, (len(frames), dropped)
    assert frames == list(range(frames[0], frames[0] + len(frames)))  # every one, in order, whole (events_for)
    assert json.loads((tmp_path / "source.json").read_text())["copied"] == 0


SUBSCRIBER_PROCESS = """
import sys, time
from car.node.subscriber import Subscriber
sub = Subscriber(["source/frame", "source/small"], run=sys.argv[1], keep_frames=sys.argv[2] == "keep")
while sub.recv(timeout=5) is None:
    pass
print(sub.endpoint, flush=True)
kept = [sub.recv(timeout=5) for _ in range(3)]  # holds frames in shared memory
time.sleep(60)
"""


@pytest.mark.parametrize("keep", ["keep", "latest"])  # a recorder (its frames kept while it lives), and not
def test_a_subscriber_killed_with_sigkill_leaves_nothing_behind(tmp_path: Path, keep: str) -> None:
    name = f"killed-{keep}-{os.getpid()}"
    flow = three_nodes(tmp_path)
    with running(flow, name):
        run = find_run(name)
        proc = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER_PROCESS, name, keep], stdout=subprocess.PIPE, text=True, cwd=tmp_path
        )
        try:
            assert proc.stdout is not None
            endpoint = proc.stdout.readline().strip()
            assert endpoint.startswith("ipc://") and run_status(name).subscriptions == 1
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        deadline = time.monotonic() + 10
        while run_status(name).subscriptions and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run_status(name).subscriptions == 0
        assert not Path(endpoint.removeprefix("ipc://")).exists()
        time.sleep(1.0)  # the graph goes on, its frames no longer held for the dead subscriber
    assert json.loads((tmp_path / "source.json").read_text())["copied"] == 0
    assert not list(Path("/dev/shm").glob(f"car-{run.run_id}-*")) and not Path(run.folder).exists()
    assert processes_mentioning(str(tmp_path)) == []


def test_subscribing_to_what_the_run_does_not_have_is_a_clear_error(tmp_path: Path) -> None:
    name = f"nosuch-{os.getpid()}"
    with running(three_nodes(tmp_path), name):
        with pytest.raises(RunError, match=r"no output `source/nope` \(outputs: source/small, source/frame"):
            Subscriber(["source/nope"], run=name)
        with pytest.raises(RunError, match="no running dataflow named `other`"):
            Subscriber(["source/small"], run="other")
        assert run_status(name).subscriptions == 0
