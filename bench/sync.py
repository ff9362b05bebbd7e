"""Code shipped to a machine: from an edited file to the graph running there, and the bytes sent.

A coordinator and two daemons on this host with CurveZMQ keys; m2 has a home, runtime and
cache folder of its own (it shares no files with the `car` commands, as a car does not
share the laptop's) and starts empty. The project: a source on m1, and on m2 a sink whose
folder holds `--files` files (its code and a library) and whose build writes a table.

- first start: `car start` ships everything, builds there, and runs (until the sink's first input);
- unchanged sync: `car sync` with nothing changed (every file offered, none sent; the build cached);
- edit to running: one library file edited, then `car start` until the sink's first input;
- start without sync: the same `car start --no-sync`, for the share the sync takes.

`python bench/sync.py [--files 100] [--json]`; numbers in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from common import machine
from machines import CarCluster, _wait

FLOW = """
nodes:
  - id: src
    path: src.py
    inputs: {tick: dora/timer/millis/20}
    outputs: [small]
    deploy: {machine: m1}
  - id: sink
    path: robot/sink.py
    build: python3 robot/make_table.py
    inputs: {small: src/small}
    deploy: {machine: m2, working_dir: proj}
"""
SRC = """
from car import Node
node = Node()
for n, event in enumerate((e for e in node if e.type == "INPUT"), start=1):
    node.send_output("small", {{"n": n}})
    if n == {count}:
        break
"""
SINK = """
import json, pathlib
from car import Node
from lib.mod_007 import VALUE
table = json.loads(pathlib.Path("robot/table.json").read_text())  # made by the build, on this machine
node = Node()
got = []
for event in node:
    if event.type == "INPUT":
        if not got:
            print("running", flush=True)
        got.append(event.value["n"])
print(json.dumps({"got": got, "table": table, "value": VALUE, "home": str(pathlib.Path.home())}), flush=True)
"""
MAKE_TABLE = """
import json, pathlib
words = pathlib.Path("robot/data.txt").read_text().split()
pathlib.Path("robot/table.json").write_text(json.dumps({w: len(w) for w in words}))
"""


def write_project(folder: Path, files: int, count: int = 0) -> Path:
    """`files` files for m2 (its sink, the build, the build's data, a library of `files - 4` modules), and m1's
    source beside the dataflow file (it sends `count` messages, or without end); the dataflow file's path."""
    lib = folder / "robot" / "lib"
    lib.mkdir(parents=True)
    (folder / "flow.yml").write_text(FLOW)
    (folder / "src.py").write_text(SRC.format(count=count))
    (folder / "robot" / "sink.py").write_text(SINK)
    (folder / "robot" / "make_table.py").write_text(MAKE_TABLE)
    (folder / "robot" / "data.txt").write_text("left right")
    (lib / "__init__.py").write_text("")
    for k in range(files - 4):
        (lib / f"mod_{k:03d}.py").write_text(f'"""Module {k}."""\n\nVALUE = {k}\n' + "# padding\n" * 40)
    return folder / "flow.yml"


def timed_start(group: CarCluster, flow: Path, name: str, *options: str) -> tuple[float, str]:
    """Seconds from `car start` to the sink's first input on m2, and what `car start` said."""
    log = group.root / "out" / name / "sink.log"
    began = time.perf_counter()
    started = group.car("start", str(flow), "--name", name, *options)
    if started.returncode != 0:
        raise RuntimeError(f"car start failed: {started.stderr}")
    _wait(lambda: log.is_file() and "running" in log.read_text(), 120, f"{name}'s sink")
    seconds = time.perf_counter() - began
    group.car("stop", "-d", name)
    return seconds, started.stderr


def sent_bytes(said: str) -> int:
    """The bytes `car start` says it sent to m2."""
    found = re.search(r"machine `m2`: \d+ files? sent \(([\d.]+) (B|KB|MB)\)", said)
    if found is None:
        raise RuntimeError(f"car start did not say what it sent: {said}")
    return round(float(found.group(1)) * {"B": 1, "KB": 1000, "MB": 1_000_000}[found.group(2)])


def main() -> int:
    """Run the steps and print the times and sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100, help="files in m2's node folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.files < 12:
        parser.error("--files must be at least 12 (the sink imports lib.mod_007)")
    group = CarCluster(keys=True, apart=True)
    try:
        flow = write_project(group.root / "project", args.files)
        first_s, first_said = timed_start(group, flow, "first")
        began = time.perf_counter()
        unchanged = group.car("sync", str(flow), "--json")
        unchanged_s = time.perf_counter() - began
        if unchanged.returncode != 0:
            raise RuntimeError(f"car sync failed: {unchanged.stderr}")
        nothing = json.loads(unchanged.stdout)["machines"]["m2"]
        edited = flow.parent / "robot" / "lib" / "mod_000.py"
        edited.write_text(edited.read_text().replace("VALUE = 0", "VALUE = 4200"))
        edit_s, edit_said = timed_start(group, flow, "edited")
        plain_s, _ = timed_start(group, flow, "plain", "--no-sync")
    finally:
        group.close()
    report: dict[str, Any] = {
        "machine": machine(),
        "files": args.files,
        "first_start_s": round(first_s, 3),
        "first_bytes": sent_bytes(first_said),
        "unchanged_sync_s": round(unchanged_s, 3),
        "unchanged_sent": len(nothing["sent"]),
        "unchanged_bytes": nothing["bytes"],
        "unchanged_builds": [b["outcome"] for b in nothing["builds"]],
        "edit_to_running_s": round(edit_s, 3),
        "edit_bytes": sent_bytes(edit_said),
        "start_without_sync_s": round(plain_s, 3),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.files} files for m2 (keys; m2 shares no files with the car commands)")
        print(f"  first start (ship all, build, run):  {first_s:6.2f} s, {report['first_bytes']} bytes sent")
        print(f"  sync with nothing changed:           {unchanged_s:6.2f} s, {nothing['bytes']} bytes sent")
        print(f"  one file edited -> running on m2:    {edit_s:6.2f} s, {report['edit_bytes']} bytes sent")
        print(f"  the same start without the sync:     {plain_s:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
