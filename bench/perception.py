"""Perception speed on one core: milliseconds per 320x240 frame, for the line detector and the learned pilot.

Renders frames along every shipped tape track with the simulator's camera (noise on),
then times `LineDetector.detect` on them; and frames along the shipped lane tracks, on
which it times the learned pilot's model (`--model`, default models/lane.onnx: shrinking
the frame and running the network with OpenCV's DNN module, nodes.pilot_model). `--json`
prints: machine, frames, ms_p50, ms_p99, found (fraction of frames where the line was
found), and model {file, frames, ms_p50, ms_p99} (null without a model file).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
from common import BENCH, machine

from nodes.line_detector import LineDetector
from nodes.pilot_model import load_model
from sim import World, load_track

MODEL = BENCH.parent / "models" / "lane.onnx"


def frames_along(tracks: tuple[str, ...], count: int) -> tuple[list[np.ndarray], World]:
    """`count` frames along each track, the car swaying a little about its line; and the last world."""
    frames = []
    for name in tracks:
        world = World(load_track(name), seed=1)
        for k in range(count):
            x, y, heading = world.track.pose_at(world.track.length * k / count, offset=0.01 * np.sin(k))
            frames.append(world.camera.render(x, y, heading))
    return frames, world


def model_times(path: Path, count: int) -> dict[str, object] | None:
    """The learned pilot's model on frames along the lane tracks: ms per frame (None without the file)."""
    if not path.is_file():
        return None
    model = load_model(path)
    frames, _ = frames_along(("lane_oval", "lane_curves", "lane_loop"), count)
    times = []
    for frame in frames:
        start = time.perf_counter_ns()
        model.decide(frame)
        times.append(time.perf_counter_ns() - start)
    ms = np.asarray(times) / 1e6
    return {
        "file": path.name,
        "frames": len(frames),
        "ms_p50": round(float(np.percentile(ms, 50)), 3),
        "ms_p99": round(float(np.percentile(ms, 99)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200, help="frames per track (default 200)")
    parser.add_argument(
        "--model", type=Path, default=MODEL, help="the learned pilot's model (default models/lane.onnx)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    frames, world = frames_along(("oval", "s_curves", "hairpins", "figure8"), args.frames)
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
        "model": model_times(args.model, args.frames),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['machine']['date']}, one core: {report['frames']} frames of 320x240")
    print(f"line detector: p50 {report['ms_p50']} ms, p99 {report['ms_p99']} ms; line found in {report['found']:.1%}")
    model = report["model"]
    if isinstance(model, dict):
        print(f"learned pilot ({model['file']}): p50 {model['ms_p50']} ms, p99 {model['ms_p99']} ms per frame")


if __name__ == "__main__":
    main()
