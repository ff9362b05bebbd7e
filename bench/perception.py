"""Line detector speed on one core: milliseconds per 320x240 frame.

Renders frames along every shipped track with the simulator's camera (noise on), then
times `LineDetector.detect` on them. `--json` prints: machine, frames, ms_p50, ms_p99,
found (fraction of frames where the line was found).
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
from common import machine

from nodes.line_detector import LineDetector
from sim import World, load_track


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200, help="frames per track (default 200)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    frames = []
    for name in ("oval", "s_curves", "hairpins", "figure8"):
        world = World(load_track(name), seed=1)
        for k in range(args.frames):
            x, y, heading = world.track.pose_at(world.track.length * k / args.frames, offset=0.01 * np.sin(k))
            state = world.vehicle.state
            state.x, state.y, state.heading = x, y, heading
            frames.append(world.camera.read()[0])
    detector = LineDetector(world.camera.params)
    times, found = [], 0
    for frame in frames:
        start = time.perf_counter_ns()
        estimate = detector.detect(frame)
        times.append(time.perf_counter_ns() - start)
        found += estimate.found
    ms = np.asarray(times) / 1e6
    report = {
        "machine": machine(),
        "frames": len(frames),
        "ms_p50": round(float(np.percentile(ms, 50)), 3),
        "ms_p99": round(float(np.percentile(ms, 99)), 3),
        "found": round(found / len(frames), 3),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['machine']['date']}, one core: {report['frames']} frames of 320x240")
    print(f"line detector: p50 {report['ms_p50']} ms, p99 {report['ms_p99']} ms; line found in {report['found']:.1%}")


if __name__ == "__main__":
    main()
