"""Looking inside live graphs (`car topic`, `car top`, `car param`, `car node`, `car logs`): a real `car launch`,
real subscribers, the real command line; the line follower in the simulator for tuning while it drives."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from tests.helpers import ROOT, car, launched, run_status, wait_until, write_flow

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("look_inside")]  # the module's fixture runs once, on one worker

TICKER = """
    from car import Node
    node = Node()
    n = 0
    for event in node:
        if event.type == "INPUT":
            n += 1
            node.send_output("count", {"n": n, "pose": {"x": n * 0.5, "y": 0}})
"""

CAMERA = """
    import numpy as np
    from car import Node
    node = Node()
    n = 0
    for event in node:
        if event.type == "INPUT":
            n += 1
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:, :, 2] = 200  # red, in OpenCV's BGR order
            frame[0, 0] = (n % 256, 0, 0)
            node.send_output("image", frame, {"n": n})
"""

SINK = """
    import json
    from car import Node
    node = Node()
    for event in node:
        if event.type == "INPUT" and event.id == "poke" and "sent_by" in event.metadata:  # not ticker's own
            print("poke", json.dumps(event.value), event.metadata["sent_by"], flush=True)
"""

FLOW = """
nodes:
  - id: ticker
    path: ticker.py
    inputs: {tick: dora/timer/millis/10}
    outputs: [count]
  - id: camera
    path: camera.py
    inputs: {tick: dora/timer/millis/50}
    outputs: [image]
  - id: sink
    path: sink.py
    inputs:
      count: {source: ticker/count, queue_size: 5}
      image: {source: camera/image, queue_size: 1}
      poke: ticker/count
"""


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A running graph (ticker at 100 Hz, camera at 20 Hz, a sink) and its folder, for every test here."""
    folder = tmp_path_factory.mktemp("topic")
    flow = write_flow(folder, FLOW, ticker_py=TICKER, camera_py=CAMERA, sink_py=SINK)
    name = f"topic-{os.getpid()}"
    with launched(flow, name, ("ticker", "camera", "sink"), folder):
        yield name, folder


def topic(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return car("topic", *args, timeout=timeout)


def test_topic_list_names_every_output_with_its_readers_rate_size_and_type(graph: tuple[str, Path]) -> None:
    name, _ = graph
    started = time.monotonic()
    result = topic("list", "-d", name, "--json")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    rows = {row["source"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"ticker/count", "camera/image"}
    assert rows["ticker/count"]["type"] == "json object"
    assert rows["camera/image"]["type"] == "uint8[48,64,3]"
    assert rows["camera/image"]["mean_size_bytes"] == 48 * 64 * 3
    assert rows["ticker/count"]["readers"] == ["sink/count", "sink/poke"]
    assert all(row["rate_hz"] > 0 for row in rows.values())
    assert took < 10  # a generous bound on a shared machine; it watches 0.5 s
    table = topic("list", "-d", name)
    assert table.returncode == 0 and "camera/image" in table.stdout and "uint8[48,64,3]" in table.stdout


def test_topic_echo_returns_messages_of_the_right_type_and_saves_images(
    graph: tuple[str, Path], tmp_path: Path
) -> None:
    name, _ = graph
    result = topic("echo", "ticker/count", "--count", "3", "--json", "-d", name)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3 and all(line["source"] == "ticker/count" for line in lines)
    numbers = [line["value"]["n"] for line in lines]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    assert all(line["timestamp_ns"] > 0 for line in lines)
    field = topic("echo", "ticker/count", "--once", "--field", "pose.x", "-d", name)
    assert field.returncode == 0 and float(field.stdout.split(": ", 1)[1]) > 0, field.stdout
    missing = topic("echo", "ticker/count", "--once", "--field", "pose.z", "-d", name)
    assert missing.returncode == 2 and "no field `z`" in missing.stderr and "x, y" in missing.stderr
    saved = topic("echo", "camera/image", "--count", "2", "--save", str(tmp_path / "png"), "-d", name)
    assert saved.returncode == 0, saved.stderr
    assert "uint8[48,64,3] min 0 max 200" in saved.stdout  # a summary, not 9216 numbers
    pictures = sorted((tmp_path / "png").glob("*.png"))
    assert len(pictures) == 2
    image = cv2.imread(str(pictures[0]))
    assert image.shape == (48, 64, 3) and tuple(image[10, 10]) == (0, 0, 200)  # red, as sent


def test_topic_hz_measures_a_100_hz_timer_driven_output(graph: tuple[str, Path]) -> None:
    name, _ = graph
    result = topic("hz", "ticker/count", "--duration", "3.5", "--json", "-d", name)
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reports) >= 2
    last = reports[-1]
    assert 90 <= last["rate_hz"] <= 110, reports
    assert last["min_s"] <= 0.01 <= last["max_s"] and last["std_s"] >= 0 and last["window"] > 50
    text = topic("hz", "ticker/count", "--duration", "1.5", "-d", name)
    assert "average rate:" in text.stdout and "window:" in text.stdout


def test_topic_bw_and_info(graph: tuple[str, Path]) -> None:
    name, _ = graph
    result = topic("bw", "camera/image", "--duration", "2.5", "--json", "-d", name)
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["mean_bytes"] == last["min_bytes"] == 48 * 64 * 3
    assert 9216 * 10 < last["bytes_per_s"] < 9216 * 30  # 20 frames a second
    info = topic("info", "ticker/count", "--json", "-d", name)
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    assert described["publisher"] == "ticker" and described["seen_type"] == "json object"
    assert {(r["input"], r["queue_size"], r["queue_policy"]) for r in described["readers"]} == {
        ("count", 5, "drop_oldest"),
        ("poke", 10, "drop_oldest"),
    }


def test_topic_pub_drives_a_node_input(graph: tuple[str, Path]) -> None:
    name, folder = graph
    result = topic("pub", "sink/poke", '{"hello": 1}', "--times", "3", "--rate", "50", "-d", name)
    assert result.returncode == 0, result.stderr
    assert "sent 3 messages to sink/poke" in result.stdout
    log = folder / "out" / name / "sink.log"
    deadline = time.monotonic() + 10
    while log.read_text().count('poke {"hello": 1} car topic pub') < 3:
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.1)


def test_topic_mistakes_get_clear_errors(graph: tuple[str, Path]) -> None:
    name, _ = graph
    unknown = topic("hz", "ticker/nothing", "-d", name)
    assert unknown.returncode == 2 and "no output `ticker/nothing`" in unknown.stderr
    assert "camera/image" in unknown.stderr  # what there is
    bad_value = topic("pub", "sink/poke", "{hello", "-d", name)
    assert bad_value.returncode == 2 and "not JSON" in bad_value.stderr
    bad_input = topic("pub", "sink/nothing", "1", "-d", name)
    assert bad_input.returncode == 2 and "no input `nothing`" in bad_input.stderr and "poke" in bad_input.stderr
    no_run = topic("list", "-d", "no-such-run")
    assert no_run.returncode == 2 and "no running dataflow named `no-such-run`" in no_run.stderr
    assert "Traceback" not in unknown.stderr + bad_value.stderr + bad_input.stderr + no_run.stderr


@pytest.fixture(scope="module")
def driving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dataflows/follow_line.yml` in the simulator, in real time, for every test below: its run's name."""
    folder = tmp_path_factory.mktemp("drive")
    name = f"drive-{os.getpid()}"
    flow = ROOT / "dataflows" / "follow_line.yml"
    with launched(flow, name, ("car_io", "line_detector", "controller"), folder, "--headless"):
        deadline = time.monotonic() + 30
        while not all(row.rate > 0 for row in run_status(name).nodes):  # every node has reported its work
            assert time.monotonic() < deadline, run_status(name)
            time.sleep(0.2)
        yield name


def speeds(name: str, count: int) -> list[float]:
    """The mean wheel speed of the controller's next `count` commands."""
    result = topic("echo", "controller/cmd", "--count", str(count), "--json", "-d", name)
    assert result.returncode == 0, result.stderr
    values = [json.loads(line)["value"] for line in result.stdout.splitlines()]
    return [(v["left"] + v["right"]) / 2 for v in values]


def test_top_once_reports_rate_and_memory_of_every_node(driving: str) -> None:
    result = car("top", "-d", driving, "--once", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["id"]: row for row in json.loads(result.stdout)["nodes"]}
    assert set(rows) == {"car_io", "line_detector", "controller"}
    for row in rows.values():
        assert row["rss_bytes"] > 10_000_000 and row["sent_rate"] + row["received_rate"] > 0, row
        assert row["cpu_percent"] >= 0 and row["state"] == "running"
    assert rows["controller"]["latency_p50_ms"] > 0  # watched: it measured its inputs' latency
    assert rows["controller"]["latency_p99_ms"] >= rows["controller"]["latency_p50_ms"]
    plain = car("top", "-d", driving, "--count", "1")
    assert plain.returncode == 0 and "LAT ms p50/p99" in plain.stdout and "line_detector" in plain.stdout


def test_param_set_tunes_the_controller_while_it_drives_and_survives_a_restart(driving: str) -> None:
    listed = car("param", "list", "controller", "-d", driving, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["max_speed"] == 1.0
    described = car("param", "describe", "line_detector", "min_contrast", "-d", driving)
    assert "Range: [0, 255]" in described.stdout and "Type: float" in described.stdout
    deadline = time.monotonic() + 30
    while max(speeds(driving, 10)) < 0.4:  # up to speed on the oval
        assert time.monotonic() < deadline, "the car did not get up to speed"
    refused = car("param", "set", "controller", "max_speed", "9", "-d", driving)
    assert refused.returncode == 2 and "out of range" in refused.stderr and "[0, 3]" in refused.stderr
    wrong_type = car("param", "set", "controller", "max_speed", "fast", "-d", driving)
    assert wrong_type.returncode == 2 and "is not a number" in wrong_type.stderr
    for name, value in (("max_speed", "0.25"), ("min_speed", "0.2")):
        done = car("param", "set", "controller", name, value, "-d", driving)
        assert done.returncode == 0, done.stderr
    # the new gain changes the commands (the speed is rate-limited: down within a fraction of a second)
    wait_until("the commands at the new top speed", lambda: max(speeds(driving, 20)) <= 0.26, poll=0)
    before = {row.id: row.pid for row in run_status(driving).nodes}
    restarted = car("node", "restart", "controller", "-d", driving)
    assert restarted.returncode == 0, restarted.stderr
    after = {row.id: (row.pid, row.state) for row in run_status(driving).nodes}
    assert after["controller"][0] != before["controller"]
    assert after["car_io"] == (before["car_io"], "running") and after["line_detector"][0] == before["line_detector"]
    got = car("param", "get", "controller", "max_speed", "-d", driving)
    assert got.stdout.strip() == "0.25"  # kept across the restart
    assert max(speeds(driving, 20)) <= 0.26  # and used by the new process
    logs = car("logs", "controller", "-d", driving, "--lines", "3")
    assert logs.returncode == 0, logs.stderr
    assert "restarting node `controller`" not in logs.stdout  # the node's own log, not the run's


def test_node_list_and_info(driving: str) -> None:
    listed = car("node", "list", "-d", driving, "--json")
    assert {row["id"] for row in json.loads(listed.stdout)} == {"car_io", "line_detector", "controller"}
    info = car("node", "info", "line_detector", "-d", driving)
    assert info.returncode == 0, info.stderr
    assert "image <- car_io/image: queue_size 1, drop_oldest" in info.stdout and "Outputs: line" in info.stdout
    unknown = car("node", "info", "nobody", "-d", driving)
    assert unknown.returncode == 2 and "no node `nobody`" in unknown.stderr


def test_malformed_messages_published_by_hand_are_refused_by_the_nodes_not_fatal(driving: str) -> None:
    before = {row.id: row.pid for row in run_status(driving).nodes}
    published = {"controller": ("controller/line", '{"offset": 0.0}'), "car_io": ("car_io/cmd", '{"left": "fast"}')}
    logs = {node: "" for node in published}
    deadline = time.monotonic() + 20
    while not all("malformed" in text for text in logs.values()):
        assert time.monotonic() < deadline, logs
        for node, (target, value) in published.items():
            if "malformed" not in logs[node]:  # (again: a queue_size 1 input keeps the newest, and the
                sent = car("topic", "pub", target, value, "-d", driving)  # controller's next may come first)
                assert sent.returncode == 0, sent.stderr
        time.sleep(0.3)
        logs = {node: car("logs", node, "-d", driving).stdout for node in logs}
    assert re.search(
        r"ignored a malformed `line` message \(\d+ so far\): `found` should be true or false", logs["controller"]
    )
    assert re.search(r"stopped the wheels on a malformed `cmd` message \(\d+ so far\)", logs["car_io"])
    assert "`left` should be a finite number, not 'fast'" in logs["car_io"]
    after = {row.id: (row.pid, row.state) for row in run_status(driving).nodes}
    assert all(after[node] == (pid, "running") for node, pid in before.items()), after  # nothing died
    assert max(speeds(driving, 20)) > 0.1  # and the car drives on
