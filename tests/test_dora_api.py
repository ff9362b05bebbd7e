"""dora 1.x's Python node API under car: real dataflows of dora-style nodes, checked by what they wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from car.daemon.processes import COMPAT_DIR
from tests.helpers import ROOT, car, launch, run_status, start_car, wait_for_nodes, write_flow

pa = pytest.importorskip("pyarrow", reason="dora's Python nodes need pyarrow (installed by the dev extra)")

ARRAYS_PY = """
    import datetime
    import decimal

    import numpy as np
    import pyarrow as pa

    def catalogue():
        '''Arrays of many Arrow types, made the same way by the sender and the receiver.'''
        image = np.random.default_rng(7).integers(0, 256, (480, 640 * 3), dtype=np.uint8)
        return {
            "int8 with nulls": pa.array([1, None, -3], pa.int8()),
            "int32 with nulls": pa.array([1, None, 3], pa.int32()),
            "uint64": pa.array([0, 2**64 - 1], pa.uint64()),
            "float16": pa.array(np.array([1.5, -2.25], np.float16)),
            "float32": pa.array([1.5, 2.5], pa.float32()),
            "float64 with nulls": pa.array([1.0, None], pa.float64()),
            "bool with nulls": pa.array([True, None, False]),
            "string": pa.array(["a", "\u00fc", None]),
            "large_string": pa.array(["x" * 10, "y"], pa.large_string()),
            "binary": pa.array([b"\\x00\\x01", None], pa.binary()),
            "large_binary": pa.array([b"abc"], pa.large_binary()),
            "list<int64>": pa.array([[1, 2], [], None, [3]], pa.list_(pa.int64())),
            "large_list<float32>": pa.array([[1.0], [2.0, 3.0]], pa.large_list(pa.float32())),
            "fixed_size_list<uint8, 3>": pa.array([[1, 2, 3], [4, 5, 6]], pa.list_(pa.uint8(), 3)),
            "struct": pa.array(
                [{"a": 1, "b": "x", "c": [1.0]}, {"a": None, "b": "y", "c": []}],
                pa.struct([("a", pa.int32()), ("b", pa.string()), ("c", pa.list_(pa.float64()))]),
            ),
            "struct of 100": pa.array([{"x": float(i), "y": i} for i in range(100)]),
            "timestamp[us, UTC]": pa.array(
                [datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)], pa.timestamp("us", tz="UTC")
            ),
            "timestamp[ns]": pa.array([1, 2], pa.timestamp("ns")),
            "date32": pa.array([datetime.date(2026, 12, 1)], pa.date32()),
            "duration[ms] with nulls": pa.array([5, None], pa.duration("ms")),
            "decimal128(5, 2)": pa.array([decimal.Decimal("1.25")], pa.decimal128(5, 2)),
            "dictionary": pa.array(["a", "b", "a"]).dictionary_encode(),
            "map<string, int64>": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
            "null": pa.nulls(3),
            "empty int64": pa.array([], pa.int64()),
            "a slice": pa.array(range(10), pa.int64()).slice(3, 4),
            "chunked": pa.chunked_array([[1, 2], [3]]),
            "image as list<uint8> rows": pa.array(list(image), pa.list_(pa.uint8())),
            "image as uint8": pa.array(image.reshape(-1)),
        }
"""


def test_arrow_types_arrive_exactly(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - id: sender
            path: sender.py
            inputs: {tick: dora/timer/millis/20}
            outputs: [value]
          - id: receiver
            path: receiver.py
            inputs: {value: sender/value}
        """,
        arrays_py=ARRAYS_PY,
        sender_py="""
            from arrays import catalogue
            from dora import Node

            arrays = list(catalogue().items())
            node = Node()
            for event in node:
                if event["type"] == "INPUT":
                    name, array = arrays.pop(0)
                    node.send_output("value", array, {"name": name})
                    if not arrays:
                        break
        """,
        receiver_py="""
            import json
            import pyarrow as pa
            from arrays import catalogue
            from dora import Node

            expected = catalogue()
            report = {}
            for event in Node():
                if event["type"] == "INPUT":
                    name, value = event["metadata"]["name"], event["value"]
                    want = expected[name]
                    if isinstance(want, pa.ChunkedArray):
                        want = want.combine_chunks()
                    if not isinstance(value, pa.Array):
                        report[name] = f"a {type(value).__name__}"
                    elif value.type != want.type:
                        report[name] = f"{value.type}, not {want.type}"
                    else:
                        report[name] = "same" if value.equals(want) else f"other values: {value}"
                elif event["type"] == "STOP":
                    report["STOP id"] = event.get("id")
            open("report.json", "w").write(json.dumps(report))
        """,
    )
    launch(flow)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report.pop("STOP id") == "ALL_INPUTS_CLOSED"
    sys.path.insert(0, str(tmp_path))
    try:
        import arrays  # the same catalogue, here

        names = list(arrays.catalogue())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("arrays", None)
    assert len(names) >= 15
    assert report == dict.fromkeys(names, "same")


def test_send_output_raw_frames_arrive_without_a_copy(tmp_path: Path) -> None:
    in_shared_memory = """
        def in_shared_memory(address):
            '''The file under /dev/shm that maps `address` in this process, or "".'''
            for line in open("/proc/self/maps"):
                fields = line.split()
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if start <= address < end:
                    return fields[5] if len(fields) > 5 and fields[5].startswith("/dev/shm/") else ""
            return ""
    """
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - id: camera
            path: camera.py
            inputs: {tick: dora/timer/millis/30}
            outputs: [frame]
          - id: viewer
            path: viewer.py
            inputs: {frame: camera/frame}
        """,
        maps_py=in_shared_memory,
        camera_py="""
            import numpy as np
            from dora import Node
            from maps import in_shared_memory

            node = Node()
            sent, where = 0, []
            for event in node:
                if event["type"] == "INPUT":
                    with node.send_output_raw("frame", 480 * 640 * 3, {"n": sent}) as buffer:
                        frame = np.frombuffer(buffer, np.uint8).reshape(480, 640, 3)
                        frame[:] = sent
                        frame[0, 0] = (1, 2, 3)
                        where.append(in_shared_memory(frame.ctypes.data))
                        del frame  # dora's contract: no view may outlive the block that sends
                    sent += 1
                    if sent == 5:
                        break
            open("camera.txt", "w").write("\\n".join(where))
        """,
        viewer_py="""
            import json
            import numpy as np
            import pyarrow as pa
            from dora import Node
            from maps import in_shared_memory

            seen = []
            for event in Node():
                if event["type"] == "INPUT":
                    value = event["value"]
                    frame = value.to_numpy(zero_copy_only=True).reshape(480, 640, 3)
                    n = event["metadata"]["n"]
                    seen.append({
                        "type": str(value.type),
                        "right": bool((frame[1:] == n).all() and (frame[0, 0] == (1, 2, 3)).all()),
                        "file": in_shared_memory(value.buffers()[1].address),
                    })
            open("viewer.json", "w").write(json.dumps(seen))
        """,
    )
    launch(flow)
    written = (tmp_path / "camera.txt").read_text().splitlines()
    assert len(written) == 5 and all(path.startswith("/dev/shm/") for path in written), written
    seen = json.loads((tmp_path / "viewer.json").read_text())
    assert len(seen) == 5
    assert all(s["type"] == "uint8" and s["right"] and s["file"].startswith("/dev/shm/") for s in seen), seen


def test_the_node_api_and_its_events_behave_as_dora_s(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - id: source
            path: source.py
            inputs: {tick: dora/timer/millis/20}
            outputs: [data]
          - id: probe
            path: probe.py
            inputs: {data: source/data}
          - id: merger
            path: merger.py
            inputs: {data: source/data}
          - id: phoenix
            path: phoenix.py
            restart_policy: on-failure
            max_restarts: 1
            restart_delay: 0.1
        """,
        source_py="""
            import datetime
            import time
            import pyarrow as pa
            from dora import Node

            node = Node()
            for event in node:
                if event["type"] == "INPUT":
                    break
            time.sleep(1.0)  # the probe times out meanwhile
            when = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
            for n in range(3):
                node.send_output("data", pa.array([n]), {"n": n, "when": when})
            time.sleep(1.0)
        """,
        probe_py="""
            import datetime
            import json
            import logging
            import time
            from dora import Node

            node = Node()
            r = {"timed out": node.next(timeout=0.05), "empty at first": node.is_empty()}
            first = node.next()
            r["first"] = {k: str(v) if k in ("value", "metadata") else v for k, v in first.items()}
            r["timestamp is UTC"] = first["metadata"]["timestamp"].tzinfo == datetime.timezone.utc
            r["when"] = first["metadata"]["when"].isoformat()
            time.sleep(0.5)
            r["empty later"] = node.is_empty()
            r["try_recv"] = node.try_recv()["metadata"]["n"]
            r["drain"] = [e["metadata"]["n"] for e in node.drain()]
            r["try_recv when empty"] = node.try_recv()
            r["rest"] = [(e["type"], e.get("id")) for e in node]
            r["after the end"] = node.next()
            r["dataflow_id"] = node.dataflow_id()
            r["descriptor"] = [n["id"] for n in node.dataflow_descriptor()["nodes"]]
            r["node_config"] = node.node_config()
            r["clock"] = node.timestamp().tzinfo == datetime.timezone.utc
            r["restarted"] = [node.is_restart(), node.restart_count()]
            logging.info("bridged from logging")
            logging.getLogger("probe.part").warning("from a named logger")
            node.log_info("from log_info")
            node.log_debug("hidden below min_log_level")
            node.log("warn", "with fields", target="probe", fields={"k": "v"})
            open("probe.json", "w").write(json.dumps(r))
        """,
        merger_py="""
            import json
            from dora import Node

            node = Node()
            node.merge_external_events(iter(["one", "two", "three"]))
            kinds = [(e["kind"], e.get("value") if e["kind"] == "external" else e["type"]) for e in node]
            open("merger.json", "w").write(json.dumps(kinds))
        """,
        phoenix_py="""
            import sys
            from dora import Node

            node = Node()
            if not node.is_restart():
                sys.exit(3)
            open("phoenix.txt", "w").write(f"{node.is_restart()} {node.restart_count()}")
        """,
    )
    stderr = launch(flow)
    r = json.loads((tmp_path / "probe.json").read_text())
    assert r["timed out"] == {"kind": "dora", "type": "ERROR", "error": "Receiver timed out"}
    assert r["empty at first"] is True
    assert r["first"]["kind"] == "dora" and r["first"]["type"] == "INPUT" and r["first"]["id"] == "data"
    assert r["timestamp is UTC"] and r["when"] == "2026-12-01T12:00:00+00:00"
    assert r["empty later"] is False
    assert (r["try_recv"], r["drain"], r["try_recv when empty"]) == (1, [2], None)
    assert r["rest"] == [["INPUT_CLOSED", "data"], ["STOP", "ALL_INPUTS_CLOSED"]]
    assert r["after the end"] is None
    assert r["dataflow_id"] and r["descriptor"] == ["source", "probe", "merger", "phoenix"]
    assert r["node_config"] == {"inputs": {"data": "source/data"}, "outputs": []}
    assert r["clock"] and r["restarted"] == [False, 0]
    assert (tmp_path / "phoenix.txt").read_text() == "True 1"
    kinds = [tuple(k) for k in json.loads((tmp_path / "merger.json").read_text())]
    assert [k for k in kinds if k[0] == "external"] == [("external", "one"), ("external", "two"), ("external", "three")]
    assert [k for k in kinds if k[0] == "dora"] == [("dora", "INPUT")] * 3 + [
        ("dora", "INPUT_CLOSED"),
        ("dora", "STOP"),
    ]
    (log_file,) = (tmp_path / "out").glob("*/probe.log")
    log = log_file.read_text()
    for line in ("INFO  bridged from logging", "WARN  probe.part: from a named logger", "INFO  from log_info"):
        assert line in log and line in stderr
    assert "WARN  probe: with fields k=v" in log and "hidden below" not in log


def test_recv_async_loses_nothing_when_a_wait_is_cancelled(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - id: source
            path: source.py
            inputs: {tick: dora/timer/millis/20}
            outputs: [data]
          - id: listener
            path: listener.py
            inputs: {data: source/data}
        """,
        source_py="""
            import time
            import pyarrow as pa
            from dora import Node

            node = Node()
            sent = 0
            for event in node:
                if event["type"] == "INPUT":
                    if sent == 0:
                        time.sleep(0.5)  # the listener's first wait is cancelled meanwhile
                    node.send_output("data", pa.array([sent]))
                    sent += 1
                    if sent == 5:
                        break
        """,
        listener_py="""
            import asyncio
            import json
            from dora import Node

            async def main():
                node = Node()
                got, cancelled = [], False
                try:
                    await asyncio.wait_for(node.recv_async(), timeout=0.1)
                except asyncio.TimeoutError:
                    cancelled = True
                while True:
                    event = await node.recv_async()
                    if event is None or event["type"] == "STOP":
                        break
                    if event["type"] == "INPUT":
                        got.append(event["value"][0].as_py())
                open("listener.json", "w").write(json.dumps({"cancelled": cancelled, "got": got}))

            asyncio.run(main())
        """,
    )
    launch(flow)
    assert json.loads((tmp_path / "listener.json").read_text()) == {"cancelled": True, "got": [0, 1, 2, 3, 4]}


def test_a_dynamic_node_started_with_plain_python_joins_by_its_id(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - id: talker
            path: talker.py
            inputs: {tick: dora/timer/millis/20}
            outputs: [n]
          - id: listener
            path: dynamic
            inputs: {n: talker/n}
        """,
        talker_py="""
            import pyarrow as pa
            from dora import Node

            node = Node()
            n = 0
            for event in node:
                if event["type"] == "INPUT":
                    node.send_output("n", pa.array([n]))
                    n += 1
        """,
        listener_py="""
            import os
            import sys
            from dora import Node

            node = Node("listener")
            got = []
            for event in node:
                if event["type"] == "INPUT":
                    got.append(event["value"][0].as_py())
                    if len(got) == 5:
                        break
            if sys.argv[1:] == ["crash"]:
                os._exit(3)  # no goodbye: the daemon notices the process is gone
            open("listener.txt", "w").write(f"{node.dataflow_id()} {len(got)}")
        """,
    )
    name = f"plain-{os.getpid()}"
    proc = start_car("launch", str(flow), "--name", name, "--out", str(tmp_path / "out"), cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(COMPAT_DIR)}
    env.pop("CAR_NODE_CONFIG", None)
    try:
        status = wait_for_nodes(name, ("talker",))
        ran = subprocess.run([sys.executable, "listener.py"], cwd=tmp_path, env=env, capture_output=True, timeout=30)
        assert ran.returncode == 0, ran.stderr
        assert (tmp_path / "listener.txt").read_text() == f"{status.run_id} 5"
        _wait_until_waiting(name, "listener")
        crashed = subprocess.run([sys.executable, "listener.py", "crash"], cwd=tmp_path, env=env, timeout=30)
        assert crashed.returncode == 3
        _wait_until_waiting(name, "listener")  # the daemon saw its process vanish
        again = subprocess.run([sys.executable, "listener.py"], cwd=tmp_path, env=env, capture_output=True, timeout=30)
        assert again.returncode == 0, again.stderr  # ... and again after its process vanished
        assert car("stop", "-d", name).returncode == 0
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "node `listener` failed: its process ended without closing the node" in stderr
    assert stderr.count("node `listener` is waiting again") >= 3


def _wait_until_waiting(run: str, node: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while {n.id: n.state for n in run_status(run).nodes}[node] != "waiting":
        assert time.monotonic() < deadline, f"node {node} of run {run} is not waiting again after {timeout:g} s"
        time.sleep(0.05)


def test_a_plain_python_node_with_no_run_to_join_is_told_so(tmp_path: Path) -> None:
    (tmp_path / "lonely.py").write_text("from dora import Node\nNode('lonely')\n")
    env = {**os.environ, "PYTHONPATH": str(COMPAT_DIR), "XDG_RUNTIME_DIR": str(tmp_path)}
    ran = subprocess.run(
        [sys.executable, "lonely.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 1
    assert "no dataflow is running to start node `lonely` in: start one with `car launch FILE` first" in ran.stderr


def test_dora_s_module_level_api_and_test_helpers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(COMPAT_DIR))
    import dora
    from dora.builder import DataflowBuilder
    from dora.testing import MockNode

    assert dora.__version__.startswith("1.") and dora.DoraStatus.STOP_ALL.value == 2
    assert callable(dora.build) and callable(dora.run)
    node = MockNode([("tick", pa.array([1])), ("tick", pa.array([2]))], metadata={"k": "v"})
    for event in node:
        if event["type"] == "INPUT":
            node.send_output("double", pa.array([event["value"][0].as_py() * 2]), event["metadata"])
    assert [a.to_pylist() for a in node.outputs["double"]] == [[2], [4]] and node.next() is None

    builder = DataflowBuilder()
    camera = builder.add_node("camera").path("camera.py")
    camera.add_input("tick", "dora/timer/millis/30")
    builder.add_node("viewer").path("viewer.py").add_input("frame", camera.add_output("frame"), queue_size=1)
    with pytest.raises(ValueError, match="queue_policy"):
        camera.add_input("x", "a/b", queue_policy="newest")
    builder.to_yaml(str(tmp_path / "built.yml"))
    (tmp_path / "camera.py").write_text(
        "import pyarrow as pa\nfrom dora import Node\nnode = Node()\n"
        "for n, event in zip(range(3), node):\n    node.send_output('frame', pa.array([n]))\n"
    )
    (tmp_path / "viewer.py").write_text(
        "from dora import Node\n"
        "got = [e['value'][0].as_py() for e in Node() if e['type'] == 'INPUT']\n"
        "open('viewer.txt', 'w').write(repr(got))\n"
    )
    checked = car("check", str(tmp_path / "built.yml"))
    assert checked.returncode == 0, checked.stderr
    monkeypatch.chdir(tmp_path)
    dora.build("built.yml")
    dora.run("built.yml", stop_after=30)  # ends before that: the camera sends 3 frames and stops
    assert (tmp_path / "viewer.txt").read_text() == "[0, 1, 2]"


def test_a_value_of_another_type_than_declared_is_refused_at_send(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - id: sensor
            path: sensor.py
            inputs: {tick: dora/timer/millis/20}
            outputs: [reading]
            output_types: {reading: std/core/v1/Float64}
          - id: sink
            path: sink.py
            inputs: {reading: sensor/reading}
            input_types: {reading: std/core/v1/Float64}
        """,
        sensor_py="""
            import pyarrow as pa
            from dora import Node

            node = Node()
            node.send_output("reading", pa.array([20.5]))
            node.send_output("reading", pa.array([21], pa.int32()))
        """,
        sink_py="""
            from dora import Node

            for event in Node():
                if event["type"] == "INPUT":
                    open("sink.txt", "a").write(f"{event['value'].type}\\n")
        """,
    )
    result = car("launch", str(flow), "--out", str(tmp_path / "out"), cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert (
        "TypeError: node `sensor` output `reading` is declared `std/core/v1/Float64` "
        f"(output_types in {flow}), but this value is an Arrow int32 array" in result.stderr
    )
    assert (tmp_path / "sink.txt").read_text() == "double\n"


def test_log_entries_reach_log_readers_and_log_files_rotate(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        nodes:
          - id: chatty
            path: chatty.py
            inputs: {tick: dora/timer/millis/20}
            outputs: [done, logs, lines]
            send_logs_as: logs
            send_stdout_as: lines
            min_log_level: debug
            max_log_size: 2KB
            max_rotated_files: 2
          - id: collector
            path: collector.py
            inputs:
              done: chatty/done
              all: {source: dora/logs, queue_size: 100}
              warnings: dora/logs/warn
              of_chatty: dora/logs/info/chatty
              own: chatty/logs
              printed: {source: chatty/lines, queue_size: 100}
        """,
        chatty_py="""
            import logging
            from dora import Node

            node = Node()
            for event in node:
                if event["type"] == "INPUT":
                    break
            node.log_debug("a debug line")
            logging.warning("a warning")
            print("a plain line", flush=True)
            for n in range(60):
                print(f"filler {n} " + "x" * 60, flush=True)
            node.send_output("done", b"")
        """,
        collector_py="""
            import json
            from dora import Node

            node = Node()
            got, done = {}, False
            while True:
                event = node.next(timeout=2.0 if done else None)
                if event is None or event["type"] in ("ERROR", "STOP"):
                    break
                if event["type"] == "INPUT":
                    if event["id"] == "done":
                        done = True
                        continue
                    if event["id"] == "printed":
                        got.setdefault("printed", []).append(event["value"][0].as_py())
                        continue
                    entry = json.loads(event["value"][0].as_py())
                    assert entry["node_id"] == "chatty", entry
                    got.setdefault(event["id"], []).append([entry["level"], entry["message"]])
            print("collected", flush=True)
            open("collected.json", "w").write(json.dumps(got))
        """,
    )
    result = car("launch", str(flow), "--out", str(tmp_path / "out"), cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    got = json.loads((tmp_path / "collected.json").read_text())
    assert got["warnings"] == [["warn", "a warning"]]
    assert got["of_chatty"] == [["warn", "a warning"]]
    assert got["own"] == [["debug", "a debug line"], ["warn", "a warning"]]
    logged = [entry for entry in got["all"] if entry[0] != "stdout"]  # stderr; prints come from stdout, in between
    assert logged == [["debug", "a debug line"], ["warn", "a warning"]]
    assert ["stdout", "a plain line"] in got["all"] and len(got["all"]) == 63
    assert "a plain line" in got["printed"] and "WARN  a warning" in got["printed"] and len(got["printed"]) == 63
    (run,) = (tmp_path / "out").iterdir()
    logs = sorted(p.name for p in run.glob("chatty*.log"))
    assert logs == ["chatty.1.log", "chatty.2.log", "chatty.log"], logs
    assert all((run / name).stat().st_size <= 2048 + 100 for name in logs)
    assert "filler 59" in (run / "chatty.log").read_text()


def test_dora_zero_copy_send_contract_and_example_run_unchanged(tmp_path: Path) -> None:
    """dora's `python-zero-copy-send` example: its contract (11 cases of `send_output_raw`'s safety rules, which
    car.compat.dora.sample keeps) and its sender and receiver, copied from dora's repository unchanged."""
    folder = tmp_path / "zero_copy"
    shutil.copytree(ROOT / "tests" / "fixtures" / "dora_zero_copy", folder)
    launch(folder / "contract_dataflow.yml")
    contract = next((folder / "out").rglob("contract.log")).read_text()
    assert "11/11 contract cases passed" in contract, contract
    launch(folder / "dataflow.yml")
    received = next((folder / "out").rglob("receiver.log")).read_text()
    assert "[10] large_output: 65536 bytes" in received, received
    assert "[10] rgb_image: 10000 pixels (100x100), first pixel RGB(10, 64, 128)" in received, received


def test_dora_module_example_runs_unchanged(tmp_path: Path) -> None:
    """dora's `module-dataflow` example: a sender, a module of two nodes (doubler, filter), a receiver."""
    folder = tmp_path / "modules"
    shutil.copytree(ROOT / "tests" / "fixtures" / "dora_modules", folder)
    said = launch(folder / "dataflow.yml")
    assert "4 of 4 nodes ok" in said, said
    received = next((folder / "out").rglob("receiver.log")).read_text()
    evens = [line.split(": ", 1)[1] for line in received.splitlines() if "Received [filtered]" in line]
    assert evens == [f"[{2 * n}]" for n in range(20)], received  # every doubled value is even: all pass the filter
