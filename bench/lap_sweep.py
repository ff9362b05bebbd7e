"""Lap speed against accuracy: follow_line in the simulator over a grid of the controller's tuning.

For each combination of the values given (`--grid max_speed=0.9,1.0 lookahead=0.15,0.17`,
any of the controller's TUNABLE fields) and each track, one run of `follow_line.yml`
(`--laps N --realtime-factor 0`, so the result does not depend on the machine's speed)
reports the mean speed, the cross-track RMS and maximum, and the time off the line. A
combination passes when, on every track, the lap is completed at a mean speed of at least
`--min-speed` with RMS at most 1 cm, maximum at most 3 cm, and never off the line; the
best is the passing one whose slowest track is fastest.

`--json` prints one object: machine, tracks, rows [{params, tracks: {name: figures}, passes,
slowest_mps}], best.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from common import machine, simulated_run

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "dataflows" / "follow_line.yml"
MAX_RMS_M = 0.01
MAX_CTE_M = 0.03


def run_lap(track: str, params: dict[str, float], laps: int, work: Path, extra: list[str]) -> dict[str, Any]:
    """One simulated run with the controller tuned by `params`; its report."""
    flow = yaml.safe_load(FLOW.read_text())
    for node in flow["nodes"]:
        if node["id"] == "controller":
            node["env"] = {**node.get("env", {}), **{k.upper(): str(v) for k, v in params.items()}}
    path = work / "follow_line.yml"
    path.write_text(yaml.safe_dump(flow))
    return simulated_run(path, track, laps, work, extra)


def passes(figures: dict[str, Any], min_speed: float) -> bool:
    """Completed, fast enough, accurate enough, never off the line."""
    return bool(
        figures.get("completed")
        and figures["mean_speed_mps"] >= min_speed
        and figures["cross_track_rms_m"] <= MAX_RMS_M
        and figures["cross_track_max_m"] <= MAX_CTE_M
        and figures["longest_off_line_s"] == 0.0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", default="oval,figure8,hairpins,s_curves", help="names or files, comma-separated")
    parser.add_argument("--grid", nargs="*", default=[], metavar="NAME=V1,V2", help="the controller's values to try")
    parser.add_argument("--laps", type=int, default=1)
    parser.add_argument("--min-speed", type=float, default=0.7, help="m/s a passing lap averages at least")
    parser.add_argument("--car", metavar="FILE.yml", help="the car description the nodes use (car launch --car)")
    parser.add_argument("--sim-car", metavar="FILE.yml", help="the simulated car (car launch --sim-car)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names, values = [], []
    for item in args.grid:
        name, _, listed = item.partition("=")
        names.append(name)
        values.append([float(v) for v in listed.split(",")])
    extra = (["--car", args.car] if args.car else []) + (["--sim-car", args.sim_car] if args.sim_car else [])
    tracks = args.tracks.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for combination in itertools.product(*values) if values else [()]:
            params = dict(zip(names, combination, strict=True))
            results = {track: run_lap(track, params, args.laps, Path(folder), extra) for track in tracks}
            ok = all(passes(f, args.min_speed) for f in results.values())
            slowest = min((f.get("mean_speed_mps", 0.0) for f in results.values()), default=0.0)
            rows.append({"params": params, "tracks": results, "passes": ok, "slowest_mps": slowest})
            if not args.json:
                cells = "  ".join(
                    f"{t}: {f.get('mean_speed_mps', 0):.3f} m/s {f.get('cross_track_rms_m', 0) * 1000:.1f}/"
                    f"{f.get('cross_track_max_m', 0) * 1000:.1f} mm{'' if passes(f, args.min_speed) else ' x'}"
                    for t, f in results.items()
                )
                print(f"{params}: {'PASS' if ok else 'fail'}  {cells}", flush=True)
    passing = [r for r in rows if r["passes"]]
    best = max(passing, key=lambda r: r["slowest_mps"]) if passing else None
    if args.json:
        print(json.dumps({"machine": machine(), "tracks": tracks, "rows": rows, "best": best}, indent=2))
    elif best is not None:
        print(f"best: {best['params']} (slowest track {best['slowest_mps']:.3f} m/s)")
    else:
        print("no combination passes on every track")


if __name__ == "__main__":
    main()
