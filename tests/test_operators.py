"""dora's operators run unchanged, as tasks in one runtime process per node: both forms, restarts in place, an
operator blocked in I/O beside one that goes on (real processes, real sockets; car.operators)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, launch, start_car

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
    proc = start_car("launch", "blocked.yml", "--out", str(folder / "out"), cwd=folder)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while len([r for r in results(folder) if r["id"] == "doubled"]) < 20:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        assert not [r for r in results(folder) if r["id"] == "released"]  # still blocked, while double went on
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
    assert len([r for r in found if r["id"] == "doubled"]) == 400
