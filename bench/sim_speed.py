"""Simulator speed: how much faster than real time a headless run goes, and frame render cost.

Drives the car around the oval for --seconds of simulated time with a simple controller
on ground truth; physics steps every 10 ms (1 ms inside), all sensors are read every
10 ms and the camera renders at 30 Hz of simulated time, with noise on. OpenCV is held
to one thread: the figures are for one core.

Beside each rendered frame, one bare `cv2.warpPerspective` of the same floor to the same
pose (nearest neighbour, no blur, no noise: the least a frame can cost) is timed, and
`render_vs_bare_warp` is the ratio of the medians (the target: at most 3). With
`--randomize` the scene is randomised (sim.randomize) and the frames carry motion blur.

`--json` prints one object: machine, sim_seconds, wall_seconds, realtime_factor,
render_ms_p50, render_ms_p99, bare_warp_ms_p50, render_vs_bare_warp, frames,
sensor_reads, physics_ms_per_sim_s.
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
from common import machine

from sim import World, load_track

STEP_S = 0.01
FRAME_S = 1 / 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="simulated seconds (default 60)")
    parser.add_argument("--track", default="oval")
    parser.add_argument("--randomize", action="store_true", help="a randomised scene (seeded)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    world = World(load_track(args.track), seed=1, randomize=args.randomize)
    render_ns: list[int] = []
    bare_ns: list[int] = []
    camera = world.camera
    bare = np.empty((camera.params.height, camera.params.width, 3), np.uint8)
    physics_ns = 0
    reads = 0
    next_frame = 0.0
    start = time.perf_counter_ns()
    while world.t < args.seconds:
        truth = world.truth()
        omega = -8.0 * truth.cross_track
        world.wheels.set_wheel_speeds(0.4 - omega * 0.075, 0.4 + omega * 0.075)
        t0 = time.perf_counter_ns()
        world.step(STEP_S)
        physics_ns += time.perf_counter_ns() - t0
        world.sensors.read()
        reads += 1
        if world.t >= next_frame:
            t0 = time.perf_counter_ns()
            world.camera.read()
            render_ns.append(time.perf_counter_ns() - t0)
            state = world.vehicle.state
            homography = camera.homography(state.x, state.y, state.heading)
            size = (camera.params.width, camera.params.height)
            t0 = time.perf_counter_ns()
            cv2.warpPerspective(world.floor.image, homography, size, dst=bare, flags=cv2.INTER_NEAREST)
            bare_ns.append(time.perf_counter_ns() - t0)
            next_frame += FRAME_S
    wall = (time.perf_counter_ns() - start) / 1e9
    renders = np.asarray(render_ns) / 1e6
    bare_p50 = float(np.percentile(np.asarray(bare_ns) / 1e6, 50))
    report = {
        "machine": machine(),
        "sim_seconds": round(world.t, 2),
        "wall_seconds": round(wall, 3),
        "realtime_factor": round(world.t / wall, 1),
        "render_ms_p50": round(float(np.percentile(renders, 50)), 3),
        "render_ms_p99": round(float(np.percentile(renders, 99)), 3),
        "bare_warp_ms_p50": round(bare_p50, 3),
        "render_vs_bare_warp": round(float(np.percentile(renders, 50)) / bare_p50, 2),
        "frames": int(renders.size),
        "sensor_reads": reads,
        "physics_ms_per_sim_s": round(physics_ns / 1e6 / world.t, 2),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['machine']['date']}, one core: {report['sim_seconds']} s simulated in {report['wall_seconds']} s")
    print(f"realtime factor {report['realtime_factor']}x")
    print(
        f"render 320x240 with noise: p50 {report['render_ms_p50']} ms, p99 {report['render_ms_p99']} ms ({report['frames']} frames)"
    )
    print(f"bare warp: p50 {report['bare_warp_ms_p50']} ms; a noisy frame costs {report['render_vs_bare_warp']}x that")
    print(f"physics {report['physics_ms_per_sim_s']} ms per simulated second; {reads} sensor reads")


if __name__ == "__main__":
    main()
