"""A graph edited while it runs: `car node add|connect|disconnect|replace|remove` on a real run (processes, sockets),
each step waited for in what the nodes receive (car.daemon.edits)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import car, start_car, wait_for_nodes, wait_until, write_flow

pytestmark = pytest.mark.slow

DEADLINE_S = 60.0
FLOW = """
nodes:
  - id: src
    path: src.py
    inputs: {tick: dora/timer/millis/20}
    outputs: [count]
  - id: sink
    path: sink.py
    inputs: {count: src/count}
"""
SRC = """
from car import Node

node = Node()
n = 0
for event in node:
    if event.type == "INPUT":
        n += 1
        node.send_output("count", n)
"""
SINK = """
import json
from car import Node

with open("seen.jsonl", "a") as seen:
    for event in Node():
        row = {"type": event.type, "id": event.id, "value": event.value if event.type == "INPUT" else None}
        seen.write(json.dumps(row) + "\\n")
        seen.flush()
"""
EXTRA = """
import os
from car import Node

factor = int(os.environ.get("FACTOR", "2"))
node = Node()
for event in node:
    if event.type == "INPUT" and event.id == "count":
        node.send_output("scaled", [factor, factor * event.value])
"""
EXTRA_YML = """
id: extra
path: extra.py
env: {FACTOR: "FACTOR_HERE"}
inputs:
  count: src/count
  tick: dora/timer/millis/50
outputs: [scaled]
"""


def test_a_running_graph_gains_a_node_and_connections_loses_them_and_a_node_is_replaced(tmp_path: Path) -> None:
    write_flow(tmp_path, FLOW, src_py=SRC, sink_py=SINK, extra_py=EXTRA)
    (tmp_path / "extra.yml").write_text(EXTRA_YML.replace("FACTOR_HERE", "2"))
    (tmp_path / "extra3.yml").write_text(EXTRA_YML.replace("FACTOR_HERE", "3"))
    (tmp_path / "bad.yml").write_text("id: bad\npath: bad.py\ninputs:\n  x: src/cuont\n")
    proc = start_car("launch", "flow.yml", "--name", "edited", "--out", "out", cwd=tmp_path)

    def seen() -> list[dict[str, object]]:
        path = tmp_path / "seen.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.endswith("}")]

    def edit(*args: str) -> str:
        result = car("node", *args, "-d", "edited", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    try:
        wait_for_nodes("edited", ("src", "sink"), timeout=DEADLINE_S)
        refused = car("node", "add", "--from-yaml", "bad.yml", "-d", "edited", cwd=tmp_path)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert "bad.yml:2:7: node `bad`.path `bad.py` does not exist" in refused.stderr, refused.stderr
        assert (
            "bad.yml:4:6: node `bad` input `x` reads `src/cuont`, but `src` declares no output `cuont`"
            in refused.stderr
        )
        assert "added extra to edited (running" in edit("add", "--from-yaml", "extra.yml")
        edit("connect", "extra/scaled", "sink/scaled")
        wait_until(
            "the added node's values at the sink",
            lambda: any(r["id"] == "scaled" for r in seen()),
            timeout=DEADLINE_S,
            poll=0.05,
            alive=proc,
        )
        edit("disconnect", "src/count", "sink/count")
        wait_until(
            "INPUT_CLOSED count",
            lambda: {"type": "INPUT_CLOSED", "id": "count", "value": None} in seen(),
            timeout=DEADLINE_S,
            poll=0.05,
            alive=proc,
        )
        closed_at = seen().index({"type": "INPUT_CLOSED", "id": "count", "value": None})
        assert "replaced extra in edited (running" in edit("replace", "extra", "--from-yaml", "extra3.yml")
        wait_until(
            "the replaced node's values",
            lambda: any(r["id"] == "scaled" and r["value"][0] == 3 for r in seen()),
            timeout=DEADLINE_S,
            poll=0.05,
            alive=proc,
        )
        assert "removed extra from edited (exited)" in edit("remove", "extra")
        wait_until(
            "INPUT_CLOSED scaled",
            lambda: {"type": "INPUT_CLOSED", "id": "scaled", "value": None} in seen(),
            timeout=DEADLINE_S,
            poll=0.05,
            alive=proc,
        )
        listed = edit("list")
        assert "extra" in listed and "exited" in listed
        stopped = car("stop", "-d", "edited")
        assert stopped.returncode == 0, stopped.stderr
        _, stderr = proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    rows = seen()
    assert not [r for r in rows[closed_at + 1 :] if r["id"] == "count"]  # nothing on a disconnected input
    scaled = [r["value"] for r in rows if r["id"] == "scaled" and r["type"] == "INPUT"]
    factors = [factor for factor, _ in scaled]  # type: ignore[misc]
    assert set(factors) == {2, 3} and factors == sorted(factors)  # the first definition's values, then the new one's
