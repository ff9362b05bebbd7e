"""Control-loop latency: a camera frame's capture to the wheel command it caused, in car_io.

Runs `car launch dataflows/follow_line.yml` in real time for --laps laps of the oval
(camera -> line_detector -> controller -> car_io, separate processes) and reads the
figures car_io measured. `--json` prints: machine, frames, loop_latency_ms_p50,
loop_latency_ms_p99, mean_speed_mps, cross_track_rms_m.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import BENCH, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--laps", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="car-loop-"))
    report_path = folder / "run.json"
    flow = BENCH.parent / "dataflows" / "follow_line.yml"
    command = [sys.executable, "-m", "car", "launch", str(flow), "--laps", str(args.laps), "--headless", "--quiet"]
    command += ["--realtime-factor", "1", "--report", str(report_path), "--out", str(folder / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"car launch failed:\n{result.stderr}")
    figures = json.loads(report_path.read_text())
    report = {
        "machine": machine(),
        "frames": round(figures["duration_s"] * 30),
        "loop_latency_ms_p50": figures["loop_latency_ms_p50"],
        "loop_latency_ms_p99": figures["loop_latency_ms_p99"],
        "mean_speed_mps": figures["mean_speed_mps"],
        "cross_track_rms_m": figures["cross_track_rms_m"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['machine']['date']}, {report['machine']['cpus']} CPUs, {report['frames']} frames in real time")
    print(
        f"frame capture -> command applied: p50 {report['loop_latency_ms_p50']} ms, p99 {report['loop_latency_ms_p99']} ms"
    )


if __name__ == "__main__":
    main()
