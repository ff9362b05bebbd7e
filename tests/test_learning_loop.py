"""Teaching the car end to end: `car collect` with the simulator's expert, `car train` on what it recorded, the
learned pilot driving with the model (and the shipped models lapping tracks they never saw), and one clear error
for each bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from car.recording.channels import decode
from hal.description import load_description
from learn.dataset import sha256
from learn.export import read_metadata
from nodes.expert import Expert, ExpertParams, Pose
from nodes.pilot_model import blob, load_model, shrink
from sim import load_track
from tests.helpers import ROOT, car
from tests.test_tutorials import TUTORIALS, run_tutorial

pytestmark = pytest.mark.xdist_group("learning_loop")  # its module-scoped fixture runs once, on one worker

PILOT = str(ROOT / "dataflows" / "pilot.yml")
HELD_OUT = ROOT / "tests" / "fixtures" / "tracks"


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder where docs/tutorials/teach-a-track.md ran as written: the line follower refused a lane road
    (refused.json), the expert drove one noisy lap of the lane oval (lane.mcap), two epochs trained on it, again
    from the cache (lane.onnx), and the shipped model lapped a road it never saw (kidney.json). The tests below judge
    what it made."""
    folder = tmp_path_factory.mktemp("tutorial")
    run_tutorial(TUTORIALS / "teach-a-track.md", folder)
    return folder


@pytest.fixture(scope="module")
def collected(tutorial: Path) -> Path:
    """One noisy lap of the lane oval, collected by the expert (`car collect ... --noise 1.2 --seed 4`)."""
    return tutorial / "lane.mcap"


def _messages(path: Path, topics: list[str]) -> dict[str, list[tuple[object, dict[str, object]]]]:
    from mcap.reader import make_reader

    found: dict[str, list[tuple[object, dict[str, object]]]] = {t: [] for t in topics}
    with open(path, "rb") as stream:
        for schema, channel, message in make_reader(stream).iter_messages(topics=topics, log_time_order=True):
            found[channel.topic].append(decode(schema.name if schema is not None else "", message.data))
    return found


@pytest.mark.slow
def test_collected_labels_are_the_experts_corrections_under_noise(collected: Path) -> None:
    recorded = _messages(collected, ["car_io/pose", "expert/label", "expert/cmd", "car_io/image"])
    assert len(recorded["car_io/image"]) > 250  # a lap of 10 s at 30 frames a second
    poses = {metadata["frame"]: value for value, metadata in recorded["car_io/pose"]}
    executed = {metadata["frame"]: value for value, metadata in recorded["expert/cmd"]}
    clean = Expert(load_track("lane_oval"), ExpertParams())
    steered_differently = 0
    for value, metadata in recorded["expert/label"]:
        pose = poses[metadata["frame"]]
        assert isinstance(value, dict) and isinstance(pose, dict)
        step = clean.step(Pose(pose["t"], pose["x"], pose["y"], pose["heading"]))
        left, right = step.label.wheels(load_description().car.wheel_base)  # the simulator's car
        assert (value["left"], value["right"]) == pytest.approx((left, right), abs=2e-3)
        done = executed[metadata["frame"]]
        assert isinstance(done, dict)
        steered_differently += abs((done["right"] - done["left"]) - (right - left)) > 0.01
    assert steered_differently > 0.5 * len(recorded["expert/label"])  # the noise is in what the car did
    poses_off = [abs(p["cross_track"]) for p, _ in recorded["car_io/pose"] if isinstance(p, dict)]
    assert max(poses_off) > 0.02  # and it took the car off its line, for the expert to correct


@pytest.mark.slow
def test_a_tiny_model_trains_from_the_cache_when_nothing_changed_and_runs_alike_in_onnxruntime_and_opencv(
    tutorial: Path, collected: Path
) -> None:
    """(What another seed or other recordings do to the cache: tests/unit/test_learning.py.)"""
    import onnxruntime

    model = tutorial / "lane.onnx"  # two epochs, then the same again: from the cache (the page shows both)
    assert model.with_suffix(".png").stat().st_size > 5_000  # the loss curves beside it
    metadata = read_metadata(model)
    assert metadata["trained_on"][0]["sha256"] == sha256(collected)
    assert metadata["parameters"]["epochs"] == 2 and "jax" in metadata["versions"]
    assert metadata["validation"]["split"].startswith("one episode")
    # the car's runtime (OpenCV's DNN module) and onnxruntime agree on the recorded frames
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    on_car = load_model(model)
    frames = [value for value, _ in _messages(collected, ["car_io/image"])["car_io/image"][::40]]
    for frame in frames:
        assert isinstance(frame, np.ndarray)
        expected = session.run(None, {"frame": blob(shrink(frame))})[0][0]
        on_car._net.setInput(blob(shrink(frame)), "frame")
        assert np.allclose(on_car._net.forward()[0], expected, atol=1e-4)


@pytest.mark.slow
def test_the_tutorial_s_runs_the_refusal_and_the_shipped_model_on_a_road_it_never_saw(tutorial: Path) -> None:
    refused = json.loads((tutorial / "refused.json").read_text())  # follow_line.yml on the lane oval
    assert refused["completed"] is False and refused["distance_m"] < 0.5
    stop = refused["safety_stops"][0]
    assert stop["reason"] in ("line_lost", "perception_stale") and stop["stood_still"], refused
    kidney = json.loads((tutorial / "kidney.json").read_text())  # models/lane.onnx on lane_kidney (held out)
    assert kidney["completed"] and kidney["laps"] == 1, kidney
    assert kidney["mean_speed_mps"] >= 0.5 and not kidney["safety_stops"], kidney
    assert kidney["cross_track_rms_m"] <= 0.03 and kidney["cross_track_max_m"] <= 0.08, kidney


@pytest.mark.slow
def test_bad_inputs_get_one_clear_error_and_start_nothing(collected: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = car("launch", PILOT, "--headless", "--out", str(out), cwd=tmp_path)
    assert missing.returncode == 2 and "is a learned pilot: give it a model with --model FILE.onnx" in missing.stderr
    (tmp_path / "notes.onnx").write_text("not a model\n")
    wrong = car("launch", PILOT, "--model", str(tmp_path / "notes.onnx"), "--headless", "--out", str(out), cwd=tmp_path)
    assert wrong.returncode == 2 and "notes.onnx: not an ONNX model" in wrong.stderr
    assert "Traceback" not in missing.stderr + wrong.stderr and not out.exists()
    # a recording without camera frames teaches nothing
    from car.recording.sink import McapSink

    empty = tmp_path / "poses.mcap"
    sink = McapSink(empty, "")
    sink.write("car_io/pose", {"t": 0.0, "x": 0.0, "y": 0.0, "heading": 0.0}, {"frame": 0}, 1)
    sink.close()
    untrainable = car("train", str(empty), "-o", str(tmp_path / "m.onnx"), cwd=tmp_path)
    assert untrainable.returncode == 2 and "poses.mcap: no camera frames in it" in untrainable.stderr
    assert "Traceback" not in untrainable.stderr and not (tmp_path / "m.onnx").exists()
    nowhere = car("collect", "--track", "nope", "-o", str(tmp_path / "d.mcap"), cwd=tmp_path)
    assert nowhere.returncode == 2 and "--track nope: no track named `nope`" in nowhere.stderr


@pytest.mark.slow
@pytest.mark.parametrize("track", ["lane_curves", "lane_loop"])  # lane_oval: in the tutorial
def test_the_classic_line_follower_stops_on_a_lane_track_instead_of_wandering(track: str, tmp_path: Path) -> None:
    report = tmp_path / "run.json"
    args = ["launch", str(ROOT / "dataflows" / "follow_line.yml"), "--track", track, "--laps", "1", "--headless"]
    args += ["--realtime-factor", "0", "--report", str(report), "--out", str(tmp_path / "out")]
    result = car(*args, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert figures["completed"] is False
    stops = figures["safety_stops"]
    assert stops and stops[0]["reason"] in ("line_lost", "perception_stale") and stops[0]["stood_still"], stops
    assert figures["distance_m"] < 0.5 and figures["final_speed_mps"] == pytest.approx(0.0, abs=0.01), figures
    assert figures["collisions"] == 0 and not math.isnan(figures["cross_track_max_m"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "track", "min_speed", "max_rms", "max_cross_track"),
    [("line.onnx", str(HELD_OUT / "pill.yml"), 0.6, 0.015, 0.04)],  # tape it never saw (lane.onnx: the tutorial)
)
def test_a_shipped_model_laps_a_track_it_was_not_trained_on(
    model: str, track: str, min_speed: float, max_rms: float, max_cross_track: float, tmp_path: Path
) -> None:
    report = tmp_path / "run.json"
    args = ["launch", PILOT, "--model", str(ROOT / "models" / model), "--track", track, "--laps", "2", "--headless"]
    args += ["--realtime-factor", "0", "--report", str(report), "--out", str(tmp_path / "out")]
    result = car(*args, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert figures["completed"] and figures["laps"] == 2, figures
    assert figures["mean_speed_mps"] >= min_speed, figures
    assert figures["cross_track_rms_m"] <= max_rms and figures["cross_track_max_m"] <= max_cross_track, figures
    assert not figures["safety_stops"], figures


@pytest.mark.slow
@pytest.mark.parametrize(("camera", "reason"), [("ends", "perception_closed"), ("freezes", "perception_stale")])
def test_the_learned_pilot_stops_when_its_frames_stop_coming(camera: str, reason: str, tmp_path: Path) -> None:
    """The pilot's safety: with the camera gone (its node ended) or frozen (no frames, the node still there), the car
    stops and the report says why."""
    import yaml

    flow = yaml.safe_load(Path(PILOT).read_text())
    for node in flow["nodes"]:
        if node["id"] == "pilot":
            node["inputs"]["image"] = {"source": "gate/image", "queue_size": 1}
    flow["nodes"].append(
        {"id": "gate", "path": str(tmp_path / "gate.py"), "inputs": {"image": "car_io/image"}, "outputs": ["image"]}
    )
    (tmp_path / "gate.py").write_text(
        "from car import Node\n"
        "node = Node()\n"
        "for event in node:\n"
        "    if event.type == 'INPUT':\n"
        "        if event.metadata.get('t_sim', 0) > 3.0:\n"
        f"            {'break' if camera == 'ends' else 'continue'}  # three seconds in\n"
        "        node.send_output('image', event.value, event.metadata)\n"
    )
    (tmp_path / "pilot.yml").write_text(yaml.safe_dump(flow, sort_keys=False))
    report = tmp_path / "run.json"
    args = [
        "launch",
        str(tmp_path / "pilot.yml"),
        "--model",
        str(ROOT / "models" / "lane.onnx"),
        "--track",
        "lane_oval",
    ]
    args += [
        "--sim-time",
        "5",
        "--headless",
        "--realtime-factor",
        "0",
        "--report",
        str(report),
        "--out",
        str(tmp_path / "out"),
    ]
    result = car(*args, cwd=tmp_path, timeout=120)
    figures = json.loads(report.read_text())
    stops = [s for s in figures["safety_stops"] if s["node"] == "pilot"]
    assert stops and stops[0]["reason"] == reason, (figures, result.stderr[-2000:])
    assert 3.0 <= stops[0]["t"] <= 3.3 and stops[0]["stood_still"], stops
    assert figures["final_speed_mps"] == pytest.approx(0.0, abs=0.01)


@pytest.mark.slow
def test_a_model_shown_a_floor_unlike_its_training_stops_the_car_and_says_it_is_unsure(tmp_path: Path) -> None:
    """The lane model on the tape oval: what it sees is not what it knows, so it is unsure (its on-road output,
    calibrated in training), and the car stops instead of driving on."""
    report = tmp_path / "run.json"
    args = ["launch", PILOT, "--model", str(ROOT / "models" / "lane.onnx"), "--track", "oval", "--sim-time", "4"]
    args += ["--headless", "--realtime-factor", "0", "--report", str(report), "--out", str(tmp_path / "out")]
    result = car(*args, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(report.read_text())
    stops = [s for s in figures["safety_stops"] if s["node"] == "pilot"]
    assert stops and stops[0]["reason"] == "model_unsure" and stops[0]["stood_still"], figures
    assert figures["distance_m"] < 0.6 and figures["final_speed_mps"] == pytest.approx(0.0, abs=0.01), figures
    assert "the model unsure of the road" in result.stderr
