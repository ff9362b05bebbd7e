"""dora's operators run unchanged, as tasks in one runtime process per node: both forms, restarts in place, an
operator blocked in I/O beside one that goes on (real processes, real sockets; car.operators)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, car, launch, start_car, wait_until

pytestmark = pytest.mark.slow

FIXTURES = ROOT / "tests" / "fixtures" / "dora_operators"
DEADLINE_S = 60.0


def copied(tmp_path: Path) -> Path:
    """The fixtures in a folder of the test's own."""
    folder = tmp_path / "ops"
    shutil.copytree(FIXTURES, folder)
    return folder


def results(folder: Path) -> list[dict[str, object]]:
    path = folder / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_dora_operator_template_and_both_forms_run_unchanged(tmp_path: Path) -> None:
    folder = copied(tmp_path)
    said = launch(folder / "both_forms.yml")
    assert "4 of 4 nodes ok" in said, said
    log = next((folder / "out").rglob("template.log")).read_text()
    assert log.count("Received input count, with data: [") == 30 and "[\n  30\n]" in log, log
    found = results(folder)
    doubled = [row["value"] for row in found if row["id"] == "doubled"]
    assert doubled == [[2 * n] for n in range(1, 31)]
    lines = [row["value"][0] for row in found if row["id"] == "said"]  # type: ignore[index]
    assert [line.split()[:4] for line in lines] == [["seen", str(n), "doubled", str(2 * n)] for n in range(1, 31)]
    assert len({line.split()[-1] for line in lines}) == 1  # one runtime process


def test_a_failed_operator_restarts_in_place_and_its_sibling_keeps_its_state(tmp_path: Path) -> None:
    folder = copied(tmp_path)
    flow = folder / "both_forms.yml"
    flow.write_text(flow.read_text().replace('CRASH_AT: "0"', 'CRASH_AT: "5"'))
    said = launch(flow)
    assert "4 of 4 nodes ok" in said, said
    log = next((folder / "out").rglob("pair.log")).read_text()
    assert "operator `double` failed handling input `count`" in log and "ZeroDivisionError: a bug at count 5" in log
    assert "restarting operator `double` of node `pair` in place (restart 1)" in log
    found = results(folder)
    doubled = [row["value"] for row in found if row["id"] == "doubled"]
    assert doubled == [[2 * n] for n in range(1, 31) if n != 5]  # the one event it failed on, and no other
    lines = [row["value"][0] for row in found if row["id"] == "said"]  # type: ignore[index]
    seen = [int(line.split()[1]) for line in lines]
    assert seen == list(range(1, 30))  # describe's own tally went on across its sibling's restart
    assert len({line.split()[-1] for line in lines}) == 1  # in the same process: the runtime was not restarted


def test_an_operator_blocked_in_io_does_not_stop_its_sibling(tmp_path: Path) -> None:
    folder = copied(tmp_path)
    fifo = folder / "release.fifo"
    os.mkfifo(fifo)
    proc = start_car(
        "launch", "blocked.yml", "--name", f"blocked-{os.getpid()}", "--out", str(folder / "out"), cwd=folder
    )
    try:
        deadline = time.monotonic() + DEADLINE_S
        while len([r for r in results(folder) if r["id"] == "doubled"]) < 20:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        assert not [r for r in results(folder) if r["id"] == "released"]  # still blocked, while double went on
        info = car("node", "info", "pair", "-d", f"blocked-{os.getpid()}")
        assert "Operators: blocker: blocker_op.py, double: double_op.py" in info.stdout, info.stderr
        with fifo.open("w") as writer:
            writer.write("go\n")
        _, stderr = proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    found = results(folder)
    assert {"id": "released", "value": ["go"]} in found
    assert [r["value"] for r in found if r["id"] == "doubled"] == [[2 * n] for n in range(1, 401)]
    log = next((folder / "out").rglob("pair.log")).read_text()
    # while blocked, the blocker kept its 10 newest counts (dora's queue_size), the older ones dropped and said
    assert "car: node `pair` dropped in total: input blocker/count: " in log, log
    assert "double/count" not in log, log


HOT_FLOW = """
nodes:
  - id: ticker
    operator:
      python: ticker.py
      inputs: {tick: dora/timer/millis/20}
      outputs: [value]
  - id: shout
    path: shout.py
    inputs: {value: ticker/value}
"""
TICKER = """
import pyarrow as pa
from dora import DoraStatus

VERSION = 1


class Operator:
    def __init__(self):
        self.n = 0

    def on_event(self, event, send_output):
        if event["type"] == "INPUT":
            self.n += 1
            send_output("value", pa.array([VERSION * 100000 + self.n]))
        return DoraStatus.CONTINUE
"""
SHOUT = """
from dora import Node

WORD = "v1"
for event in Node():
    if event["type"] == "INPUT":
        print(WORD, event["value"][0].as_py(), flush=True)
"""


def test_hot_reload_swaps_an_operator_in_place_restarts_a_node_and_keeps_old_code_that_breaks(tmp_path: Path) -> None:
    (tmp_path / "flow.yml").write_text(HOT_FLOW)
    (tmp_path / "ticker.py").write_text(TICKER)
    (tmp_path / "shout.py").write_text(SHOUT)
    proc = start_car("launch", "flow.yml", "--hot-reload", "--name", "hot", "--out", "out", cwd=tmp_path)

    def log(node: str) -> str:
        found = list((tmp_path / "out").rglob(f"{node}.log"))
        return found[0].read_text() if found else ""

    def shouted() -> list[tuple[str, int, int]]:  # (word, version, count)
        rows = [line.split() for line in log("shout").splitlines()]
        return [(w, int(v) // 100000, int(v) % 100000) for w, v in (r for r in rows if len(r) == 2 and r[1].isdigit())]

    try:
        wait_until("the first values", lambda: len(shouted()) >= 5, timeout=DEADLINE_S, poll=0.05, alive=proc)
        (tmp_path / "ticker.py").write_text(TICKER.replace("VERSION = 1", "VERSION = 2"))
        wait_until(
            "the reloaded operator's values",
            lambda: any(v == 2 for _, v, _ in shouted()),
            timeout=DEADLINE_S,
            poll=0.05,
            alive=proc,
        )
        rows = shouted()
        last_v1 = max(n for _, v, n in rows if v == 1)
        assert min(n for _, v, n in rows if v == 2) == last_v1 + 1  # the same count: its state was kept
        (tmp_path / "ticker.py").write_text(TICKER.replace("VERSION = 1", "VERSION = ("))
        wait_until(
            "the broken operator said",
            lambda: "goes on with its old code" in log("ticker"),
            timeout=DEADLINE_S,
            poll=0.05,
            alive=proc,
        )
        assert "SyntaxError" in log("ticker")
        seen = len(shouted())
        wait_until(
            "values after the broken reload",
            lambda: len(shouted()) > seen + 5,
            timeout=DEADLINE_S,
            poll=0.05,
            alive=proc,
        )
        assert {v for _, v, _ in shouted()[seen:]} == {2}  # the old (version 2) code went on
        (tmp_path / "shout.py").write_text(SHOUT.replace('"v1"', '"v2"'))
        wait_until(
            "the restarted node's words",
            lambda: any(w == "v2" for w, _, _ in shouted()),
            timeout=DEADLINE_S,
            poll=0.05,
            alive=proc,
        )
        (tmp_path / "shout.py").write_text(SHOUT.replace('WORD = "v1"', "WORD = ("))
        seen = len(shouted())
        wait_until(
            "words after the broken node file",
            lambda: len(shouted()) > seen + 5,
            timeout=DEADLINE_S,
            poll=0.05,
            alive=proc,
        )
        assert {w for w, _, _ in shouted()[seen:]} == {"v2"}
        stopped = car("stop", "-d", "hot")
        assert stopped.returncode == 0, stopped.stderr
        _, stderr = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "restarting node `shout` (1): its file changed (--hot-reload)" in stderr, stderr
    assert "does not compile" in stderr and "node `shout` goes on with its old code" in stderr, stderr
