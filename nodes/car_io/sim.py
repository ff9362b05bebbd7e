"""car_io's simulator back end (`--sim`, the default): the simulated car in lockstep with the graph.

Every 10 ms of car time a sensor reading goes out (after a camera frame, 30 times a
second), and the simulation moves on when the command it caused is back; see nodes.car_io.
What a command does to the wheels is nodes.drive.DriveGuard's, as on the board; the
simulator stands in for the board, its obstacle brake included (sim.world's
`board_brake`). The report counts collisions with the track's boxes, the closest the
car came to one, and every safety stop (car_io's own and those the pilot sends on its
`safety` output into car_io's `safety` input), with where the car was.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from car import Node
from hal.description import SIM_ENV_VAR, load_description
from nodes.car_io.inputs import Command, Ended, Inputs
from nodes.drive import SENSOR_PERIOD_S, DriveGuard, DriveLimits
from nodes.launch_options import RANDOMIZE_ENV, SIM_TIME_ENV, TRACK_ENV
from nodes.messages import FRAME_KEY, OBSERVATION_KEY, Observation, sensor_message
from nodes.safety import SafetyChange, SafetyEvent, send_safety
from sim import World, load_track, render_run, save_run_png
from sim.world import GroundTruth

# modelled time from an observation to the command it causes: a frame needs its image processed, a reading little
COMMAND_LATENCY_S = {Observation.IMAGE: 0.010, Observation.SENSORS: 0.005, Observation.POSE: 0.005, None: 0.005}
LOCKSTEP_WAIT_S = 0.5  # wall seconds to wait for a command at realtime factor 0
PROGRESS_S = 2.0  # at realtime factor 0, how often (wall seconds) car_io says how fast the simulation goes
PROGRESS = "car_io: progress"  # ... in a line that starts so (`car collect` shows them)
OFF_TRACK_STOP_S = 3.0  # stop a run that counts laps once its car has been off the line this long
STANDING_MPS = 0.01  # the car stands still
STALLED_S = 10.0  # stop a run that counts laps once its car has stood still this long (a pilot that stopped for good)


@dataclass
class Pacing:
    """Which cycles car_io waits for, at realtime factor 0: learnt from the commands, which pass back the metadata
    of the observation they answer. A pilot that answers every sensor reading (or pose) is waited for every cycle;
    one that answers camera frames only in the cycles with a frame; until the first answer says, the same. A wait
    that runs out means the pilot is not answering (its camera gone, say): no cycle is waited for until it answers
    again, so a silent pilot costs one wait, not one per cycle."""

    every_cycle: bool = False
    answering: bool = True
    misses: int = 0
    first_miss: int | None = None

    def answered(self, command: Command) -> None:
        """A command came; if it says which observation it answers, that is how the pilot is paced."""
        if command.observation is not None:
            self.every_cycle = command.observation.every_cycle
            self.answering = True

    def waits(self, with_image: bool) -> bool:
        """Whether to wait for the answer to this cycle."""
        return self.answering and (with_image or self.every_cycle)

    def missed(self, cycle: int) -> None:
        """A wait ran out without its answer."""
        self.answering = False
        self.misses += 1
        if self.first_miss is None:
            self.first_miss = cycle


@dataclass
class StopRecord:
    """A safety stop as the report lists it: who, why, when (s, car time), where the car was (m), and what followed."""

    node: str
    reason: str
    t: float
    x: float
    y: float
    cross_track_m: float
    odometer_m: float  # metres driven before the stop was said
    detail: str
    moved_m: float | None = None  # metres driven from the stop until the car stood still, or drove on first
    stood_still: bool = False  # whether the car came to a standstill before the stop ended
    resumed_t: float | None = None  # when the stop ended (None: it held to the end of the run)


class StopLog:
    """The run's safety stops, car_io's and the pilot's, each followed until the car stands still and the stop ends."""

    def __init__(self) -> None:
        self.records: list[StopRecord] = []
        self._moving: list[StopRecord] = []  # the car has not stood still since these
        self._held: list[StopRecord] = []  # not ended yet

    def said(self, node: str, event: SafetyEvent, truth: GroundTruth) -> None:
        """A safety event from `node`, with where the car is now."""
        if event.change is SafetyChange.STOP:
            record = StopRecord(
                node,
                event.reason.value,
                round(event.t, 3),
                round(truth.x, 3),
                round(truth.y, 3),
                round(truth.cross_track, 4),
                round(truth.distance, 4),
                event.detail,
            )
            self.records.append(record)
            self._moving.append(record)
            self._held.append(record)
        elif event.change is SafetyChange.RESUME:
            for record in [r for r in self._held if r.node == node and r.reason == event.reason.value]:
                record.resumed_t = round(event.t, 3)
                self._held.remove(record)
                if record in self._moving:  # it drove on before it stood still
                    record.moved_m = round(max(0.0, truth.distance - record.odometer_m), 4)
                    self._moving.remove(record)

    def update(self, truth: GroundTruth) -> None:
        """Once the car stands still, how far it went after each stop said since."""
        if abs(truth.speed) < STANDING_MPS:
            for record in self._moving:
                record.moved_m = round(max(0.0, truth.distance - record.odometer_m), 4)
                record.stood_still = True
            self._moving.clear()


@dataclass(frozen=True)
class RunReport:
    """The figures `car launch --report FILE.json` writes at the end of a simulated run (the ground truth no node
    sees), and beside it `FILE.png`, a picture of the track and the car's trail."""

    track: str  # the track's name
    seed: int  # the scene's seed (its noise, and with --randomize its floor, light and camera pose)
    randomized: bool  # --randomize: the scene was drawn at random from the seed
    completed: bool  # the laps asked for (1 by default) were driven, and the car never left the line for long
    laps: int  # laps completed
    lap_times_s: list[float]  # each completed lap's time, car time
    duration_s: float  # car time from the start to the end of the run
    distance_m: float  # metres driven
    mean_speed_mps: float  # distance over duration
    cross_track_rms_m: float  # the RMS distance of the car's centre from the line
    cross_track_max_m: float  # the largest distance from the line
    longest_off_line_s: float  # the longest time the car was off the line in one go
    final_speed_mps: float  # the car's speed when the run ended
    collisions: int  # times the car's body touched a box on the track
    min_obstacle_distance_m: float | None  # the closest the car's front came to a box (None: no box)
    board_brakes: int  # times the board's obstacle brake engaged
    safety_stops: list[dict[str, object]]  # every safety stop: node, reason, time, place, what followed (StopRecord)
    loop_latency_ms_p50: float | None = None  # from a camera frame rendered to the wheel command it caused (None: none)
    loop_latency_ms_p99: float | None = None


def report(
    truth: GroundTruth,
    track: str,
    seed: int,
    laps_wanted: int | None,
    stops: list[StopRecord],
    randomized: bool = False,
    loop_ns: list[int] | None = None,
) -> dict[str, object]:
    """The figures `--report` writes (a `RunReport`, as JSON's fields); `loop_ns`: each frame-to-command latency."""
    completed = truth.laps >= (laps_wanted or 1) and truth.longest_off_line < OFF_TRACK_STOP_S
    closest = truth.min_obstacle_distance
    return asdict(
        RunReport(
            track=track,
            seed=seed,
            randomized=randomized,
            completed=completed,
            laps=truth.laps,
            lap_times_s=[round(t, 3) for t in truth.lap_times],
            duration_s=round(truth.t, 3),
            distance_m=round(truth.distance, 3),
            mean_speed_mps=round(truth.distance / truth.t, 4) if truth.t else 0.0,
            cross_track_rms_m=round(truth.cross_track_rms, 5),
            cross_track_max_m=round(truth.max_cross_track, 5),
            longest_off_line_s=round(truth.longest_off_line, 3),
            final_speed_mps=round(truth.speed, 4),
            collisions=truth.collisions,
            min_obstacle_distance_m=None if closest is None else round(closest, 4),
            board_brakes=truth.board_brakes,
            safety_stops=[asdict(stop) for stop in stops],
            loop_latency_ms_p50=_percentile_ms(loop_ns, 0.5),
            loop_latency_ms_p99=_percentile_ms(loop_ns, 0.99),
        )
    )


def _percentile_ms(samples_ns: list[int] | None, share: float) -> float | None:
    """A percentile of nanosecond samples, in milliseconds (None without samples)."""
    if not samples_ns:
        return None
    ordered = sorted(samples_ns)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))] / 1e6, 3)


def run() -> None:
    """Drive the simulated car from the graph's commands until STOP, the laps asked for, or the car leaves the track."""
    track_name = os.environ.get(TRACK_ENV, "oval")
    seed = int(os.environ.get("CAR_SEED", "0"))
    laps_wanted = int(os.environ["CAR_LAPS"]) if "CAR_LAPS" in os.environ else None
    sim_time = float(os.environ[SIM_TIME_ENV]) if SIM_TIME_ENV in os.environ else None
    factor = float(os.environ.get("CAR_REALTIME_FACTOR", "1"))
    randomized = os.environ.get(RANDOMIZE_ENV) == "1"
    car = load_description(os.environ.get(SIM_ENV_VAR) or None)  # the true car, when the nodes get a model of it
    world = World(
        load_track(track_name),
        seed=seed,
        car_params=car.car,
        camera=car.camera,
        sensors=car.sensors,
        board_brake=True,  # the simulator stands in for the board, and the board brakes for obstacles
        randomize=randomized,
    )
    frame_s = 1 / world.camera.params.fps
    node = Node()
    guard = DriveGuard(DriveLimits.from_env())
    stops = StopLog()  # every safety stop, car_io's and the pilot's, for the report
    pacing = Pacing()
    wall_start = time.monotonic()
    cycle = 0
    ending = ""
    captured_ns = 0  # when this cycle's camera frame went out (0: no frame in this cycle)
    loop_ns: list[int] = []  # capture of a frame -> its command back in car_io, wall clock

    def said(source: str, events: list[SafetyEvent]) -> None:
        """Safety events from car_io or the pilot, kept for the report with where the car is."""
        for event in events:
            stops.said(source, event, world.truth())

    def status() -> str:
        truth = world.truth()
        last_lap = f" (last {truth.lap_times[-1]:.1f} s)" if truth.lap_times else ""
        held = f"  {guard.status()}" if guard.status() else ""
        return (
            f"t {truth.t:.1f} s  lap {truth.laps}{last_lap}  {truth.speed:.2f} m/s  "
            f"cross-track {truth.cross_track * 1000:+.0f} mm{held}"
        )

    inputs = Inputs(node, guard, status, lambda source, event: said(source, [event]))
    next_image_t = 0.0
    frame_shape = (world.camera.params.height, world.camera.params.width, 3)

    def observe(truth: GroundTruth) -> bool:
        """Cycle `cycle`'s observations: the camera frame when one falls due, the ground truth now (`truth`), the
        sensor reading; whether a frame went out."""
        nonlocal captured_ns, next_image_t
        metadata: dict[str, object] = {FRAME_KEY: cycle, "t_sim": round(world.t, 6)}
        with_image = world.t >= next_image_t - 1e-9
        if with_image:
            next_image_t += frame_s
            image = node.allocate_output("image", frame_shape)  # rendered straight into shared memory
            world.camera.read(out=image)
            node.send_output("image", image, {**metadata, OBSERVATION_KEY: Observation.IMAGE.value})
        captured_ns = time.perf_counter_ns() if with_image else 0  # loop latency: frames only
        pose = {
            "t": round(truth.t, 4),
            "x": truth.x,
            "y": truth.y,
            "heading": truth.heading,
            "cross_track": truth.cross_track,
        }
        node.send_output("pose", pose, {**metadata, OBSERVATION_KEY: Observation.POSE.value})
        reading = world.sensors.read()
        guard.sensed(reading, reading.t)
        node.send_output(
            "sensors",
            sensor_message(reading),
            {**metadata, "image": with_image, OBSERVATION_KEY: Observation.SENSORS.value},
        )
        return with_image

    images = 0
    moving_t = 0.0  # car time the car last moved
    next_progress = wall_start + PROGRESS_S

    def progress() -> None:
        """At realtime factor 0, now and then: car time, frames, and how fast they go."""
        nonlocal next_progress
        now = time.monotonic()
        if factor == 0 and now >= next_progress:
            next_progress = now + PROGRESS_S
            wall = now - wall_start
            print(
                f"{PROGRESS}: {world.t:.1f} s of car time, {images} frames in {wall:.1f} s "
                f"({images / wall:.0f} frames/s, {world.t / wall:.1f}x real time)",
                file=sys.stderr,
                flush=True,
            )

    with_image = observe(world.truth())
    while not ending:
        # paced: take commands until the wall-clock time of the next cycle; unpaced: until the answer to this cycle's
        # observation comes, if the pilot answers this cycle's kind (else only what has come already)
        answer: Command | None = None
        waits = factor == 0 and pacing.waits(with_image)
        deadline = (
            wall_start + (world.t + SENSOR_PERIOD_S) / factor
            if factor > 0
            else time.monotonic() + (LOCKSTEP_WAIT_S if waits else 0.0)
        )
        while True:
            event = node.next(timeout=max(0.0, deadline - time.monotonic()))
            if event is None:
                if waits and answer is None:
                    pacing.missed(cycle)
                break
            taken = inputs.take(event, world.t)  # a malformed command stops the wheels; a paced step goes on
            if taken is Ended.STOP:
                ending = "stop"
                break
            if not isinstance(taken, Command):
                continue
            pacing.answered(taken)
            if taken.frame == cycle and not taken.closed and answer is None:  # the answer to this cycle: it lands
                if captured_ns:  # after the modelled latency
                    loop_ns.append(time.perf_counter_ns() - captured_ns)
                answer = taken
                if factor == 0:
                    break
            else:  # free-running (teleop), late for its cycle (a busy machine), or the pilot gone: applied now,
                world.wheels.set_wheel_speeds(taken.left, taken.right)  # the newest word, but it does not pace us
        if ending:
            break
        # advance one cycle: the old command until the answer lands, then the answer
        latency = min(SENSOR_PERIOD_S, COMMAND_LATENCY_S[answer.observation]) if answer is not None else 0.0
        if answer is not None and latency < SENSOR_PERIOD_S:
            world.step(latency)
            world.wheels.set_wheel_speeds(answer.left, answer.right)
            world.step(SENSOR_PERIOD_S - latency)
        else:
            world.step(SENSOR_PERIOD_S)
            if answer is not None:  # it lands as the cycle ends
                world.wheels.set_wheel_speeds(answer.left, answer.right)
        if guard.expired(world.t):
            world.wheels.stop()
        events = guard.take_events()
        said("car_io", events)
        send_safety(node, events)
        truth = world.truth()
        stops.update(truth)
        if abs(truth.speed) >= STANDING_MPS:
            moving_t = truth.t
        if laps_wanted is not None and truth.laps >= laps_wanted:
            ending = f"{truth.laps} laps done"
        elif sim_time is not None and truth.t >= sim_time - 1e-9:
            ending = f"{sim_time:g} s of car time"
        elif laps_wanted is not None and truth.longest_off_line >= OFF_TRACK_STOP_S:  # lost: this run will not lap
            ending = f"off the line for {OFF_TRACK_STOP_S:g} s"
        elif laps_wanted is not None and truth.t - moving_t >= STALLED_S:  # stopped for good: nor will this one
            ending = f"the car stood still for {STALLED_S:g} s"
        else:
            cycle += 1
            with_image = observe(truth)  # the truth this cycle ended with is the next one's start
            images += with_image
            progress()
    if pacing.misses:
        print(
            f"car_io: {pacing.misses} times a cycle went on without its answer after waiting {LOCKSTEP_WAIT_S:g} s "
            f"(the first: cycle {pacing.first_miss}); is the pilot answering car_io's observations?",
            file=sys.stderr,
        )
    world.wheels.stop()
    truth = world.truth()
    figures = report(truth, track_name, seed, laps_wanted, stops.records, randomized, loop_ns)
    print(f"car_io: {json.dumps(figures)}", file=sys.stderr)
    if "CAR_REPORT" in os.environ:
        path = Path(os.environ["CAR_REPORT"])
        path.write_text(json.dumps(figures, indent=2) + "\n")
        save_run_png(path.with_suffix(".png"), render_run(world.track, world.trail, f"{track_name}, seed {seed}"))
    if ending != "stop":
        node.stop_dataflow(ending)
