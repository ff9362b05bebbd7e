"""Recording a running graph to MCAP (`car record`) and reading it back (`car info`, the `mcap` reader)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from car.recording import channels as mcap_channels
from tests.helpers import (
    COUNTING_FLOW,
    SINK,
    car,
    counting_source,
    launched,
    read_recording,
    start_car,
    wait_for_nodes,
    write_flow,
)

pytestmark = pytest.mark.slow


def test_a_recorded_run_reads_back_with_every_message_its_channels_and_schemas(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, COUNTING_FLOW, src_py=counting_source(250), sink_py=SINK)
    name = f"rec-{os.getpid()}"
    path = tmp_path / "run.mcap"
    run = start_car("launch", str(flow), "--name", name, "--out", str(tmp_path / "out"), cwd=tmp_path)
    try:
        wait_for_nodes(name, ("src", "sink"))
        recorder = subprocess.Popen(
            [sys.executable, "-m", "car", "record", "-d", name, "-o", str(path)],
            stderr=subprocess.PIPE,
            text=True,
        )
        _, said = recorder.communicate(timeout=60)  # until the source's streams end
        assert recorder.returncode == 0, said
        _, ran = run.communicate(timeout=30)
        assert run.returncode == 0, ran
    finally:
        run.kill()
        run.communicate()
    assert "(run ended); none lost" in said, said
    got = read_recording(path)
    assert set(got) == {"src/small", "src/frame"}
    numbers = [value["n"] for _, value, _ in got["src/small"]]  # type: ignore[index]
    assert numbers == list(range(numbers[0], 251))  # from joining to the end: every one, in order
    assert len(got["src/frame"]) == len(numbers)
    for _, frame, metadata in got["src/frame"][:: len(numbers) // 5]:
        assert isinstance(frame, np.ndarray) and frame.shape == (480, 640, 3)
        assert np.array_equal(frame, np.full((480, 640, 3), int(metadata["n"]) % 256, np.uint8))  # type: ignore[call-overload]
    times = [t for t, _, _ in got["src/small"]]
    assert times == sorted(times) and abs(times[-1] / 1e9 - time.time()) < 60  # the sender's clock, in ns

    info = car("info", str(path), "--json")
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    channels = {c["topic"]: c for c in described["channels"]}
    assert channels["src/frame"]["schema"] == "foxglove.RawImage" and channels["src/frame"]["encoding"] == "json"
    assert channels["src/small"]["schema"] == "car.json"
    assert channels["src/small"]["messages"] == len(numbers) and 40 <= channels["src/small"]["rate_hz"] <= 60
    assert described["metadata"]["car.run"]["dataflow"] == name and described["attachments"] == ["flow.yml"]
    plain = car("info", str(path))
    assert "foxglove.RawImage" in plain.stdout and "src/frame" in plain.stdout


def test_a_recording_stopped_with_ctrl_c_is_a_complete_file_and_mistakes_are_clear(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, COUNTING_FLOW, src_py=counting_source(100_000), sink_py=SINK)
    name = f"rec-int-{os.getpid()}"
    path = tmp_path / "part.mcap"
    with launched(flow, name, ("src", "sink"), tmp_path):
        recorder = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "car",
                "record",
                "-d",
                name,
                "-o",
                str(path),
                "--topics",
                "src/small",
                "--compress",
                "jpeg",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.0)
        recorder.send_signal(signal.SIGINT)
        _, said = recorder.communicate(timeout=30)
        assert recorder.returncode == 0 and "(stopped)" in said, said
        unknown = car("record", "-d", name, "-o", str(tmp_path / "x.mcap"), "--topics", "src/nothing")
        assert unknown.returncode == 2 and "no output `src/nothing`" in unknown.stderr
        bad_name = car("record", "-d", name, "-o", str(tmp_path / "x.bag"))
        assert bad_name.returncode == 2 and "FILE.mcap" in bad_name.stderr
    got = read_recording(path)
    assert set(got) == {"src/small"} and len(got["src/small"]) > 20
    broken = tmp_path / "broken.mcap"
    broken.write_bytes(path.read_bytes()[:200])
    for wrong in (broken, tmp_path / "none.mcap"):
        result = car("info", str(wrong))
        assert result.returncode == 2 and "Traceback" not in result.stderr and str(wrong) in result.stderr


@given(
    st.one_of(
        hnp.arrays(np.uint8, st.sampled_from([(4, 5), (4, 5, 1), (4, 5, 3), (3, 2, 4)])),
        hnp.arrays(hnp.floating_dtypes() | hnp.integer_dtypes(), hnp.array_shapes(max_dims=3, max_side=4)),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
            max_leaves=8,
        ),
    )
)
def test_every_value_a_node_sends_reads_back_from_its_channel_as_it_was(value: object) -> None:
    kind = mcap_channels.kind_of(value)
    data = mcap_channels.encode(kind, value, {"n": 1}, 1_500_000_000_123, "node")
    back, metadata = mcap_channels.decode(kind.schema_name, data)
    assert metadata == {"n": 1}
    if isinstance(value, np.ndarray):
        assert isinstance(back, np.ndarray) and back.dtype == value.dtype
        assert np.array_equal(back.reshape(value.shape), value, equal_nan=value.dtype.kind == "f")
    else:
        assert back == value


def test_car_launch_record_keeps_every_message_from_the_first_to_the_last_or_counts_it(tmp_path: Path) -> None:
    """From the first message to the last (the run's end does not cut the last ones off); a frame the recorder
    could not read before its shared-memory slot was reused (it fell behind by more than the senders' rings can
    grow to keep for it: it never slows the graph) is counted as lost, never silently missing."""
    flow = write_flow(tmp_path, COUNTING_FLOW, src_py=counting_source(150), sink_py=SINK)
    path = tmp_path / "launched.mcap"
    result = car("launch", str(flow), "--record", str(path), "--out", str(tmp_path / "out"), cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    said = re.search(
        r"recorded (\d+) messages on 2 channels .*(none lost|lost (\d+) \(the recorder fell behind\))", result.stderr
    )
    assert said, result.stderr
    lost = int(said.group(3) or 0)
    assert int(said.group(1)) + lost == 300, result.stderr
    got = read_recording(path)
    assert [value["n"] for _, value, _ in got["src/small"]] == list(range(1, 151))  # type: ignore[index]
    frames = [int(metadata["n"]) for _, _, metadata in got["src/frame"]]  # type: ignore[call-overload]
    assert frames == sorted(set(frames)) and len(frames) + lost == 150 and frames[-1] == 150, (frames, lost)
    only = tmp_path / "only.mcap"
    small = car(
        "launch",
        str(flow),
        "--record",
        str(only),
        "--topics",
        "src/small",
        "--out",
        str(tmp_path / "out"),
        cwd=tmp_path,
        timeout=120,
    )
    assert small.returncode == 0 and set(read_recording(only)) == {"src/small"}, small.stderr
    for wrong, said in (
        (["--topics", "src/small"], "give --record"),
        (["--record", str(path), "--topics", "src/x"], "no such output"),
    ):
        refused = car("launch", str(flow), *wrong, cwd=tmp_path)
        assert refused.returncode == 2 and said in refused.stderr and "Traceback" not in refused.stderr
