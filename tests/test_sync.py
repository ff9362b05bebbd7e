"""`car sync` and `car start`: a machine that starts with an empty home folder gets its nodes' files and builds
there, through a real coordinator and daemons with keys; a second sync sends nothing; an edited file is the only
one sent; a file the machine cannot take is one clear error and nothing starts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, car
from tests.test_several_machines import Cluster, two_machines

sys.path.insert(0, str(ROOT / "bench"))
from sync import write_project  # bench/sync.py's project: a hundred files for m2

pytestmark = pytest.mark.slow


def synced(group: Cluster, flow: Path) -> dict[str, Any]:
    """`car sync FLOW --json`: what the car got."""
    result = group.car("sync", str(flow), "--json", cwd=flow.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    machines: dict[str, Any] = json.loads(result.stdout)["machines"]
    assert set(machines) == {"m2"}  # m1 shares this host's files: nothing is sent to it
    return machines["m2"]  # type: ignore[no-any-return]


def test_start_ships_and_builds_on_an_empty_machine_and_sync_then_sends_only_what_changed(tmp_path: Path) -> None:
    flow = write_project(tmp_path / "project", files=100, count=30)
    robot = flow.parent / "robot"
    (robot / "__pycache__").mkdir()
    (robot / "__pycache__" / "sink.cpython-311.pyc").write_bytes(b"never sent")
    (flow.parent / "out").mkdir()
    (flow.parent / "out" / "old-run.mcap").write_bytes(b"never sent")
    with two_machines(keys=True, apart=True) as group:
        home = group.home("m2")
        on_car = home / "proj"
        assert not on_car.exists()
        started = group.car("start", str(flow), "--name", "shipped", "--attach", cwd=flow.parent, timeout=180)
        assert started.returncode == 0, started.stderr
        assert "machine `m2`: 100 files sent" in started.stderr and "0 unchanged" in started.stderr
        assert "`sink` built: ran" in started.stderr
        got = group.sink_result("shipped")
        assert got["got"] == list(range(1, 31)) and got["value"] == 7  # the shipped code ran, with its library
        assert got["table"] == {"left": 4, "right": 5} and got["home"] == str(home)  # built there, run there
        assert not (robot / "table.json").exists()  # the build ran on m2, not here
        shipped = {p.relative_to(on_car).as_posix() for p in on_car.rglob("*") if p.is_file()}
        assert len(shipped) == 101 and "robot/table.json" in shipped  # the hundred, and what the build wrote
        assert not any("__pycache__/sink" in p or p.startswith("out/") for p in shipped)

        again = synced(group, flow)  # nothing changed: nothing sent, the build skipped
        assert again["sent"] == [] and again["bytes"] == 0 and len(again["unchanged"]) == 100
        assert [(b["node"], b["outcome"]) for b in again["builds"]] == [("sink", "cached")]

        edited = robot / "lib" / "mod_042.py"
        edited.write_text("VALUE = 4200\n")
        one = synced(group, flow)  # one file sent; the build did not read it: still cached
        assert one["sent"] == ["proj/robot/lib/mod_042.py"] and one["bytes"] == len("VALUE = 4200\n")
        assert (on_car / "robot" / "lib" / "mod_042.py").read_text() == "VALUE = 4200\n"
        assert [b["outcome"] for b in one["builds"]] == ["cached"]

        (robot / "data.txt").write_text("left right stop")  # what the build reads
        rebuilt = synced(group, flow)
        assert rebuilt["sent"] == ["proj/robot/data.txt"] and [b["outcome"] for b in rebuilt["builds"]] == ["ran"]
        assert json.loads((on_car / "robot" / "table.json").read_text()) == {"left": 4, "right": 5, "stop": 4}

        # a file the car cannot take (a folder in its way there): one error naming both, and nothing starts
        (on_car / "robot" / "lib" / "mod_050.py").unlink()
        (on_car / "robot" / "lib" / "mod_050.py").mkdir()
        (robot / "lib" / "mod_050.py").write_text("VALUE = 5000\n")
        refused = group.car("start", str(flow), "--name", "refused", cwd=flow.parent, timeout=120)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert "machine `m2`" in refused.stderr and "mod_050.py" in refused.stderr, refused.stderr
        assert "Is a directory" in refused.stderr
        listed = group.car("list", "--json", cwd=flow.parent)
        assert "refused" not in listed.stdout  # nothing started anywhere
        assert not list((on_car / "robot" / "lib").glob(".*car-partial"))  # nothing half-written is left

        # a build that fails there: exit 1, its output, and nothing starts
        (on_car / "robot" / "lib" / "mod_050.py").rmdir()
        (robot / "make_table.py").write_text("raise SystemExit('no table today')\n")
        failed = group.car("sync", str(flow), cwd=flow.parent, timeout=120)
        assert failed.returncode == 1 and "the build of node `sink` failed" in failed.stderr
        assert "no table today" in failed.stderr and "Traceback" not in failed.stderr.split("no table")[0]


def test_sync_says_so_when_no_machine_needs_files(tmp_path: Path) -> None:
    """Every node on machines that share this host's files (or none named): nothing to send, no coordinator asked."""
    flow = tmp_path / "flow.yml"
    flow.write_text("nodes:\n  - id: a\n    path: a.py\n    inputs: {t: dora/timer/millis/100}\n")
    (tmp_path / "a.py").write_text("")
    said = car("sync", str(flow), "--coordinator-addr", "127.0.0.1:1", cwd=tmp_path)
    assert said.returncode == 0, said.stderr
    assert "nothing to send" in said.stderr
