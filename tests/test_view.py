"""The live web view (`car launch --view`, `car view`) in a real headless Chromium, during a simulated run."""

from __future__ import annotations

import json
import math
import re
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from car.commands.launch import end_process
from car.node.subscriber import Subscriber
from tests.browser import browser_page, chromium_binary
from tests.helpers import ROOT, car, start_car, wait_until_gone
from view.feeds import Kept, Pose, odometry_step

pytestmark = pytest.mark.slow

FOLLOW_LINE = ROOT / "dataflows" / "follow_line.yml"
ARTIFACTS = ROOT / "out" / "test-artifacts"
PAGE = r"car view: \S+ at (http://127\.0\.0\.1:\d+/)"
FOXGLOVE = r"car view: \S+ for Foxglove at (ws://127\.0\.0\.1:\d+)"


def _url_of(run: subprocess.Popen[str], said: list[str], timeout: float = 60.0, pattern: str = PAGE) -> str:
    """The view's URL, from what `car launch --view` prints (its stderr read by a thread into `said`)."""

    def read() -> None:
        assert run.stderr is not None
        for line in run.stderr:
            said.append(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        for line in said:
            found = re.search(pattern, line)
            if found:
                return found.group(1)
        time.sleep(0.1)
    raise AssertionError("no URL from the view:\n" + "".join(said))


def _wheel_speeds(name: str) -> list[float]:
    """The measured wheel speeds in one `car_io/sensors` message of run `name`."""
    with Subscriber(["car_io/sensors"], name) as sub:
        while True:
            event = sub.recv(5.0)
            assert event is not None, "no sensor reading within 5 s"
            if event.type == "INPUT":
                return [float(v) for v in event.value["speeds"]]


@pytest.mark.timeout(900)  # the first run may install Chromium (apt-get) first
def test_the_live_view_shows_the_run_drives_the_car_and_stops_it(tmp_path: Path) -> None:
    chromium_binary()  # installs it, or skips with the reason, before anything starts
    name = f"view-{time.time_ns()}"
    options = ["--headless", "--view", "--view-port", "0", "--duration", "120", "--quiet", "--name", name]
    run = start_car("launch", str(FOLLOW_LINE), *options, "--out", str(tmp_path / "out"), cwd=tmp_path)
    said: list[str] = []
    try:
        url = _url_of(run, said)
        assert car("view", "-d", name, "--port", "0", "--host", "127.0.0.1", "--teleop", "nonsense").returncode == 2
        with browser_page(url) as page:
            page.wait_for("window.viewStats.frames >= 10 && window.viewStats.lines >= 5")  # frames, line drawn
            page.wait_for("window.viewStats.plotted >= 50 && window.viewStats.trail >= 50")
            page.wait_for("window.viewStats.nodes === 3 && window.viewStats.track > 100")  # the oval, drawn
            before = page.evaluate("JSON.stringify(window.viewStats)")
            time.sleep(1.0)
            after = json.loads(page.evaluate("JSON.stringify(window.viewStats)"))
            first = json.loads(before)
            for counted in ("frames", "samples", "trail", "states"):  # still updating
                assert after[counted] > first[counted], (counted, first, after)
            assert {"cross_track_mm", "offset_mm", "cmd_left", "speed_left", "loop_ms"} <= set(after["latest"])
            rows = page.evaluate("document.getElementById('nodes').innerText")
            assert "line_detector" in rows and "running" in rows
            assert after["teleop"]["commander"] == "controller" and not after["teleop"]["manual"]

            page.evaluate("document.getElementById('manual').click()")  # manual: the controller stops commanding
            page.wait_for("window.viewStats.teleop.manual === true")
            for _ in range(3):
                page.key("w", "KeyW", 87)  # faster, three times: 0.3 m/s
            page.wait_for("window.viewStats.teleop.speed === 0.3")
            page.wait_for("window.viewStats.teleop.last.left === 0.3 && window.viewStats.teleop.published > 5")
            page.wait_for("Math.abs(window.viewStats.latest.speed_left - 0.3) < 0.03", timeout=15)  # the car obeys
            page.key("a", "KeyA", 65)  # and turns off the line, far enough that the line is out of view
            page.wait_for("Math.abs(window.viewStats.latest.cross_track_mm) > 150", timeout=15)
            off_line_at = time.monotonic()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "view.png").write_bytes(page.screenshot())
        # the page went away while it drove: the car stops, and stays stopped
        deadline = time.monotonic() + 15
        while max(abs(v) for v in _wheel_speeds(name)) > 0.02:
            assert time.monotonic() < deadline, "the car kept driving after its driver's page closed"
            time.sleep(0.3)
        time.sleep(max(1.0, off_line_at + 4.0 - time.monotonic()))
        assert max(abs(v) for v in _wheel_speeds(name)) <= 0.02
        assert run.poll() is None  # a car driven off the line by hand is not lost: the run goes on (no --laps)

        with browser_page(url) as page, browser_page(url) as second:  # two pages at once; one stops the run
            for each in (page, second):
                each.wait_for("window.viewStats.pages === 2 && window.viewStats.frames >= 3")
            page.evaluate("document.getElementById('manual').click()")  # take the car (still standing) ...
            page.wait_for("window.viewStats.teleop.manual === true")
            page.evaluate("document.getElementById('manual').click()")  # ... and hand it back off the line: it refuses
            page.wait_for("window.viewStats.teleop.manual === false")
            page.wait_for("window.viewStats.safety.some((e) => e.node === 'controller' && e.change === 'stop')")
            banner = page.evaluate("document.getElementById('safety').innerText")
            assert (
                banner.startswith("controller: stopped (")
                and page.evaluate("getComputedStyle(document.getElementById('safety')).display") == "block"
            ), banner
            (ARTIFACTS / "view-safety.png").write_bytes(page.screenshot())
            page.evaluate("document.getElementById('stop').click()")
            run.wait(timeout=30)
    finally:
        end_process(run, grace=30)  # car launch stops its nodes and its view in order
    assert run.returncode == 0, "".join(said)
    assert "3 of 3 nodes ok" in "".join(said)
    assert wait_until_gone(name, timeout=10) == []  # the view ended with the run: nothing left running


def test_foxglove_sees_the_same_channels_live_over_its_websocket_protocol(tmp_path: Path) -> None:
    name = f"foxglove-{time.time_ns()}"
    options = ["--headless", "--foxglove", "--foxglove-port", "0", "--duration", "120", "--quiet", "--name", name]
    run = start_car("launch", str(FOLLOW_LINE), *options, "--out", str(tmp_path / "out"), cwd=tmp_path)
    said: list[str] = []
    try:
        address = _url_of(run, said, pattern=FOXGLOVE)
        assert not any(re.search(PAGE, line) for line in said)  # --foxglove alone: no page
        with connect(address, subprotocols=[Subprotocol("foxglove.sdk.v1")], max_size=2**24) as client:
            channels: dict[str, dict[str, object]] = {}
            deadline = time.monotonic() + 20
            while len(channels) < 5 and time.monotonic() < deadline:
                message = client.recv(timeout=10)
                if isinstance(message, str) and json.loads(message)["op"] == "advertise":
                    channels.update({c["topic"]: c for c in json.loads(message)["channels"]})
            assert set(channels) == {
                "car_io/image",
                "car_io/sensors",
                "car_io/pose",
                "controller/cmd",
                "line_detector/line",
            }
            assert (channels["car_io/image"]["schemaName"], channels["car_io/image"]["encoding"]) == (
                "foxglove.RawImage",
                "protobuf",
            )
            assert channels["car_io/pose"]["encoding"] == "json"
            wanted = {1: channels["car_io/image"]["id"], 2: channels["car_io/pose"]["id"]}
            subscriptions = [{"id": k, "channelId": c} for k, c in wanted.items()]
            client.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))
            got: dict[int, bytes] = {}
            while len(got) < 2:
                message = client.recv(timeout=10)
                if isinstance(message, bytes) and message[0] == 1:  # message data: subscription, log time, payload
                    subscription, log_time = struct.unpack_from("<IQ", message, 1)
                    assert abs(log_time / 1e9 - time.time()) < 60
                    got.setdefault(subscription, message[13:])
        assert len(got[1]) > 320 * 240 * 3  # a whole frame, its bytes as they are (protobuf, no base64)
        pose = json.loads(got[2])
        assert {"x", "y", "heading", "cross_track", "_metadata"} <= set(pose)
    finally:
        end_process(run, grace=30)  # car launch stops its nodes and its view in order
    assert run.returncode == 0, "".join(said)
    assert wait_until_gone(name, timeout=10) == []


@given(st.integers(1, 20), st.lists(st.integers(0, 200), max_size=30))
def test_kept_hands_each_reader_what_came_after_what_it_has(size: int, reads: list[int]) -> None:
    kept: Kept[int] = Kept(size)
    seen, got, count = 0, [], 0
    for appended in reads:
        new = list(range(count, count + appended))
        for item in new:
            kept.append(item)
        count += appended
        seen, fresh = kept.since(seen)
        assert seen == count and len(kept.items) <= 2 * size
        if appended <= size:
            assert fresh == new  # a reader that keeps up misses nothing
        else:
            assert fresh[-size:] == new[-size:]  # one that falls behind gets the newest, in order
        got += fresh
    assert got == sorted(set(got))  # each once, in order


def test_odometry_follows_a_straight_and_a_circle() -> None:
    pose = Pose(0.0, 0.0, 0.0)
    for _ in range(100):  # 1 s at 0.5 m/s, straight ahead
        pose = odometry_step(pose, 0.01, 0.5, 0.5, 0.14)
    assert pose.x == pytest.approx(0.5) and pose.y == pytest.approx(0.0) and pose.heading == 0.0
    radius, speed, base = 0.5, 0.4, 0.14  # a full circle to the left comes back where it started
    left, right = speed * (1 - base / (2 * radius)), speed * (1 + base / (2 * radius))
    steps = round(2 * math.pi * radius / speed / 0.01)
    start = pose
    for _ in range(steps):
        pose = odometry_step(pose, 2 * math.pi * radius / speed / steps, left, right, base)
    assert (pose.x, pose.y) == (pytest.approx(start.x, abs=1e-9), pytest.approx(start.y, abs=1e-9))
    assert pose.heading == pytest.approx(2 * math.pi)
