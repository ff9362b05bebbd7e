"""The safety policy's decisions, in process: the pilots' guard, car_io's drive guard, the ranger filter, contacts;
and closed loops of the simulator with a pilot and the guards, under fuzzed ranger readings."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from firmware import protocol
from firmware.brake import DECEL_MM_S2, NO_RANGE, ObstacleBrake, stopping_distance_mm
from hal.description import CarParams
from hal.interfaces import SensorReading
from nodes.controller import BAR_PARAMS, LineFollower, bar_estimate
from nodes.drive import DriveGuard, DriveLimits
from nodes.safety import (
    FOUND_AFTER,
    PilotGuard,
    PilotLimits,
    RangeFilter,
    SafetyChange,
    SafetyReason,
    obstacle_speed_cap,
    safety_event,
)
from sim.contact import ContactJudge, box_corners, distance, footprint
from sim.track import Obstacle, Track, track_from_dict
from sim.world import World

LIMITS = PilotLimits(perception_timeout_s=0.15)


def changes(guard: PilotGuard | DriveGuard) -> list[tuple[SafetyChange, SafetyReason]]:
    return [(e.change, e.reason) for e in guard.take_events()]


def test_stale_perception_stops_the_car_once_and_fresh_estimates_drive_it_again() -> None:
    guard = PilotGuard(LIMITS)
    assert guard.limit(0.5, 0.5, 0.0) == (0.0, 0.0) and changes(guard) == []  # nothing perceived yet: still, unsaid
    t = 0.0
    for k in range(100):  # a second of driving, estimates every 33 ms
        t = k * 0.01
        if k % 3 == 0:
            guard.perceived(t, True)
        guard.sensed(t, 0.5, None, True)
        left, right = guard.limit(0.5, 0.5, t)
    assert (left, right) == (0.5, 0.5) and changes(guard) == []
    stops = []
    for k in range(100, 130):  # the detector stops: readings go on
        t = k * 0.01
        guard.sensed(t, 0.5, None, True)
        stops.append(guard.limit(0.5, 0.5, t))
    assert stops[-1] == (0.0, 0.0)
    events = guard.take_events()
    assert [(e.change, e.reason) for e in events] == [(SafetyChange.STOP, SafetyReason.PERCEPTION_STALE)]
    assert 0.99 + LIMITS.perception_timeout_s <= events[0].t <= 0.99 + LIMITS.perception_timeout_s + 0.011
    assert "no fresh estimate for" in events[0].detail
    guard.perceived(1.3, True)  # a restarted detector
    first = guard.limit(0.5, 0.5, 1.3)
    assert changes(guard) == [(SafetyChange.RESUME, SafetyReason.PERCEPTION_STALE)]
    assert first[0] < 0.5  # the speed comes back gently, not at once
    speeds = [
        guard.limit(0.5, 0.5, 1.3 + k * 0.01)[0] for k in range(1, 30) if not guard.perceived(1.3 + k * 0.01, True)
    ]
    assert speeds[-1] == 0.5 and speeds == sorted(speeds)


def test_a_closed_perception_stops_until_estimates_come_again_unless_told_to_stay() -> None:
    for resume in (True, False):
        guard = PilotGuard(replace(LIMITS, resume=resume))
        guard.perceived(0.0, True)
        guard.limit(0.3, 0.3, 0.0)
        assert guard.limit(0.3, 0.3, 0.1) == (0.3, 0.3)
        guard.perception_closed()
        assert guard.limit(0.3, 0.3, 0.11) == (0.0, 0.0)
        assert changes(guard) == [(SafetyChange.STOP, SafetyReason.PERCEPTION_CLOSED)]
        guard.perceived(0.5, True)
        moving = guard.limit(0.3, 0.3, 0.6) != (0.0, 0.0)
        assert moving is resume


def test_the_search_for_a_lost_line_is_said_and_bounded_in_time_and_distance() -> None:
    for speed, bound in ((0.06, SafetyReason.LINE_LOST), (0.5, SafetyReason.LINE_LOST)):
        guard = PilotGuard(LIMITS)
        guard.perceived(0.0, True)
        guard.limit(speed, speed, 0.0)
        t, driven = 0.0, 0.0
        while guard.limit(speed, speed, t) != (0.0, 0.0):
            t += 0.01
            driven += speed * 0.01
            guard.perceived(t, False)
            guard.sensed(t, speed, None, None)
            assert t < 5
        events = changes(guard)
        assert events[0] == (SafetyChange.SEARCH, SafetyReason.LINE_LOST)
        assert events[-1] == (SafetyChange.STOP, bound)
        assert t <= LIMITS.search_s + 0.02 and driven <= LIMITS.search_m + 0.02
        guard.perceived(t + 0.01, True)  # one estimate with the line: a flicker, the stop holds
        guard.perceived(t + 0.02, False)
        assert guard.limit(speed, speed, t + 0.02) == (0.0, 0.0)
        for k in range(FOUND_AFTER):  # found again, and seen steadily: it drives on
            guard.perceived(t + 0.03 + k * 0.01, True)
        assert guard.limit(speed, speed, t + 0.03 + FOUND_AFTER * 0.01) != (0.0, 0.0)


def test_a_learned_pilots_model_unsure_of_the_road_stops_the_car_within_its_bound_and_says_so() -> None:
    limits = replace(LIMITS, search_s=0.3, search_m=0.15, off_line_m=None, lost_reason=SafetyReason.MODEL_UNSURE)
    guard = PilotGuard(limits)
    guard.perceived(0.0, True)
    guard.limit(0.4, 0.4, 0.0)
    t = 0.0
    while guard.limit(0.4, 0.4, t) != (0.0, 0.0):
        t += 1 / 30  # a frame at a time, each unsure
        guard.perceived(t, False)
        guard.sensed(t, 0.4, None, None)
        assert t < 2
    unsure_for = t - 1 / 30  # from the first unsure frame: within the bound, give or take a frame
    assert unsure_for <= limits.search_s + 1 / 30 and unsure_for * 0.4 <= limits.search_m + 0.02
    events = guard.take_events()
    assert [(e.change, e.reason) for e in events] == [
        (SafetyChange.SEARCH, SafetyReason.MODEL_UNSURE),
        (SafetyChange.STOP, SafetyReason.MODEL_UNSURE),
    ]
    assert "the model unsure of the road for" in events[-1].detail
    for k in range(FOUND_AFTER):  # sure again, frame after frame: it drives on
        guard.perceived(t + (k + 1) / 30, True)
    assert guard.limit(0.4, 0.4, t + FOUND_AFTER / 30) != (0.0, 0.0)


def test_a_car_whose_line_sensors_see_no_tape_stops_whatever_its_camera_claims() -> None:
    guard = PilotGuard(LIMITS)
    guard.perceived(0.0, True)
    t = 0.0
    while guard.limit(0.8, 0.8, t) != (0.0, 0.0):
        t += 0.01
        guard.perceived(t, True)
        guard.sensed(t, 0.8, None, False)
        assert t < 2
    assert changes(guard) == [(SafetyChange.STOP, SafetyReason.OFF_LINE)]
    assert 0.8 * t == pytest.approx(LIMITS.off_line_m or 0, abs=0.02)


def test_an_obstacle_slows_then_stops_the_car_at_the_stand_off_and_it_waits() -> None:
    guard = PilotGuard(LIMITS)
    position, speed, box = 0.0, 0.0, 1.5  # the ranger's distance is box - position
    t = 0.0
    for _ in range(600):
        t += 0.01
        guard.perceived(t, True)
        guard.sensed(t, speed, box - position, True)
        left, _ = guard.limit(1.0, 1.0, t)
        speed += (left - speed) * (1 - math.exp(-0.01 / 0.06))  # the wheels lag the command
        position += speed * 0.01
    assert box - position > 0.15 and speed == pytest.approx(0.0, abs=1e-3)
    assert changes(guard) == [(SafetyChange.STOP, SafetyReason.OBSTACLE)]
    for _ in range(3):  # the box is taken away
        t += 0.01
        guard.sensed(t, 0.0, None, True)
        guard.perceived(t, True)
    assert guard.limit(1.0, 1.0, t) != (0.0, 0.0)
    assert changes(guard) == [(SafetyChange.RESUME, SafetyReason.OBSTACLE)]


def test_the_range_filter_drops_failed_readings_and_lone_spikes() -> None:
    ranger = RangeFilter()
    seen = [ranger.update(r) for r in (1.0, 0.0, 0.03, 0.98, math.nan, None, 0.96, 0.0, 0.05, 0.94)]
    assert all(d is None or d > 0.9 for d in seen)
    assert [ranger.update(None) for _ in range(2)][-1] is None  # nothing in range
    assert obstacle_speed_cap(0.2, 0.2, 1.5) == 0.0 and obstacle_speed_cap(0.5, 0.2, 1.5) == pytest.approx(0.9487, 1e-3)


def test_car_ios_drive_guard_clamps_slows_and_stops_and_says_why() -> None:
    guard = DriveGuard(DriveLimits(max_wheel_speed=1.0))
    assert guard.command({"left": 3.0, "right": -0.2}, 0.0) == (1.0, -0.2)
    assert not guard.expired(0.19) and guard.expired(0.21) and not guard.expired(0.3)
    assert guard.command({"left": "fast"}, 0.4) == (0.0, 0.0)
    assert guard.command({"left": 0.4, "right": 0.4}, 0.5) == (0.4, 0.4)
    assert guard.commands_closed(0.6) == (0.0, 0.0)
    assert changes(guard) == [
        (SafetyChange.STOP, SafetyReason.NO_COMMAND),
        (SafetyChange.STOP, SafetyReason.MALFORMED_COMMAND),
        (SafetyChange.RESUME, SafetyReason.MALFORMED_COMMAND),
        (SafetyChange.STOP, SafetyReason.COMMANDS_CLOSED),
    ]
    reading = SensorReading(0.7, (0, 0), (0.0, 0.0), (0.0,) * 5, 0.0, 0.13, 7.8)
    for _ in range(3):
        guard.sensed(reading, 0.7, protocol.FLAG_OBSTACLE)
    assert guard.command({"left": 0.6, "right": 0.6}, 0.7) == pytest.approx(
        (0.2, 0.2), abs=1e-3
    )  # sqrt(2 x 2 m/s^2 x 0.01 m)
    guard.sensed(replace(reading, range_m=0.1), 0.71)
    guard.sensed(replace(reading, range_m=0.1), 0.72)
    assert guard.command({"left": 0.6, "right": 0.6}, 0.73) == (0.0, 0.0)
    assert guard.command({"left": -0.3, "right": -0.3}, 0.74) == (-0.3, -0.3)  # backing away is allowed
    said = changes(guard)
    assert (SafetyChange.STOP, SafetyReason.BOARD_OBSTACLE) in said and (
        SafetyChange.RESUME,
        SafetyReason.BOARD_OBSTACLE,
    ) in said
    assert "dead-man: no command since t=0.000 s; wheels stopped at t=0.210 s" in guard.stops[0].detail


def test_a_lost_board_is_a_stop_and_its_return_waits_for_the_next_command() -> None:
    guard = DriveGuard()
    guard.command({"left": 0.5, "right": 0.5}, 0.0)
    guard.board_lost(0.1, "board lost on /dev/ttyACM0")
    assert guard.command({"left": 0.5, "right": 0.5}, 0.15) == (0.0, 0.0)
    guard.board_back(0.5)
    assert not guard.expired(5.0)
    assert guard.command({"left": 0.5, "right": 0.5}, 5.1) == (0.5, 0.5)
    assert changes(guard) == [
        (SafetyChange.STOP, SafetyReason.BOARD_LOST),
        (SafetyChange.RESUME, SafetyReason.BOARD_LOST),
    ]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.floats(), st.text(), st.dictionaries(st.text(), st.integers())))
def test_a_safety_message_reads_back_or_is_a_clear_value_error(value: object) -> None:
    message = {"change": "stop", "reason": "obstacle", "t": value, "detail": "x"}
    try:
        event = safety_event(message)
    except ValueError:
        return
    again = safety_event(event.message())
    assert event.reason is again.reason is SafetyReason.OBSTACLE and again.t == pytest.approx(event.t, abs=1e-4)


def test_contact_distances_between_the_body_and_a_box() -> None:
    params = CarParams()
    box = Obstacle(1.0, 0.0, 0.1, 0.1)
    front = params.body_front
    assert distance(footprint(params, 0.5, 0.0, 0.0), box_corners(box)) == pytest.approx(0.95 - 0.5 - front)
    assert distance(footprint(params, 0.9, 0.0, 0.0), box_corners(box)) == 0.0
    assert distance(footprint(params, 1.0, 0.5, math.pi / 2), box_corners(box)) == pytest.approx(
        0.5 - params.body_rear - 0.05
    )
    judge = ContactJudge(params, (box,))
    for x in (0.0, 0.5, 0.86, 0.9, 0.95, 0.5, 0.9):  # two contacts begun
        judge.update(x, 0.0, 0.0)
    assert judge.collisions == 2 and judge.min_distance == 0.0


BOXED = {
    "segments": [{"straight": 1.0}, {"arc": {"radius": 0.5, "angle": 180}}] * 2,
    "obstacles": [{"x": 0.5, "y": 1.0, "width": 0.12, "depth": 0.12}],
}


def closed_loop(track: Track, seconds: float, fuzz: random.Random | None, board_brake: bool = True) -> World:
    """The IR follower's pilot, its guard and car_io's guard driving the simulated car in process, the ranger's
    readings fuzzed (noise, dropouts, 0, maximum range, lone spikes) before either guard sees them."""
    world = World(track, seed=3, board_brake=board_brake)
    follower = LineFollower(BAR_PARAMS)
    pilot = PilotGuard(PilotLimits(0.1, off_line_m=None))
    drive = DriveGuard()
    for _ in range(round(seconds / 0.01)):
        reading = world.sensors.read()
        if fuzz is not None:
            r = fuzz.random()
            range_m = reading.range_m
            if r < 0.15:
                range_m = 0.0  # a failed echo
            elif r < 0.25:
                range_m = None  # no echo
            elif r < 0.3:
                range_m = 2.0  # the maximum
            elif r < 0.33:
                range_m = fuzz.uniform(0.02, 0.3)  # a lone spike: crosstalk, a bump
            elif range_m is not None:
                range_m += fuzz.gauss(0, 0.01)
            reading = replace(reading, range_m=range_m)
        estimate = bar_estimate(reading.line_sensors)
        pilot.perceived(reading.t, estimate.found)
        pilot.sensed(reading.t, sum(reading.wheel_speeds) / 2, reading.range_m, None)
        drive.sensed(reading, reading.t)
        left, right = pilot.limit(*follower.update(estimate, reading.t), reading.t)
        world.wheels.set_wheel_speeds(*drive.command({"left": left, "right": right}, reading.t))
        world.step(0.01)
    return world


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzzed_ranger_readings_neither_stop_the_car_for_nothing_nor_let_it_touch_a_box(seed: int) -> None:
    plain = track_from_dict({k: v for k, v in BOXED.items() if k != "obstacles"}, "plain")
    free = closed_loop(plain, 12.0, random.Random(seed)).truth()
    assert free.laps >= 1 and free.distance > 4.5, free  # nothing there: it drove on
    boxed = closed_loop(track_from_dict(BOXED, "boxed"), 12.0, random.Random(seed)).truth()
    assert boxed.collisions == 0 and boxed.min_obstacle_distance is not None, boxed
    assert 0.02 < boxed.min_obstacle_distance < 0.25 and abs(boxed.speed) < 0.01, boxed


def test_without_the_hosts_guards_the_boards_brake_alone_stops_short() -> None:
    world = World(track_from_dict(BOXED, "boxed"), seed=1, board_brake=True)
    follower = LineFollower(BAR_PARAMS)
    for _ in range(1200):  # a pilot that ignores the box
        reading = world.sensors.read()
        world.wheels.set_wheel_speeds(*follower.update(bar_estimate(reading.line_sensors), reading.t))
        world.step(0.01)
    truth = world.truth()
    assert truth.collisions == 0 and truth.board_brakes >= 1 and truth.min_obstacle_distance is not None
    unbraked = World(track_from_dict(BOXED, "boxed"), seed=1)
    follower = LineFollower(BAR_PARAMS)
    for _ in range(1200):
        reading = unbraked.sensors.read()
        unbraked.wheels.set_wheel_speeds(*follower.update(bar_estimate(reading.line_sensors), reading.t))
        unbraked.step(0.01)
    assert unbraked.truth().collisions >= 1  # the test can fail: without a brake the car hits the box


READING = st.one_of(
    st.just(0),  # a failed echo
    st.just(NO_RANGE),  # nothing in range
    st.integers(min_value=1, max_value=NO_RANGE - 1),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["far", "spike", "drop", "none"]), READING), max_size=200))
def test_the_board_brake_never_engages_for_lone_spikes_among_far_readings(stream: list[tuple[str, int]]) -> None:
    """An empty road: far readings, dropouts, no echo, and spikes no two of which are within three valid readings."""
    brake = ObstacleBrake()
    last_spike = -10
    valid = 0
    for kind, value in stream:
        if kind == "spike" and valid - last_spike >= 3:
            reading = max(1, value % 400)  # anything closer than 40 cm
            last_spike = valid
        elif kind == "drop":
            reading = 0
        elif kind == "none":
            reading = NO_RANGE
        else:
            reading = 1000 + value % 1000  # a metre or more
        valid += reading > 0
        assert not brake.update(reading, 1000.0), (stream, brake.ranger.readings)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(min_value=0.1, max_value=1.2),
    st.lists(st.sampled_from(["ok", "ok", "ok", "drop", "no echo", "spike"]), min_size=400, max_size=400),
)
@example(0.9375, ["ok"] * 400)  # it stopped braking at 7.5 mm/s, 70 mm out: the release the rule allows (below)
def test_the_board_brake_stops_an_approaching_car_short_whatever_the_readings_do(
    speed: float, kinds: list[str]
) -> None:
    """A car at `speed` m/s toward a wall 2.5 s ahead, the wheels shedding speed at the brake's rate once it holds.
    Readings fail (0) at random, and lie (no echo, or a spike) at random, but never twice within three valid ones.
    It never reaches the wall; at the end it stands, or creeps on from beyond the stopping distance for its speed
    plus RELEASE_MM (the brake releases there by design, and holds again in time: firmware/brake.py)."""
    brake = ObstacleBrake()
    wall_mm, v = 100 + speed * 2500, speed * 1000
    honest_since_lie = 2
    for kind in kinds:
        if kind == "drop":
            reading = 0
        elif kind != "ok" and honest_since_lie >= 2:
            reading, honest_since_lie = (NO_RANGE if kind == "no echo" else 30), 0
        else:
            reading, honest_since_lie = round(wall_mm), honest_since_lie + 1
        if brake.update(reading, v):
            v = max(0.0, v - DECEL_MM_S2 * 0.01)
        wall_mm -= v * 0.01
        assert wall_mm > 0, "the car hit the wall"
    assert wall_mm > 5
    assert v == 0.0 or (not brake.engaged and wall_mm > stopping_distance_mm(v)), (v, wall_mm)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["perceived", "lost", "sensed", "closed", "limit"]),
            st.floats(min_value=0.0, max_value=0.05),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
            st.floats(min_value=-3, max_value=3),
        ),
        max_size=150,
    )
)
def test_the_pilot_guard_never_lets_through_more_than_asked(
    calls: list[tuple[str, float, float | None, float]],
) -> None:
    guard = PilotGuard(LIMITS)
    t = 0.0
    for kind, dt, number, wish in calls:
        t += dt
        if kind == "perceived":
            guard.perceived(t, True)
        elif kind == "lost":
            guard.perceived(t, False)
        elif kind == "sensed":
            guard.sensed(t, number, number, None if number is None else number > 0)
        elif kind == "closed":
            guard.perception_closed()
        else:
            left, right = guard.limit(wish, wish, t)
            assert math.isfinite(left) and math.isfinite(right)
            assert (left + right) / 2 <= max(wish, 0.0) + 1e-9
    for event in guard.take_events():
        assert safety_event(event.message()).reason is event.reason
