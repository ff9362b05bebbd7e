"""Timer precision: how regularly `dora/timer/...` ticks reach a node.

Runs a node on `dora/timer/hz/HZ` for SECONDS and reports, from the tick arrival times:
  jitter: |interval - period| (p50, p99, max, µs)
  drift: mean interval minus the period (µs; the timers use absolute deadlines, so ~0)
  delay: tick creation (its HLC timestamp) to arrival in the node (p50, p99, µs)

`--json` prints one object: machine, hz, ticks, jitter_us {p50, p99, max},
drift_us, delay_us {p50, p99}.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from common import machine, read_json, run_car

FLOW = """
env: {{BENCH_OUT: "@OUT/ticks.json"}}
nodes:
  - id: recorder
    path: @NODES/tick_recorder.py
    inputs: {{tick: dora/timer/hz/{hz}}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hz", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    folder = run_car(FLOW.format(hz=args.hz), duration=args.seconds)
    data = read_json(folder / "ticks.json")
    arrivals = np.asarray(data["arrivals_ns"][5:], dtype=np.float64)
    period_ns = 1e9 / args.hz
    intervals = np.diff(arrivals)
    jitter = np.abs(intervals - period_ns) / 1000
    delays = np.asarray(data["delays_ns"][5:], dtype=np.float64) / 1000
    report = {
        "machine": machine(),
        "hz": args.hz,
        "ticks": int(arrivals.size),
        "jitter_us": {
            "p50": round(float(np.percentile(jitter, 50)), 1),
            "p99": round(float(np.percentile(jitter, 99)), 1),
            "max": round(float(jitter.max()), 1),
        },
        "drift_us": round(float(intervals.mean() - period_ns) / 1000, 2),
        "delay_us": {
            "p50": round(float(np.percentile(delays, 50)), 1),
            "p99": round(float(np.percentile(delays, 99)), 1),
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    j, d = report["jitter_us"], report["delay_us"]
    print(f"{report['machine']['date']}, {report['machine']['cpus']} CPUs: {report['ticks']} ticks at {args.hz:g} Hz")
    print(f"jitter  p50 {j['p50']} µs  p99 {j['p99']} µs  max {j['max']} µs")
    print(f"drift   {report['drift_us']} µs per tick (mean interval minus period)")
    print(f"delay   p50 {d['p50']} µs  p99 {d['p99']} µs (tick created -> node has it)")


if __name__ == "__main__":
    main()
