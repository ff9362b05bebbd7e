"""What a run does when nodes fail, leave or are started by hand; what `car` says about it."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import zmq

from car.plan.runs import find_run
from car.transport import control
from tests.helpers import car, start_car, wait_for_nodes, write_flow

TICKER = """
    from car import Node
    node = Node()
    for k, event in enumerate(node):
        if event.type == "INPUT":
            node.send_output("n", k)
"""

FAILING = """
    import time
    from car import Node
    node = Node()
    time.sleep(0.5)
    raise SystemExit(3)
"""


def failing_flow(folder: Path, critical: str) -> Path:
    return write_flow(
        folder,
        f"""
        nodes:
          - id: ticker
            path: ticker.py
            inputs: {{tick: dora/timer/millis/20}}
            outputs: [n]
          - id: fails
            path: fails.py
            inputs: {{n: ticker/n}}
            {critical}
        """,
        ticker_py=TICKER,
        fails_py=FAILING,
    )


def test_a_node_that_fails_stops_the_run_at_once_naming_it(tmp_path: Path) -> None:
    started = time.monotonic()
    result = car("launch", str(failing_flow(tmp_path, "")), "--duration", "60", "--out", str(tmp_path / "out"))
    assert time.monotonic() - started < 30  # not the 60 s of --duration
    assert result.returncode == 1
    assert "node `fails` failed: exit code 3" in result.stderr
    assert "stopping (node `fails` failed; mark it `critical: false` to keep the run going" in result.stderr


def test_a_node_marked_not_critical_fails_alone(tmp_path: Path) -> None:
    flow = failing_flow(tmp_path, "critical: false")
    result = car("launch", str(flow), "--duration", "3", "--out", str(tmp_path / "out"))
    assert result.returncode == 1  # a node failed: the exit code says so
    assert "node `fails` failed: exit code 3" in result.stderr
    assert "stopping (--duration 3 s reached)" in result.stderr  # the rest ran on


def test_a_dynamic_node_can_be_started_again_after_it_failed(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - id: ticker
            path: ticker.py
            inputs: {tick: dora/timer/millis/20}
            outputs: [n]
          - id: by_hand
            path: dynamic
            inputs: {n: ticker/n}
        """,
        ticker_py=TICKER,
        by_hand_py="""
            from pathlib import Path
            from car import Node
            node = Node()
            got = 0
            for event in node:
                if event.type == "INPUT":
                    got += 1
                    if got == 5:
                        Path("by_hand_ok").write_text(node.id)
                        break
        """,
        broken_py="""
            import time
            from car import Node
            node = Node()
            time.sleep(1.0)
            raise RuntimeError("a bug")
        """,
    )
    name = f"again-{os.getpid()}"
    proc = start_car("launch", str(flow), "--name", name, "--out", str(tmp_path / "out"), cwd=tmp_path)
    try:
        wait_for_nodes(name, ("ticker",))
        listing = car("list").stdout
        assert "ticker:running" in listing and "by_hand:waiting" in listing
        failed = car("run-node", "by_hand", "-d", name, "--", "broken.py", cwd=tmp_path, timeout=30)
        assert failed.returncode == 1 and "a bug" in failed.stderr
        missing = car("run-node", "by_hand", "-d", name, "--", "no_such_program_here", cwd=tmp_path)
        assert missing.returncode == 127 and "cannot start `no_such_program_here`" in missing.stderr
        ran = car("run-node", "by_hand", "-d", name, "--", "python", "by_hand.py", cwd=tmp_path, timeout=30)
        assert ran.returncode == 0, ran.stderr
        python = shutil.which("python")
        if python is None or os.path.realpath(python) != os.path.realpath(sys.executable):
            assert f"running it with {sys.executable}" in ran.stderr
        assert (tmp_path / "by_hand_ok").read_text() == "by_hand"
        assert car("stop", "-d", name).returncode == 0
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "stopping (requested by `car stop`)" in stderr and name not in car("list").stdout
    assert stderr.count("node `by_hand` is waiting again") >= 2
    times = [float(t) for t in re.findall(r"node `by_hand` failed: exit code 1 after ([\d.]+) s", stderr)]
    assert times and all(0.5 < t < 20 for t in times), stderr  # measured from its start, not the run's


def test_superseded_messages_are_counted_not_warned_about(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - id: ticker
            path: ticker.py
            inputs: {tick: dora/timer/millis/2}
            outputs: [n]
          - id: slow
            path: slow.py
            inputs: {n: {source: ticker/n, queue_size: 1}}
        """,
        ticker_py=TICKER,
        slow_py="""
            import time
            from car import Node
            for event in Node():
                time.sleep(0.02)
        """,
    )
    result = car("launch", str(flow), "--duration", "3", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    # keeping the latest is what queue_size 1 is for: never said as a drop (the ticker's own 2 ms timer may drop ticks
    # on a loaded machine; that is not what this test is about)
    assert "`slow` dropped" not in result.stderr, result.stderr
    superseded = re.search(
        r"superseded in queue_size 1 inputs \(kept the latest, by design\): slow (\d+)", result.stderr
    )
    assert superseded and int(superseded.group(1)) > 100, result.stderr


def test_the_daemon_refuses_an_unreadable_request_and_goes_on(tmp_path: Path) -> None:
    name = f"refuse-{os.getpid()}"
    flow = failing_flow(tmp_path, "critical: false")
    proc = start_car("launch", str(flow), "--name", name, "--duration", "20", "--out", str(tmp_path / "out"))
    try:
        wait_for_nodes(name, ("ticker",))
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(find_run(name).control)
        for garbage in (b"\x00\x01", b'{"op": "list"}', control.encode(control.Ready("ticker", 1))[:-1]):
            sock.send(garbage)
            assert sock.poll(5000)
            reply = control.decode(sock.recv(), control.DaemonReply)
            assert isinstance(reply, control.Refused) and reply.error.startswith("bad request:")
        sock.close()
        listing = car("list")
        assert name in listing.stdout and "started " in listing.stdout and str(flow) in listing.stdout
        assert car("stop", "-d", name).returncode == 0
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_car_version_and_an_unknown_option_show_the_subcommands_usage(tmp_path: Path) -> None:
    version = car("--version")
    assert version.returncode == 0 and re.fullmatch(r"car \d+\.\d+\.\d+\n", version.stdout)
    wrong = car("launch", "flow.yml", "--bogus", cwd=tmp_path)
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("usage: car launch") and "unrecognized arguments: --bogus" in wrong.stderr
    assert "Traceback" not in wrong.stderr
