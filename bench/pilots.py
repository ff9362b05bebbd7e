"""The learned pilot against the classic line follower, track by track, in the simulator.

For each track, `--laps` laps (default 2) at realtime factor 0 of the classic graph
(`dataflows/follow_line.yml`: line detector + controller) and of the learned pilot
(`dataflows/pilot.yml` with models/lane.onnx on lane tracks, models/line.onnx on tape).
The tracks are the shipped ones (sim/tracks/: the models were trained on them) and the
held-out ones (tests/fixtures/tracks/: never seen in training or tuning). With
`--randomize`, every run's scene is drawn at random from its seed.

The issue's bounds, held-out tracks: lane tracks >= 0.5 m/s with cross-track RMS <= 3 cm
and max <= 8 cm; tape tracks >= 0.6 m/s, RMS <= 1.5 cm, max <= 4 cm. On lane tracks the
classic follower sees no tape: it must stop (safely), not wander.

`--json` prints one object: machine, laps, randomize, rows [{track, style, held_out,
classic: figures, learned: figures, learned_passes}].
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from common import BENCH, machine, scratch, simulated_run

ROOT = BENCH.parent
HELD_OUT = ROOT / "tests" / "fixtures" / "tracks"
LANE = {"shipped": ["lane_oval", "lane_curves", "lane_loop"], "held_out": ["lane_kidney", "lane_chicanes"]}
TAPE = {
    "shipped": ["oval", "s_curves", "hairpins", "figure8"],
    "held_out": ["kidney", "chicanes", "pill", "small_loop"],
}
BOUNDS = {"lane": (0.5, 0.03, 0.08), "tape": (0.6, 0.015, 0.04)}  # mean speed at least, RMS and max at most
KEPT = ("completed", "laps", "mean_speed_mps", "cross_track_rms_m", "cross_track_max_m", "distance_m", "error")


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """What the table shows of a run's report, with its first safety stop."""
    shown = {k: report[k] for k in KEPT if k in report}
    stops = report.get("safety_stops") or []
    if stops:
        shown["first_stop"] = stops[0]["reason"]
    return shown


def passes(style: str, shown: dict[str, Any]) -> bool:
    """Whether a run is within the issue's bounds for its style of track."""
    speed, rms, worst = BOUNDS[style]
    return bool(
        shown.get("completed")
        and shown["mean_speed_mps"] >= speed
        and shown["cross_track_rms_m"] <= rms
        and shown["cross_track_max_m"] <= worst
    )


def cell(shown: dict[str, Any]) -> str:
    """A run in a table cell: speed, RMS / max in cm; or where it stopped."""
    if "error" in shown:
        return f"failed: {shown['error']}"
    if not shown.get("completed"):
        if "first_stop" in shown:
            return f"stopped ({shown['first_stop']}) after {shown.get('distance_m', 0):.2f} m"
        return f"off its line after {shown.get('distance_m', 0):.2f} m, no stop"
    return (
        f"{shown['mean_speed_mps']:.2f} m/s, {shown['cross_track_rms_m'] * 100:.1f} / "
        f"{shown['cross_track_max_m'] * 100:.1f} cm"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--laps", type=int, default=2)
    parser.add_argument("--randomize", action="store_true", help="a randomised scene for every run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["lane", "tape"], help="only these tracks")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = scratch("car-pilots-")
    extra = ["--seed", str(args.seed), *(["--randomize"] if args.randomize else [])]
    rows = []
    for style, tracks, model in (("lane", LANE, "lane.onnx"), ("tape", TAPE, "line.onnx")):
        if args.only and args.only != style:
            continue
        for held_out, names in ((False, tracks["shipped"]), (True, tracks["held_out"])):
            for name in names:
                track = str(HELD_OUT / f"{name}.yml") if held_out else name
                classic = figures(
                    simulated_run(ROOT / "dataflows" / "follow_line.yml", track, args.laps, folder, extra)
                )
                learned_extra = [*extra, "--model", str(ROOT / "models" / model)]
                learned = figures(
                    simulated_run(ROOT / "dataflows" / "pilot.yml", track, args.laps, folder, learned_extra)
                )
                row = {"track": name, "style": style, "held_out": held_out, "classic": classic, "learned": learned}
                row["learned_passes"] = passes(style, learned)
                rows.append(row)
                if not args.json:
                    print(f"{name}: classic {cell(classic)}; learned {cell(learned)}", flush=True)
    report = {"machine": machine(), "laps": args.laps, "randomize": args.randomize, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print()
    print("| track | held out | classic (follow_line.yml) | learned (pilot.yml) | within bounds |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['track']} | {'yes' if row['held_out'] else 'no'} | {cell(row['classic'])} | "
            f"{cell(row['learned'])} | {'yes' if row['learned_passes'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
