"""Control-loop latency: a camera frame's capture to the wheel command it caused, in car_io.

Runs `car launch dataflows/follow_line.yml` in real time for --laps laps of the oval
(camera -> line_detector -> controller -> car_io, separate processes) and reads the
figures car_io measured. `--pilot MODEL.onnx`: the learned pilot instead
(dataflows/pilot.yml, camera -> pilot -> car_io) on the lane oval. `--json` prints: machine, frames, loop_latency_ms_p50,
loop_latency_ms_p99, mean_speed_mps, cross_track_rms_m.

`--watched`: while it drives, someone looks: `car top` refreshing once a second (the
nodes time their inputs) and `car topic echo car_io/image --json` (a subscriber that
summarises every frame), to measure what looking costs the loop. `--recorded`: `car record`
writes every output (camera frames as foxglove.RawImage) into an MCAP file meanwhile; the
report adds what it wrote and lost. `--viewed`: `car launch --view` with a page open in a
headless Chromium (Debian's `chromium`) all along: frames JPEG-encoded and streamed, plots
and the node table updated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH, machine, scratch

CAR = [sys.executable, "-m", "car"]


def wait_running(name: str, run: subprocess.Popen[str], nodes: int) -> None:
    """Until run `name` has its `nodes` nodes running (or has ended)."""
    while run.poll() is None:
        listed = subprocess.run([*CAR, "node", "list", "-d", name], capture_output=True, text=True)
        if listed.returncode == 0 and listed.stdout.count("running") >= nodes:
            return
        time.sleep(0.2)


def watch(name: str) -> list[subprocess.Popen[bytes]]:
    """Start `car top` and `car topic echo car_io/image` on run `name`."""
    lookers = [[*CAR, "top", "-d", name], [*CAR, "topic", "echo", "car_io/image", "--json", "-d", name]]
    return [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in lookers]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def open_page(url: str, folder: Path) -> subprocess.Popen[bytes]:
    """A headless Chromium showing `url` until it is terminated (SystemExit when there is no `chromium`)."""
    binary = shutil.which("chromium")
    if binary is None:
        raise SystemExit("--viewed needs Chromium: apt-get install chromium")
    time.sleep(1.0)  # the view starts beside the nodes
    profile = ["--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={folder / 'chromium'}"]
    return subprocess.Popen([binary, *profile, url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--laps", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--watched", action="store_true", help="run `car top` and `car topic echo` meanwhile")
    parser.add_argument("--recorded", action="store_true", help="run `car record` of every output meanwhile")
    parser.add_argument("--viewed", action="store_true", help="serve the live view with a page open meanwhile")
    parser.add_argument("--pilot", metavar="MODEL.onnx", help="the learned pilot with this model, on the lane oval")
    args = parser.parse_args()
    folder = scratch("car-loop-")
    report_path = folder / "run.json"
    flow = BENCH.parent / "dataflows" / ("pilot.yml" if args.pilot else "follow_line.yml")
    name = f"loop-{os.getpid()}"
    command = [sys.executable, "-m", "car", "launch", str(flow), "--laps", str(args.laps), "--headless", "--quiet"]
    if args.pilot:
        command += ["--model", str(Path(args.pilot).resolve()), "--track", "lane_oval"]
    command += ["--realtime-factor", "1", "--report", str(report_path), "--out", str(folder / "out"), "--name", name]
    port = free_port()
    command += ["--view", "--view-port", str(port)] if args.viewed else []
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_running(name, run, 2 if args.pilot else 3)
    page = open_page(f"http://127.0.0.1:{port}/", folder) if args.viewed else None
    lookers = watch(name) if args.watched else []
    mcap = folder / "run.mcap"
    recorder = (
        subprocess.Popen([*CAR, "record", "-d", name, "-o", str(mcap)], stderr=subprocess.PIPE, text=True)
        if args.recorded
        else None
    )
    _, stderr = run.communicate(timeout=600)
    if page is not None:
        page.terminate()
        page.wait(timeout=10)
    for looker in lookers:
        looker.terminate()
        looker.wait(timeout=10)
    recorded = recorder.communicate(timeout=60)[1].strip().splitlines()[-1] if recorder is not None else ""
    if run.returncode != 0:
        raise SystemExit(f"car launch failed:\n{stderr}")
    figures = json.loads(report_path.read_text())
    report = {
        "machine": machine(),
        "frames": round(figures["duration_s"] * 30),
        "loop_latency_ms_p50": figures["loop_latency_ms_p50"],
        "loop_latency_ms_p99": figures["loop_latency_ms_p99"],
        "mean_speed_mps": figures["mean_speed_mps"],
        "cross_track_rms_m": figures["cross_track_rms_m"],
        "pilot": Path(args.pilot).name if args.pilot else None,
        "watched": args.watched,
        "viewed": args.viewed,
        "recorded": recorded,
        "recording_bytes": mcap.stat().st_size if args.recorded else 0,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['machine']['date']}, {report['machine']['cpus']} CPUs, {report['frames']} frames in real time")
    print(
        f"frame capture -> command applied: p50 {report['loop_latency_ms_p50']} ms, p99 {report['loop_latency_ms_p99']} ms"
    )
    if recorded:
        print(f"{recorded} ({report['recording_bytes'] / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
