"""`car replay`: a recording's outputs played into a dataflow in place of the nodes that sent them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from car.recording.sink import describe_file
from tests.helpers import COUNTING_FLOW, ROOT, SINK, car, counting_source, read_recording, write_flow

pytestmark = pytest.mark.slow

FOLLOW_LINE = ROOT / "dataflows" / "follow_line.yml"


def _by_frame(messages: list[tuple[int, object, dict[str, object]]]) -> dict[object, object]:
    return {metadata["frame"]: value for _, value, metadata in messages}


def test_replayed_camera_frames_make_line_detector_detect_exactly_what_it_did(tmp_path: Path) -> None:
    recorded = tmp_path / "drive.mcap"
    out = str(tmp_path / "out")
    options = [
        "--sim-time",
        "4",
        "--seed",
        "2",
        "--record",
        str(recorded),
        "--out",
        out,
    ]  # 4 s of car time, however long it starts
    drive = car("launch", str(FOLLOW_LINE), *options, timeout=120)
    assert drive.returncode == 0 and "none lost" in drive.stderr, drive.stderr
    launched = describe_file(recorded, sizes=False)["metadata"]["car.launch"]  # the simulator's track and seed
    assert (launched["CAR_TRACK"], launched["CAR_SEED"], launched["CAR_BACKEND"]) == ("oval", "2", "sim"), launched
    original = read_recording(recorded)
    assert len(original["car_io/image"]) > 60 and len(original["line_detector/line"]) > 60

    replayed = tmp_path / "replayed.mcap"
    fast = ["--replace", "car_io", "--fast", "--record", str(replayed), "--out", out]
    again = car("replay", str(recorded), *fast, timeout=120)  # the dataflow: the one recorded
    assert again.returncode == 0, again.stderr
    assert "`car_io` replayed from" in again.stderr, again.stderr
    said = re.search(r"\(run ended\); (none lost|lost (\d+) \(the recorder fell behind\))", again.stderr)
    assert said, again.stderr
    lost = int(said.group(2) or 0)  # `--fast` may outrun the recorder on a busy machine: it counts what it missed
    got = read_recording(replayed)
    assert "controller/cmd" in got  # the controller ran live on what was played
    for topic in ("car_io/sensors", "car_io/pose"):  # every message, as recorded, in order
        assert [m for _, _, m in got[topic]] == [m for _, _, m in original[topic]], topic
    sent_frames = {m["frame"]: value for _, value, m in original["car_io/image"]}
    played_frames = [(m["frame"], value) for _, value, m in got["car_io/image"]]
    assert [k for k, _ in played_frames] == sorted(k for k, _ in played_frames)  # in order
    assert len(played_frames) + lost == len(sent_frames)  # each frame recorded again, or counted as missed
    for frame, played in played_frames:
        assert isinstance(played, np.ndarray) and np.array_equal(played, sent_frames[frame])  # type: ignore[arg-type]
    detected, redetected = _by_frame(original["line_detector/line"]), _by_frame(got["line_detector/line"])
    assert len(detected) == len(original["line_detector/line"])
    if len(detected) == len(original["car_io/image"]):  # the detector took every frame when recorded: all again
        assert redetected == detected
    else:  # it skipped some frames then (queue_size 1): now it sees every one; the first ones still agree
        first_skipped = next(k for k, (_, _, m) in enumerate(original["car_io/image"]) if m["frame"] not in detected)
        assert first_skipped > 0
        same = [m["frame"] for _, _, m in original["car_io/image"][:first_skipped]]
        assert {k: redetected[k] for k in same} == {k: detected[k] for k in same}

    timed = tmp_path / "timed.mcap"
    start = original["car_io/image"][0][0]
    end = max(t for messages in original.values() for t, _, _ in messages)
    offset = round((end - start) / 2e9, 1)  # from half-way, twice as fast, the camera only
    paced = ["--topics", "car_io/image", "--start-offset", str(offset), "--rate", "2"]
    in_time = car("replay", str(recorded), *paced, "--record", str(timed), "--out", out, timeout=120)
    assert in_time.returncode == 0, in_time.stderr
    assert "never sent: car_io/sensors, car_io/pose" in in_time.stderr, in_time.stderr
    assert "none lost" in in_time.stderr, in_time.stderr
    frames = read_recording(timed)["car_io/image"]
    first_ns = min(t for messages in original.values() for t, _, _ in messages) + int(offset * 1e9)
    expected = [m for t, _, m in original["car_io/image"] if t >= first_ns]
    assert [m for _, _, m in frames] == expected, in_time.stderr
    recorded_span = (original["car_io/image"][-1][0] - first_ns) / 1e9
    played_span = (frames[-1][0] - frames[0][0]) / 1e9
    assert recorded_span / 2 * 0.8 <= played_span + 1 / 15 <= recorded_span / 2 + 5  # paced, not all at once


def test_replay_loops_and_says_what_is_wrong_with_what_it_was_given(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, COUNTING_FLOW, src_py=counting_source(50), sink_py=SINK)
    recorded = tmp_path / "count.mcap"
    out = str(tmp_path / "out")
    made = car("launch", str(flow), "--record", str(recorded), "--out", out, cwd=tmp_path, timeout=120)
    assert made.returncode == 0, made.stderr

    looped = tmp_path / "looped.mcap"
    loop = ["--replace", "src", "--rate", "4", "--loop", "--duration", "4", "--record", str(looped), "--out", out]
    played = car("replay", str(recorded), *loop, cwd=tmp_path, timeout=120)
    assert played.returncode == 0, played.stderr
    numbers = [value["n"] for _, value, _ in read_recording(looped)["src/small"]]  # type: ignore[index]
    assert numbers[:100] == list(range(1, 51)) * 2  # one second of recording each 0.25 s: several rounds

    moved = tmp_path / "elsewhere.yml"
    flow.rename(moved)  # the recorded dataflow is gone from where it was
    for wrong, said in (
        ([], "give --dataflow FILE"),
        (["--dataflow", str(moved), "--replace", "nobody"], "--replace nobody: "),
        (["--dataflow", str(moved), "--replace", "sink"], "has no output of `sink`"),
        (["--dataflow", str(moved), "--topics", "src/nope"], "has no messages of it (src/small, src/frame)"),
        (["--dataflow", str(moved), "--rate", "0"], "give a speed above 0"),
        (["--dataflow", str(moved), "--start-offset", "60"], "lasts"),
        (["--dataflow", str(moved), "--rate", "2", "--fast"], "not allowed with argument"),
    ):
        refused = car("replay", str(recorded), *wrong, cwd=tmp_path)
        assert refused.returncode == 2 and said in refused.stderr, (wrong, refused.stderr)
        assert "Traceback" not in refused.stderr
    missing = car("replay", str(tmp_path / "none.mcap"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr
