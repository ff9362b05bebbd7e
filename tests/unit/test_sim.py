"""The simulator: track geometry, dynamics, determinism, rendering, sensors, bad track files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hal.camera_model import camera_axes, project
from sim import CameraParams, CarParams, SensorParams, TrackError, World, load_track, render_run, save_run_png
from sim.camera import SimCamera
from sim.floor import draw_floor
from sim.randomize import MIN_CONTRAST, POSE_TOLERANCE, plain_scene, random_scene
from sim.track import Obstacle, TrackStyle, track_from_dict
from sim.vehicle import Vehicle

TRACKS = ("oval", "s_curves", "hairpins", "figure8")
QUIET = CameraParams(noise_std=0, blur=False, exposure_jitter=0, colour_jitter=0)


# -- tracks -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRACKS)
def test_shipped_tracks_close_and_have_sane_geometry(name: str) -> None:
    track = load_track(name)
    assert track.closed
    assert np.allclose(track.points[0], track.points[-1])
    steps = np.hypot(*np.diff(track.points, axis=0).T)
    assert steps.max() < 0.0051 and steps.min() > 0.001
    assert 4 < track.length < 12


def test_oval_length_and_curvature() -> None:
    track = load_track("oval")
    assert track.length == pytest.approx(2.0 + math.pi, abs=0.002)
    assert set(np.round(track.curvature, 6)) == {0.0, 2.0}  # straights and 0.5 m radius, all left turns


def test_tight_tracks_reach_their_smallest_radius() -> None:
    assert 1 / np.abs(load_track("s_curves").curvature).max() == pytest.approx(0.3)
    assert 1 / np.abs(load_track("hairpins").curvature).max() == pytest.approx(0.2)


def test_cross_track_sign_progress_and_pose_at() -> None:
    track = load_track("oval")  # starts at the origin heading +x
    left = track.project(0.3, 0.02)
    right = track.project(0.3, -0.03)
    assert left.cross_track == pytest.approx(0.02, abs=1e-6)
    assert right.cross_track == pytest.approx(-0.03, abs=1e-6)
    assert left.progress == pytest.approx(0.3, abs=1e-6)
    x, y, heading = track.pose_at(1.0 + math.pi / 4, offset=0.01)  # a quarter into the first bend
    centre = (1.0, 0.5)
    assert math.hypot(x - centre[0], y - centre[1]) == pytest.approx(0.49, abs=1e-4)  # 1 cm inside the bend
    assert heading == pytest.approx(math.pi / 2, abs=0.01)


def test_figure8_crossing_keeps_the_branch_the_car_is_on() -> None:
    track = load_track("figure8")
    # drive along the centre line through the crossing with the local search: progress never jumps
    hint, last = 0, 0.0
    for s in np.arange(0.0, track.length, 0.01):
        x, y, _ = track.pose_at(float(s))
        projection = track.project(x, y, hint)
        hint = projection.index
        assert abs(projection.cross_track) < 1e-6
        assert projection.progress == pytest.approx(s, abs=0.006) or s > track.length - 0.01
        assert projection.progress >= last - 1e-9
        last = projection.progress


def test_points_tracks_are_smoothed_and_closed(tmp_path: Path) -> None:
    square = [[0, 0], [1, 0], [1, 1], [0, 1]]
    track = track_from_dict({"points": square, "closed": True}, "square.yml")
    assert track.closed and np.allclose(track.points[0], track.points[-1])
    assert 4.0 < track.length < 4.6  # a spline through the corners bulges a little outside the square
    for corner in square:  # and passes through every point given
        assert np.hypot(*(track.points - corner).T).min() < 0.003
    assert np.abs(track.curvature).max() < 20  # smooth, no kinks


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"segments": [{"straight": 1.0}, {"arc": {"radius": 0.5, "angle": 90}}]}, "is closed but ends at"),
        ({"segments": [{"straight": 1.0}, {"bend": 2}], "closed": False}, "segment 2: unknown segment `bend`"),
        ({"segments": [{"arc": {"radius": -1, "angle": 90}}], "closed": False}, "segment 1: radius must be positive"),
        ({"segments": [{"arc": {"radius": 1}}], "closed": False}, "segment 1: an arc is {radius: R_M, angle: DEG}"),
        ({"segments": [{"straight": "long"}], "closed": False}, "segment 1 (straight) must be a number"),
        ({"segments": []}, "`segments` must be a non-empty list"),
        ({"points": [[0, 0], [1, 1]]}, "`points` must be a list of at least 3"),
        ({"segments": [{"straight": 1}], "points": [[0, 0]]}, "either `segments` or `points`"),
        ({"segments": [{"straight": 1}], "colour": "red", "closed": False}, "unknown key(s) colour"),
        ({"segments": [{"straight": 1}], "closed": False, "floor": [300, 0, 0]}, "floor must be [R, G, B]"),
    ],
)
def test_bad_track_files_say_what_and_where(raw: dict[str, object], message: str) -> None:
    with pytest.raises(TrackError) as info:
        track_from_dict(raw, "bad.yml")
    assert str(info.value).startswith("bad.yml: ")
    assert message in str(info.value)


def test_track_by_path_and_unknown_names(tmp_path: Path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text("segments:\n  - straight: 1.0\nclosed: false\n")
    assert load_track(path).length == pytest.approx(1.0)
    assert load_track(str(path)).name == "mine"
    with pytest.raises(
        TrackError,
        match=r"no track named `ovl`: shipped tracks are figure8, hairpins, lane_curves, lane_loop, lane_oval, oval, oval_box, s_curves",
    ):
        load_track("ovl")
    (tmp_path / "broken.yml").write_text("segments: [\n")
    with pytest.raises(TrackError, match=r"broken\.yml: YAML syntax error"):
        load_track(tmp_path / "broken.yml")


# -- dynamics ----------------------------------------------------------------------------


def make_vehicle(**params: float) -> Vehicle:
    return Vehicle(CarParams(**params), (0.0, 0.0, 0.0), np.random.default_rng(0))  # type: ignore[arg-type]


def test_straight_line_at_the_commanded_speed() -> None:
    car = make_vehicle()
    car.command(0.5, 0.5)
    car.step(2.0)
    s = car.state
    assert s.y == pytest.approx(0.0, abs=1e-12) and s.heading == pytest.approx(0.0, abs=1e-12)
    assert s.speed == pytest.approx(0.5, rel=1e-6)
    # distance = v t minus the lag of the first-order response, v tau
    assert s.x == pytest.approx(0.5 * 2.0 - 0.5 * CarParams().motor_time_constant, abs=0.002)


def test_turning_radius_from_wheel_speeds() -> None:
    car = make_vehicle()
    car.command(0.2, 0.4)
    car.step(1.0)  # reach steady state
    x0, y0, h0 = car.state.x, car.state.y, car.state.heading
    car.step(0.5)
    chord = math.hypot(car.state.x - x0, car.state.y - y0)
    turned = car.state.heading - h0
    radius = chord / (2 * math.sin(turned / 2))
    expected = CarParams().wheel_base / 2 * (0.4 + 0.2) / (0.4 - 0.2)
    assert radius == pytest.approx(expected, rel=1e-4)
    assert turned > 0  # right wheel faster: turns left


def test_dead_band_and_saturation() -> None:
    car = make_vehicle()
    car.command(0.03, -0.03)
    car.step(1.0)
    assert car.state.left_speed == 0 and car.state.right_speed == 0
    car.command(5.0, 5.0)
    car.step(2.0)
    top = CarParams().max_wheel_speed
    assert 0.9 * top < car.state.left_speed <= top  # clamped; a loaded battery sags a little


def test_response_time_is_the_motor_time_constant() -> None:
    tau = CarParams().motor_time_constant
    car = make_vehicle()
    car.command(0.5, 0.5)
    car.step(tau)
    assert car.state.left_speed == pytest.approx(0.5 * (1 - math.exp(-1)), rel=1e-3)


def test_large_steps_match_small_steps() -> None:
    a, b = make_vehicle(), make_vehicle()
    for car in (a, b):
        car.command(0.3, 0.45)
    a.step(0.25)
    for _ in range(250):
        b.step(0.001)
    assert (a.state.x, a.state.y, a.state.heading) == pytest.approx((b.state.x, b.state.y, b.state.heading), abs=1e-9)


def test_battery_sags_under_load_and_slip_shortens_the_path() -> None:
    car = make_vehicle()
    idle = car.battery_voltage()
    car.command(1.0, 1.0)
    car.step(1.0)
    assert car.battery_voltage() < idle - 0.3
    slipping = make_vehicle(slip=0.1)
    slipping.command(0.5, 0.5)
    slipping.step(1.0)
    car2 = make_vehicle()
    car2.command(0.5, 0.5)
    car2.step(1.0)
    assert slipping.state.x == pytest.approx(car2.state.x * 0.9, rel=1e-6)


# -- world, determinism, rendering, sensors -------------------------------------------------


def drive(world: World, seconds: float, speed: float = 0.4) -> list[tuple[float, float, float]]:
    """Pure pursuit on the ground truth: enough to go round a track for the tests."""
    poses = []
    half = CarParams().wheel_base / 2
    while world.t < seconds:
        truth = world.truth()
        tx, ty, _ = world.track.pose_at(truth.progress + 0.15)
        dx, dy = tx - truth.x, ty - truth.y
        lateral = -math.sin(truth.heading) * dx + math.cos(truth.heading) * dy
        omega = speed * 2 * lateral / (dx * dx + dy * dy)
        world.wheels.set_wheel_speeds(speed - omega * half, speed + omega * half)
        world.step(0.01)
        poses.append((truth.x, truth.y, truth.heading))
    return poses


def test_same_seed_same_run_other_seed_other_noise() -> None:
    noisy = CarParams(process_noise=0.05)
    a = World(load_track("oval"), noisy, seed=7)
    b = World(load_track("oval"), noisy, seed=7)
    c = World(load_track("oval"), noisy, seed=8)
    poses_a, poses_b, poses_c = drive(a, 2.0), drive(b, 2.0), drive(c, 2.0)
    assert poses_a == poses_b
    assert poses_a != poses_c
    assert np.array_equal(a.camera.read()[0], b.camera.read()[0])
    assert a.sensors.read() == b.sensors.read()
    assert not np.array_equal(a.camera.read()[0], c.camera.read()[0])


def test_ground_truth_counts_laps_and_time_off_line() -> None:
    world = World(load_track("oval"), seed=1)
    drive(world, 28.0)
    truth = world.truth()
    assert truth.laps == 2 and len(truth.lap_times) == 2
    assert all(10 < t < 16 for t in truth.lap_times)
    assert truth.distance == pytest.approx(truth.progress, rel=0.02)
    assert truth.max_cross_track < 0.05 and truth.time_off_line == 0.0
    world.vehicle.state.y -= 0.2  # pick the car up and put it down 20 cm off the line
    world.wheels.stop()
    world.step(0.5)
    assert world.truth().longest_off_line == pytest.approx(0.5)


@pytest.mark.parametrize("offset", [0.0, 0.03, -0.04])
def test_line_appears_where_the_camera_model_puts_it(offset: float, tmp_path: Path) -> None:
    world = World(load_track("oval"), camera=QUIET, seed=2, start_offset=offset)
    frame, t = world.camera.read()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8 and t == 0.0
    cv2.imwrite(str(tmp_path / f"frame_offset_{offset:+.2f}.png"), frame)
    state = world.vehicle.state
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    for ahead in (0.15, 0.25, 0.4):  # metres ahead of the axle, on the straight
        u, v = project(QUIET, (state.x, state.y, state.heading), (ahead, 0.0))
        row = grey[round(v)].astype(float)
        assert row.min() < 60 and np.median(row) > 120
        tape = np.flatnonzero(row < (row.min() + np.median(row)) / 2)
        assert abs(tape.mean() - u) <= 2.0  # the middle of the tape, in pixels
    # the car left of the line (positive offset) sees it to the right of the centre
    u, _ = project(QUIET, (state.x, state.y, state.heading), (0.25, 0.0))
    assert (u - 160) * offset >= 0


def test_camera_geometry() -> None:
    params = CameraParams()
    rotation, _ = camera_axes(params, 0.0, 0.0, 0.0)
    assert np.allclose(rotation @ rotation.T, np.eye(3))
    # the image centre looks at the floor height / tan(tilt) ahead of the camera
    ahead = params.forward + params.mount_height / math.tan(math.radians(params.tilt_deg))
    u, v = project(params, (0.0, 0.0, 0.0), (ahead, 0.0))
    assert (u, v) == pytest.approx((160.0, 120.0), abs=1e-9)
    u_left, _ = project(params, (0.0, 0.0, 0.0), (ahead, 0.05))
    assert u_left < 160  # a point to the car's left appears left of the centre


def test_noise_blur_and_jitter_change_frames_but_not_the_scene() -> None:
    clean = World(load_track("oval"), camera=QUIET, seed=3).camera.read()[0].astype(int)
    noisy_world = World(load_track("oval"), seed=3)
    first, second = noisy_world.camera.read()[0].astype(int), noisy_world.camera.read()[0].astype(int)
    assert not np.array_equal(first, second)
    assert 1 < np.abs(first - clean).mean() < 25


def test_line_sensors_see_the_tape_under_them() -> None:
    centred = World(load_track("oval"), seed=4).sensors.read().line_sensors
    assert len(centred) == 5 and centred[2] > 0.8 and max(centred[0], centred[4]) < 0.3
    left_of_line = World(load_track("oval"), seed=4, start_offset=0.015).sensors.read().line_sensors
    assert left_of_line[3] > 0.8 and left_of_line[2] < 0.5  # the tape is under the sensor right of centre


def test_encoders_gyro_battery_and_range() -> None:
    track = track_from_dict(
        {
            "segments": [{"straight": 3.0}],
            "closed": False,
            "obstacles": [{"x": 1.0, "y": 0.0, "width": 0.1, "depth": 0.3}],
        },
        "wall.yml",
    )
    params = SensorParams(gyro_bias=0.0, gyro_noise=0.0, range_noise=0.0)
    world = World(track, seed=5, sensors=params)
    reading = world.sensors.read()
    ahead = 1.0 - 0.05 - params.range_forward
    assert reading.range_m == pytest.approx(ahead, abs=1e-9)
    assert reading.encoder_ticks == (0, 0) and reading.battery_v > 8.0
    world.wheels.set_wheel_speeds(0.3, 0.3)
    world.step(1.0)
    reading = world.sensors.read()
    per_metre = CarParams().encoder_ticks_per_rev / (2 * math.pi * CarParams().wheel_radius)
    assert reading.encoder_ticks[0] == math.floor(world.vehicle.state.left_travel * per_metre)
    assert reading.wheel_speeds[0] == pytest.approx(world.vehicle.state.left_travel, rel=0.01)  # mean over 1 s
    assert reading.yaw_rate == pytest.approx(0.0, abs=1e-9)
    assert world.sensors.range_to_obstacle(0.0, 0.5, 0.0) is None  # looking past the box
    biased = World(track, seed=5).sensors
    assert 0 < abs(biased.read().yaw_rate) <= SensorParams().gyro_bias + 5 * SensorParams().gyro_noise


def test_render_run_draws_the_trail(tmp_path: Path) -> None:
    world = World(load_track("s_curves"), seed=6)
    drive(world, 5.0)
    image = render_run(world.track, world.trail, "s_curves, seed 6")
    path = tmp_path / "run.png"
    save_run_png(path, image)
    loaded = cv2.imread(str(path))
    assert loaded.shape == image.shape
    green = (loaded[:, :, 1] > 150) & (loaded[:, :, 2] < 100) & (loaded[:, :, 0] < 100)
    assert green.sum() > 200  # the trail is there, mostly on the line


def test_obstacles_are_validated() -> None:
    with pytest.raises(TrackError, match="obstacle 1: width must be positive"):
        track_from_dict(
            {"segments": [{"straight": 1}], "closed": False, "obstacles": [{"x": 0, "y": 0, "width": 0}]}, "o.yml"
        )
    track = track_from_dict(
        {"segments": [{"straight": 1}], "closed": False, "obstacles": [{"x": 0.5, "y": 1}]}, "o.yml"
    )
    assert track.obstacles == (Obstacle(0.5, 1.0, 0.1, 0.1),)


@pytest.mark.parametrize(
    "params",
    [
        QUIET,
        CameraParams(noise_std=0, blur=False),  # jitter last
        CameraParams(blur=False),  # noise last
        CameraParams(),  # blur last
    ],
)
def test_a_frame_is_rendered_into_the_array_given(params: CameraParams) -> None:
    expected = World(load_track("oval"), camera=params, seed=4).camera.read()[0]
    out = np.zeros((240, 320, 3), np.uint8)
    frame, _ = World(load_track("oval"), camera=params, seed=4).camera.read(out=out)
    assert frame is out and np.array_equal(out, expected)  # the same seed: the same frame, in place


def test_an_array_of_another_shape_is_a_clear_error() -> None:
    world = World(load_track("oval"), seed=4)
    with pytest.raises(ValueError, match="a frame is 240x320x3 uint8, not 240x320 uint8"):
        world.camera.read(out=np.zeros((240, 320), np.uint8))


# -- lane tracks ---------------------------------------------------------------------------


LANE_TRACKS = ("lane_oval", "lane_curves", "lane_loop")


@pytest.mark.parametrize("name", LANE_TRACKS)
def test_shipped_lane_tracks_close_and_keep_their_bends_wider_than_the_lane(name: str) -> None:
    track = load_track(name)
    assert track.style is TrackStyle.LANE and track.closed and track.lane_width == 0.25
    assert np.allclose(track.points[0], track.points[-1])
    assert 1 / np.abs(track.curvature).max() > track.lane_width  # the driving line's tightest bend
    assert 6 < track.length < 16


def test_a_lane_tracks_car_keeps_to_the_middle_of_the_right_hand_lane() -> None:
    track = track_from_dict({"style": "lane", "segments": [{"straight": 2.0}], "closed": False}, "road.yml")
    assert track.lane_width == pytest.approx(0.25)
    x, y, heading = track.start_pose
    assert (x, y, heading) == pytest.approx((0.0, -0.125, 0.0))  # half a lane right of the centre line
    assert track.project(1.0, -0.125).cross_track == pytest.approx(0.0, abs=1e-9)
    assert track.project(1.0, 0.0).cross_track == pytest.approx(0.125)  # on the centre line: left of the lane
    assert track.from_centre(track.project(1.0, 0.0).cross_track) == pytest.approx(0.0)
    # anticlockwise the right-hand lane is the outer one: its radius is the centre's plus half a lane
    oval = load_track("lane_oval")
    assert 1 / oval.curvature.max() == pytest.approx(0.6 + 0.125, abs=1e-3)


def test_a_lane_is_drawn_as_a_dashed_centre_line_between_two_solid_edges() -> None:
    track = track_from_dict(
        {"style": "lane", "segments": [{"straight": 3.0}], "closed": False, "lane_width": 0.3}, "road.yml"
    )
    floor = draw_floor(track, px_per_m=200, margin=0.5)
    grey = cv2.cvtColor(floor.image, cv2.COLOR_BGR2GRAY)
    paint = (floor.line_rgb[0] + floor.floor_rgb[0]) / 2  # white paint on a grey floor

    def painted(y: float) -> float:
        """Share of the row at height y (m) that is painted, along the road."""
        row = round(floor.to_pixel(0.0, y)[1])
        columns = [round(floor.to_pixel(x, y)[0]) for x in np.arange(0.2, 2.8, 0.005)]
        return float(np.mean(grey[row, columns] > paint))

    assert painted(0.3) > 0.95 and painted(-0.3) > 0.95  # solid edges, a lane's width each side
    assert 0.3 < painted(0.0) < 0.7  # a dashed centre line
    assert painted(0.15) < 0.02 and painted(-0.15) < 0.02  # each lane's middle is bare


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"style": "road", "closed": False, "segments": [{"straight": 1.0}]},
            r"`style` must be one of tape, lane, got 'road'",
        ),
        (
            {"lane_width": 0.3, "closed": False, "segments": [{"straight": 1.0}]},
            r"`lane_width` is for `style: lane` tracks",
        ),
        (
            {"style": "lane", "segments": [{"arc": {"radius": 0.2, "angle": 360}}]},
            r"tightest bend \(radius 0.200 m\) is too tight for lane_width 0.25 m",
        ),
        (
            {"style": "lane", "lane_width": -1, "closed": False, "segments": [{"straight": 1.0}]},
            r"lane_width must be positive",
        ),
    ],
)
def test_bad_lane_tracks_are_refused_with_the_field_named(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(TrackError, match=message):
        track_from_dict(raw, "road.yml")


# -- domain randomisation ------------------------------------------------------------------


def test_a_randomised_scene_is_drawn_from_the_seed_and_keeps_the_line_readable() -> None:
    track = load_track("lane_oval")
    nominal = CameraParams()
    scenes = [random_scene(track, nominal, np.random.default_rng(seed)) for seed in range(40)]
    again = random_scene(track, nominal, np.random.default_rng(7))
    assert again == scenes[7]  # seeded
    assert len({scene.look.floor_rgb for scene in scenes}) == 40  # and varied
    for scene in scenes:
        floor, line = (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] for c in (scene.look.floor_rgb, scene.look.line_rgb))
        assert line - floor >= MIN_CONTRAST  # light paint on a darker road
        camera = scene.camera  # the true pose stays within what calibration guarantees
        assert abs(camera.tilt_deg - nominal.tilt_deg) <= POSE_TOLERANCE.angle_deg
        assert abs(camera.roll_deg - nominal.roll_deg) <= POSE_TOLERANCE.angle_deg
        assert abs(camera.mount_height - nominal.mount_height) <= POSE_TOLERANCE.position_m
    tape = random_scene(load_track("oval"), nominal, np.random.default_rng(3))
    assert 0.299 * tape.look.floor_rgb[0] > 0.299 * tape.look.line_rgb[0]  # dark tape on a lighter floor


def test_randomize_changes_only_the_look_and_a_plain_world_is_as_before() -> None:
    track = load_track("oval")
    plain = World(track, seed=5)
    assert plain.scene == plain_scene(track, plain.camera.params)
    randomised = World(track, seed=5, randomize=True)
    assert randomised.vehicle.state == plain.vehicle.state  # the same start: only the look differs
    frame, _ = randomised.camera.read()
    assert not np.array_equal(frame, plain.camera.read()[0])
    assert randomised.floor.floor_rgb == randomised.scene.look.floor_rgb


def test_motion_blur_streaks_a_frame_only_when_the_car_moves() -> None:
    world = World(load_track("oval"), seed=1, camera=QUIET)
    camera = SimCamera(QUIET, world.floor, world.vehicle, np.random.default_rng(0), motion_blur_px=12.0)
    x, y, heading = world.track.start_pose
    still = camera.render(x, y, heading, speed=0.0)
    moving = camera.render(x, y, heading, speed=1.0)
    rows = np.abs(np.diff(cv2.cvtColor(still, cv2.COLOR_BGR2GRAY).astype(int), axis=0)).mean()
    streaked = np.abs(np.diff(cv2.cvtColor(moving, cv2.COLOR_BGR2GRAY).astype(int), axis=0)).mean()
    assert streaked < 0.8 * rows  # smeared up and down the image
