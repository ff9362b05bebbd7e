"""Teaching the car, in-process: the expert's corrections, labels from commands, the cleaning sidecar, the split
by episode, augmentation, and the exported model run alike by JAX, onnxruntime and OpenCV's DNN module."""

from __future__ import annotations

import json
import math
from dataclasses import astuple
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learn.dataset import Dataset, Label
from learn.sidecar import Dropped, Sidecar, SidecarError
from learn.train import split
from nodes.expert import Expert, ExpertParams, Pose
from nodes.learned_pilot import Steering
from nodes.pilot_model import INPUT_HEIGHT, INPUT_WIDTH, Decision, ModelError, blob, load_model, shrink
from sim import load_track

pytestmark = pytest.mark.xdist_group("learning")  # its module-scoped fixture runs once, on one worker

# -- the expert ------------------------------------------------------------------------------


@pytest.mark.parametrize("track_name", ["lane_oval", "oval"])
def test_the_expert_steers_back_toward_its_line_from_either_side(track_name: str) -> None:
    track = load_track(track_name)
    expert = Expert(track, ExpertParams())
    x, y, heading = track.pose_at(0.3)  # on a straight, heading along it
    left_of = expert.step(Pose(0.0, x - 0.05 * math.sin(heading), y + 0.05 * math.cos(heading), heading))
    assert left_of.label.curvature < -0.5 and left_of.cross_track == pytest.approx(0.05, abs=1e-3)
    expert = Expert(track, ExpertParams())
    right_of = expert.step(Pose(0.0, x + 0.05 * math.sin(heading), y - 0.05 * math.cos(heading), heading))
    assert right_of.label.curvature > 0.5
    on = Expert(track, ExpertParams()).step(Pose(0.0, x, y, heading))
    assert abs(on.label.curvature) < 0.1 and on.on_road and on.label.speed == pytest.approx(0.75)


def test_with_noise_the_car_executes_something_else_but_the_label_stays_the_experts_correction() -> None:
    track = load_track("lane_oval")
    noisy = Expert(track, ExpertParams(noise=1.5, excursions_per_minute=30, seed=3))
    clean = Expert(track, ExpertParams())
    x, y, heading = track.pose_at(0.0)
    differences = []
    for k in range(400):
        pose = Pose(k * 0.01, x, y, heading)
        step = noisy.step(pose)
        assert step.label == clean.step(pose).label  # the label depends on the pose only
        differences.append(step.executed.curvature - step.label.curvature)
    assert np.std(differences) > 0.3  # what is executed wanders
    assert step.executed.speed == step.label.speed


def test_the_expert_slows_for_the_tight_bends_ahead() -> None:
    track = load_track("lane_curves")
    expert = Expert(track, ExpertParams(max_speed=2.0))
    speeds = [expert.step(Pose(0.0, *track.pose_at(s))).label.speed for s in np.arange(0, track.length, 0.25)]
    assert min(speeds) < 0.8 * max(speeds)
    assert min(speeds) == pytest.approx(math.sqrt(1.6 * np.abs(track.curvature).max()) ** -1 * 1.6, rel=0.05)


# -- labels, cleaning, split -----------------------------------------------------------------


def test_a_wheel_command_becomes_speed_and_curvature_and_standing_still_teaches_nothing() -> None:
    label = Label.from_wheels(0.4, 0.6, wheel_base=0.2)
    assert label is not None and label.speed == pytest.approx(0.5) and label.curvature == pytest.approx(2.0)
    assert Label.from_wheels(0.0, 0.02, 0.2) is None  # hardly moving
    assert Label.from_wheels(-0.3, -0.3, 0.2) is None  # backing up
    steering = Steering(wheel_base=0.2)
    assert steering.wheels(Decision(2.0, 0.5, 0.9)) == pytest.approx((0.4, 0.6))  # and back again
    assert Steering(0.2, speed_scale=0.5).wheels(Decision(0.0, 0.5, 0.9)) == pytest.approx((0.25, 0.25))
    assert steering.wheels(Decision(1.0, -0.3, 0.9)) == (0.0, 0.0)  # the model never backs the car up


def test_the_cleaning_sidecar_keeps_what_it_does_not_drop_and_round_trips(tmp_path: Path) -> None:
    recording = tmp_path / "drive.mcap"
    assert Sidecar.path_for(recording).name == "drive.clean.json"
    assert Sidecar.load(recording).keeps(123)  # no sidecar: everything kept
    sidecar = Sidecar([Dropped(100, 200), Dropped(500, 500)])
    sidecar.save(recording)
    again = Sidecar.load(recording)
    assert again == sidecar
    assert [again.keeps(t) for t in (99, 100, 150, 200, 201, 500, 501)] == [
        True,
        False,
        False,
        False,
        True,
        False,
        True,
    ]
    assert json.loads(Sidecar.path_for(recording).read_text())["recording"] == "drive.mcap"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], r"a cleaning file is"),
        ({"drop": [{"start_ns": 5}]}, r"drop range 1 needs whole-number start_ns <= end_ns"),
        ({"drop": [{"start_ns": 9, "end_ns": 5}]}, r"drop range 1"),
        ({"drop": [{"start_ns": 1, "end_ns": 2}, "x"]}, r"drop range 2"),
    ],
)
def test_a_bad_cleaning_file_names_the_field(raw: Any, message: str) -> None:
    with pytest.raises(SidecarError, match=message):
        Sidecar.from_json(raw, "drive.clean.json")


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=8), c),
        max_leaves=12,
    )
)
def test_fuzzed_cleaning_files_parse_or_are_refused_clearly(raw: Any) -> None:
    try:
        sidecar = Sidecar.from_json(raw, "x.clean.json")
    except SidecarError as exc:
        assert str(exc).startswith("x.clean.json: ")
    else:
        assert all(r.start_ns <= r.end_ns for r in sidecar.drop)


def _dataset(episodes: list[int]) -> Dataset:
    count = len(episodes)
    return Dataset(
        np.zeros((count, INPUT_HEIGHT, INPUT_WIDTH, 3), np.uint8),
        np.zeros((count, 3), np.float32),
        np.asarray(episodes),
        [f"e{k}" for k in range(max(episodes) + 1)],
    )


def test_validation_holds_out_whole_episodes_and_one_episode_is_split_by_time() -> None:
    data = _dataset([0] * 50 + [1] * 40 + [2] * 30 + [3] * 60 + [4] * 20)
    chosen = split(data, 0.4, seed=1)
    assert chosen.how == "by episode" and len(chosen.held_out) == 2
    for k in range(5):  # no episode is on both sides
        in_episode = data.episodes == k
        assert chosen.validate[in_episode].all() or chosen.train[in_episode].all()
    assert split(data, 0.4, seed=1).held_out == chosen.held_out  # seeded
    one = split(_dataset([0] * 100), 0.2, seed=0)
    assert one.how.startswith("one episode") and one.validate[80:].all() and not one.validate[:80].any()


def test_augmentation_keeps_the_shape_and_changes_the_frames() -> None:
    from learn.augment import augment

    frames = np.random.default_rng(0).integers(0, 255, (16, INPUT_HEIGHT, INPUT_WIDTH, 3)).astype(np.uint8)
    changed = augment(frames, np.random.default_rng(1))
    assert changed.shape == frames.shape and changed.dtype == np.uint8
    assert np.abs(changed.astype(int) - frames).mean() > 5
    assert np.array_equal(changed, augment(frames, np.random.default_rng(1)))  # seeded


# -- the model on the car ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    import jax

    from learn.export import save
    from learn.network import PilotNet

    model = PilotNet(jax.random.PRNGKey(4))
    path = tmp_path_factory.mktemp("model") / "pilot.onnx"
    save(model, path, {"trained_on": [{"file": "x.mcap", "sha256": "ab"}]})
    return model, path


def test_jax_onnxruntime_and_opencv_dnn_give_the_same_decision(exported: tuple[Any, Path]) -> None:
    import onnxruntime

    model, path = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    on_car = load_model(path)
    frames = np.random.default_rng(2).integers(0, 255, (6, 240, 320, 3)).astype(np.uint8)
    for frame in frames:
        given = blob(shrink(frame))
        expected = np.asarray(model(given[0]))
        runtime = session.run(None, {"frame": given})[0][0]
        assert np.allclose(runtime, expected, atol=1e-5)
        decided = astuple(on_car.decide(frame))
        assert decided == pytest.approx(astuple(Decision.from_outputs(runtime)), abs=1e-4)


def test_the_model_file_says_what_it_was_trained_on(exported: tuple[Any, Path]) -> None:
    from learn.export import read_metadata

    assert read_metadata(exported[1])["trained_on"] == [{"file": "x.mcap", "sha256": "ab"}]
    assert exported[1].stat().st_size < 2_000_000


def test_a_model_that_is_missing_not_onnx_or_the_wrong_shape_is_refused_clearly(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    with pytest.raises(ModelError, match=r"no such model file"):
        load_model(tmp_path / "none.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ModelError, match=r"text.onnx: not an ONNX model"):
        load_model(tmp_path / "text.onnx")

    def dense(name: str, inputs: int, outputs: int) -> Path:
        weight = numpy_helper.from_array(np.zeros((outputs, inputs), np.float32), "w")
        graph = helper.make_graph(
            [
                helper.make_node("Flatten", ["frame"], ["flat"], axis=1),
                helper.make_node("Gemm", ["flat", "w"], ["out"], transB=1),
            ],
            "g",
            [helper.make_tensor_value_info("frame", TensorProto.FLOAT, [1, 3, 96, 128])],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, outputs])],
            [weight],
        )
        path = tmp_path / name
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
        return path

    with pytest.raises(ModelError, match=r"does not take a 1x3x48x64 `frame` frame"):
        load_model(dense("big.onnx", 3 * 96 * 128, 3))
    with pytest.raises(ModelError, match=r"gives 2 numbers per frame, not 3"):
        load_model(dense("two.onnx", 3 * INPUT_HEIGHT * INPUT_WIDTH, 2))


def test_a_recording_of_someone_driving_pairs_each_frame_with_what_the_wheels_did_just_after(tmp_path: Path) -> None:
    """As `car launch ... --view --record` makes it: frames, and car_io's readings of the wheels every 10 ms (the
    view's commands reach car_io alone: the measured wheel speeds are what the driver made the car do)."""
    from car.recording.sink import McapSink
    from learn.dataset import RESPONSE_S, load

    path = tmp_path / "drive.mcap"
    sink = McapSink(path, "jpeg")
    ms = 1_000_000
    for k in range(100):  # standing for 0.2 s, then 0.3 and 0.5 m/s on the wheels
        speeds = [0.0, 0.0] if k < 20 else [0.3, 0.5]
        sink.write("car_io/sensors", {"t": k / 100, "speeds": speeds, "line": [0.0]}, {"frame": k}, (10 * k) * ms)
        if k % 3 == 0:
            sink.write("car_io/image", np.zeros((240, 320, 3), np.uint8), {"frame": k}, (10 * k) * ms + 1)
    sink.close()
    data = load([path], wheel_base=0.2)
    after = round(RESPONSE_S * 100) + 1  # frame k (logged just after reading k) takes the first reading RESPONSE_S on
    frames = [k for k in range(100) if k % 3 == 0 and 20 <= k + after <= 99]  # the wheels turning then, and read
    assert len(data) == len(frames) and data.episode_names == ["drive.mcap"]
    assert data.targets[0] == pytest.approx([2.5, 0.4, 1.0])  # (0.5 - 0.3) / 0.2 / 0.4 per metre at 0.4 m/s, on road


def test_calibration_puts_the_pilots_half_where_nearly_every_held_out_frame_on_the_road_stays_sure() -> None:
    import jax

    from learn.network import PilotNet
    from learn.train import calibrate

    rng = np.random.default_rng(5)
    count = 400
    data = Dataset(
        rng.integers(0, 255, (count, INPUT_HEIGHT, INPUT_WIDTH, 3)).astype(np.uint8),
        np.column_stack([np.zeros(count), np.full(count, 0.5), (np.arange(count) % 10 != 0)]).astype(np.float32),
        np.arange(count) % 4,
        ["a", "b", "c", "d"],
    )
    chosen = split(data, 0.5, seed=0)
    model, calibration = calibrate(PilotNet(jax.random.PRNGKey(0)), data, chosen, share=0.9)
    held = chosen.validate & (data.targets[:, 2] > 0.5)
    logits = np.asarray(jax.vmap(model)(blob(data.frames[held])))[:, 2]
    sure = np.mean(logits >= 0.0)  # the pilot's probability 0.5
    assert 0.88 <= sure <= 0.93 and calibration.frames == int(held.sum())  # 90 % of them, give or take a frame
    assert calibration.foreign_share is not None and 0 <= calibration.foreign_share <= 1


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=3))
def test_a_damaged_or_foreign_recording_is_one_clear_error(noise: bytes, keep: int) -> None:
    """Random bytes, or the start of a real recording cut short and followed by noise: DataError, never a traceback."""
    import tempfile

    from car.recording.sink import McapSink
    from learn.dataset import DataError, load

    with tempfile.TemporaryDirectory() as folder:
        whole = Path(folder) / "whole.mcap"
        sink = McapSink(whole, "")
        for k in range(4):
            sink.write("car_io/image", np.zeros((48, 64, 3), np.uint8), {"frame": k}, k + 1)
            sink.write("expert/label", {"left": 0.3, "right": 0.3}, {"frame": k}, k + 2)
        sink.close()
        data = whole.read_bytes()
        damaged = Path(folder) / "damaged.mcap"
        damaged.write_bytes(data[: len(data) * keep // 4] + noise)
        try:
            load([damaged], wheel_base=0.15)
        except DataError as exc:
            assert str(exc).startswith(str(damaged))


def test_a_training_is_named_by_its_recordings_cleaning_and_parameters(tmp_path: Path) -> None:
    """What `car train` finds in the cache: the same inputs, the same key; another seed, other recordings or a
    cleaning of them, another key (so they train)."""
    from learn.cached import training_key

    data = tmp_path / "lane.mcap"
    data.write_bytes(b"frames")
    params = {"epochs": 2, "seed": 1}
    key = training_key([data], params)
    assert training_key([data], dict(params)) == key
    assert training_key([data], {**params, "seed": 2}) != key
    data.write_bytes(b"other frames")
    changed = training_key([data], params)
    assert changed != key
    Sidecar.path_for(data).write_text('{"drop": []}')
    assert training_key([data], params) != changed
