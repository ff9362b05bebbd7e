"""Direct links (Unix socket pairs the daemon hands its nodes) and frames written in place (allocate_output)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zmq

from car.daemon.direct_links import DirectLinks
from car.daemon.timers import Timers
from car.node.api import Node, UnknownOutputError
from car.plan.build import plan_machine
from car.plan.config import Destination, InputConfig, NodeConfig, SharedOutput
from car.plan.runs import list_runs
from car.spec.loader import load_dataflow
from car.transport import direct, wire
from car.transport.shm import finish_reader
from tests.debian import debian_program
from tests.helpers import COUNTING_FLOW, SINK, counting_source, launch, write_flow

pytestmark = pytest.mark.skipif(not direct.supported(), reason=str(direct.unavailable()))


def bare_config(tmp_path: Path, **fields: object) -> NodeConfig:
    """A node's configuration without a daemon (nothing answers on its control socket)."""
    return NodeConfig(
        node_id="n",
        run_id="t",
        run_name="t",
        dataflow="flow.yml",
        receive_endpoint=f"ipc://{tmp_path}/n.sock",
        control_endpoint=f"ipc://{tmp_path}/control.sock",
        daemon_pid=0,
        send_eos=False,
        **fields,  # type: ignore[arg-type]
    )


SENDER = """
    import json
    from car import Node
    node = Node()
    zmq_links = len(node._outbox._sockets)  # ZeroMQ sockets for data: none, when every reader is on a direct link
    n = 0
    for event in node:
        if event.type == "INPUT":
            n += 1
            node.send_output("small", {"n": n})
            node.send_output("big", bytes([n % 256]) * 200_000)  # large bytes: through shared memory
            if n == 50:
                break
    json.dump({"zmq_links": zmq_links}, open("sender.json", "w"))
"""
RECEIVER = """
    import json
    from car import Node
    node = Node()
    small, big = [], []
    for event in node:
        if event.type == "INPUT" and event.id == "small":
            small.append(event.value["n"])
        elif event.type == "INPUT":
            big.append(len(event.value) == 200_000 and len(set(event.value)) == 1 and event.value[0])
    report = {"small": small, "big": big, "direct": len(node.config.direct_fds), "drops": node.drop_counts()}
    json.dump(report, open(f"{node.id}.json", "w"))
"""


def sender_and_receiver(folder: Path) -> Path:
    """A dataflow of SENDER and RECEIVER in `folder`."""
    return write_flow(
        folder,
        """
        nodes:
          - id: sender
            path: sender.py
            inputs: {tick: dora/timer/millis/5}
            outputs: [small, big]
          - id: receiver
            path: receiver.py
            inputs:
              small: {source: sender/small, queue_size: 100}
              big: {source: sender/big, queue_size: 100}
        """,
        sender_py=SENDER,
        receiver_py=RECEIVER,
    )


def test_launched_nodes_talk_over_direct_links(tmp_path: Path) -> None:
    flow = sender_and_receiver(tmp_path)
    launch(flow)
    sender = json.loads((tmp_path / "sender.json").read_text())
    report = json.loads((tmp_path / "receiver.json").read_text())
    assert sender["zmq_links"] == 0 and report["direct"] == 1  # one socket pair carries both outputs
    assert report["small"] == list(range(1, 51)) and report["drops"] == {}
    assert report["big"] == [n % 256 for n in range(1, 51)]  # whole, in order, not one changed


def test_timer_ticks_reach_a_node_through_a_socket_pair_of_its_own(tmp_path: Path) -> None:
    reader = bare_config(tmp_path, inputs={"tick": InputConfig("dora/timer/millis/5", 10, "drop_oldest")})
    links = DirectLinks({"n": reader}, dynamic=set())
    ctx = zmq.Context()
    timers = Timers(ctx, {"dora/timer/millis/5": ["n"]}, {"n": reader.receive_endpoint}, links.timer_ends)
    node_end = socket.socket(fileno=os.dup(reader.direct_fds[0]))
    node_end.settimeout(5)
    try:
        assert list(links.timer_ends) == ["n"] and links.fds("n") == reader.direct_fds  # the node inherits its end
        timers.enable("n")
        timers.start()
        ticks = [wire.decode(node_end.recv(1024)) for _ in range(3)]  # no ZeroMQ socket bound: only the pair
        assert {(t.kind, t.source) for t in ticks} == {(wire.KIND_DATA, "dora/timer/millis/5")}
        assert ticks[0].timestamp < ticks[1].timestamp < ticks[2].timestamp
    finally:
        timers.stop()
        node_end.close()
        links.close()
        ctx.term()


def test_a_node_without_the_sockets_its_configuration_names_is_told_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(direct.MissingLinkError, match="let `car launch` start it"):
        Node(config=bare_config(tmp_path, direct_fds=[987]))


def test_a_message_a_direct_link_cannot_take_is_dropped_counted_and_explained(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sending, receiving = socket.socketpair(socket.AF_UNIX, direct.KIND)
    sending.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    link = Destination(endpoint="", node="reader", inputs=["in"], fd=os.dup(sending.fileno()))  # the node's own
    node = Node(config=bare_config(tmp_path, outputs={"out": [link]}))  # no shared memory for this output
    try:
        too_big = direct.largest_message(sending) + 1
        node.send_output("out", b"x" * too_big)
        node.send_output("out", b"x" * too_big)
        node.send_output("out", b"fits")
        assert node.drop_counts() == {"to reader/in": 2}
        assert receiving.recv(1 << 20).endswith(b"fits")
    finally:
        node.close()
        sending.close()
        receiving.close()
    err = capfd.readouterr().err
    assert err.count("cannot send a message of") == 1 and "at most" in err


LENDER = """
    import json
    import numpy as np
    from car import Node
    node = Node()
    for _ in range(200):  # arrays lent and never sent go back when collected: no slot is lost
        node.allocate_output("image", (480, 640, 3))
    readonly_after_send, n = [], 0
    for event in node:
        if event.type == "INPUT":
            n += 1
            image = node.allocate_output("image", (480, 640, 3))
            image[:] = n % 251
            node.send_output("image", image, {"n": n})
            readonly_after_send.append(not image.flags.writeable)
            plain = node.allocate_output("log", (480, 640, 3))  # no reader on this machine: a plain array
            plain[:] = 1
            if n == 40:
                break
    report = {"readonly_after_send": all(readonly_after_send), "copied": node.copied,
              "plain": plain.base is None, "unknown": ""}
    try:
        node.allocate_output("nope", 10)
    except Exception as exc:
        report["unknown"] = type(exc).__name__
    json.dump(report, open("lender.json", "w"))
"""
KEEPER = """
    import json
    from car import Node
    node = Node()
    kept, seen, bad = [], [], 0
    for event in node:
        if event.type == "INPUT":
            n, image = event.metadata["n"], event.value
            bad += int(not (image == n % 251).all() or image.flags.writeable)
            seen.append(n)
            kept = (kept + [(n, image)])[-5:]  # holds the last five frames
    changed = [n for n, image in kept if not (image == n % 251).all()]
    json.dump({"seen": seen, "bad": bad, "changed": changed}, open("keeper.json", "w"))
"""


def camera_and_keeper(
    folder: Path, image_input: str, lender: str = LENDER, cpus: tuple[int, int] | None = None
) -> Path:
    """A dataflow of a camera node (`lender`) and KEEPER, whose `image` input is `image_input`;
    `cpus`: the CPU each of the two is pinned to."""
    camera_pin, keeper_pin = (f"cpu_affinity: {cpus[0]}", f"cpu_affinity: {cpus[1]}") if cpus else ("", "")
    return write_flow(
        folder,
        f"""
        nodes:
          - id: camera
            path: lender.py
            inputs: {{tick: dora/timer/millis/10}}
            outputs: [image, log]
            {camera_pin}
          - id: keeper
            path: keeper.py
            inputs: {{image: {image_input}}}
            {keeper_pin}
        """,
        lender_py=lender,
        keeper_py=KEEPER,
    )


def test_frames_written_into_lent_arrays_arrive_whole_without_a_copy(tmp_path: Path) -> None:
    launch(camera_and_keeper(tmp_path, "{source: camera/image, queue_size: 50}"))
    lender = json.loads((tmp_path / "lender.json").read_text())
    keeper = json.loads((tmp_path / "keeper.json").read_text())
    assert lender == {"readonly_after_send": True, "copied": 0, "plain": True, "unknown": "UnknownOutputError"}
    assert keeper["seen"] == list(range(1, 41)) and keeper["bad"] == 0 and keeper["changed"] == []


def test_an_unknown_output_cannot_be_allocated(tmp_path: Path) -> None:
    node = Node(config=bare_config(tmp_path, outputs={"out": []}))
    try:
        with pytest.raises(UnknownOutputError, match="declared: out"):
            node.allocate_output("image", (2, 2))
        assert isinstance(node.allocate_output("out", 100_000), np.ndarray)  # no reader: an ordinary array
    finally:
        node.close()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin the nodes apart")
def test_frames_to_a_reader_pinned_apart_are_announced_before_the_copy_and_arrive_whole(tmp_path: Path) -> None:
    """The notify-first order (x86, reader and sender pinned to different CPUs): the reader waits for each copy."""
    copying = LENDER.replace('node.allocate_output("image", (480, 640, 3))', "np.empty((480, 640, 3), np.uint8)")
    first, second = sorted(os.sched_getaffinity(0))[:2]
    flow = camera_and_keeper(tmp_path, "{source: camera/image, queue_size: 4}", copying, (first, second))
    config = plan_machine(load_dataflow(flow), "t", "t", str(tmp_path), "ipc://unused").nodes
    assert config["camera"].outputs["image"][0].apart is True
    launch(flow)
    keeper = json.loads((tmp_path / "keeper.json").read_text())
    assert keeper["seen"] == list(range(1, 41)) and keeper["bad"] == 0 and keeper["changed"] == []


def test_frames_to_a_backpressure_input_are_copied_before_their_notice_and_arrive_whole(tmp_path: Path) -> None:
    """The copy-first order (CPUs other than x86, readers not pinned apart, backpressure links)."""
    copying = LENDER.replace('node.allocate_output("image", (480, 640, 3))', "np.empty((480, 640, 3), np.uint8)")
    launch(camera_and_keeper(tmp_path, "{source: camera/image, queue_size: 4, queue_policy: backpressure}", copying))
    keeper = json.loads((tmp_path / "keeper.json").read_text())
    assert keeper["seen"] == list(range(1, 41)) and keeper["bad"] == 0 and keeper["changed"] == []


def test_a_daemon_started_without_stdin_still_hands_over_working_links(tmp_path: Path) -> None:
    """Its first socket would get descriptor 0, which a node's start replaces with /dev/null."""
    flow = sender_and_receiver(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "car", "launch", str(flow), "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.close(0),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "receiver.json").read_text())
    assert report["direct"] == 1 and report["small"] == list(range(1, 51))


def _launch_under_strace(flow: Path, name: str, inject: str) -> subprocess.CompletedProcess[str]:
    """`car launch flow` with strace failing the socket pairs as `inject` says (`-e inject=...`)."""
    strace = debian_program("strace", "the socket-pair fault test")
    command = [strace, "-f", "-qq", "-o", os.devnull, "-e", "trace=socketpair", "-e", f"inject={inject}"]
    command += [sys.executable, "-m", "car", "launch", str(flow), "--name", name, "--out", str(flow.parent / "out")]
    return subprocess.run(command, cwd=flow.parent, capture_output=True, text=True, timeout=120)


def test_a_kernel_that_refuses_socket_pairs_gets_a_clear_error_or_runs_over_zeromq_and_says_so(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, COUNTING_FLOW, src_py=counting_source(20), sink_py=SINK)
    name = f"pairs-{os.getpid()}"
    # out of file descriptors from the second pair on (the first is the daemon's look at what the kernel has)
    refused = _launch_under_strace(flow, name, "socketpair:error=EMFILE:when=2+")
    assert refused.returncode == 2, refused.stderr
    assert "cannot make the run's direct links" in refused.stderr and "ulimit -n" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert all(run.name != name for run in list_runs())  # nothing of the run is left behind
    # a kernel without Unix datagram socket pairs at all: the run goes over ZeroMQ, and says so
    fallen_back = _launch_under_strace(flow, name, "socketpair:error=EINVAL")
    assert fallen_back.returncode == 0, fallen_back.stderr
    assert "nodes talk over ZeroMQ, not direct links: socketpair(AF_UNIX, SOCK_DGRAM) failed" in fallen_back.stderr
    assert "sink 0 sent / 40 received" in fallen_back.stderr  # every message (20 small, 20 frames) arrived


def test_a_lent_frame_sent_to_another_machine_is_not_the_slot_lent_again(tmp_path: Path) -> None:
    """A frame written into a lent slot reaches a reader here through that slot, and one on another machine over
    tcp:// as a message of its own: ZeroMQ may still hold that message (a slow network, a peer not yet connected)
    when the slot is lent again and written over, so it must not be the slot itself (a torn frame over there)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        far_endpoint = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    prefix = f"{tmp_path}/car-t-0.0-"
    here = Destination(f"ipc://{tmp_path}/here.sock", "here", ["image"], line=0)  # nobody listens: it never reads
    far = Destination(far_endpoint, "far", ["image"], remote=True)  # nobody listens yet: its messages wait
    config = bare_config(tmp_path, outputs={"image": [here, far]}, shared={"image": SharedOutput(prefix, 1, 2)})
    node = Node(config=config)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    try:
        for n in range(1, 5):  # two slots: the third and fourth frames are written into the first two's slots
            image = node.allocate_output("image", (200, 200, 3))
            image[:] = n
            node.send_output("image", image, {"n": n})
            finish_reader(prefix, 0)  # the reader here let go of it at once
        assert node.copied == 0  # every frame was lent: the slots went round
        pull.bind(far_endpoint)
        got = []
        for _ in range(4):
            assert pull.poll(10_000), "the frames did not reach the machine over there"
            message = wire.decode(*pull.recv_multipart())
            got.append((message.metadata["n"], sorted(set(np.asarray(message.value).ravel().tolist()))))
        assert got == [(n, [n]) for n in range(1, 5)]  # each whole, as it was sent
    finally:
        node.close()
        pull.close(linger=0)
        ctx.term()
