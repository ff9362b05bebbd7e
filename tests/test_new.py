"""`car new`: mistakes refused, and nothing written. (A project that launches at once, whose tests pass, and a node
added to it: the first-node tutorial, run as written by tests/test_tutorials.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import car

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("new", "taken"), "taken exists and is not empty"),
        (("new", "node", "2fast", "--dir", "taken"), "node name `2fast`: use letters, digits and `_`"),
        (("new", "node", "talker", "--dir", "taken"), "a node `talker` is already there"),
        (("new", "node", "x", "--dir", "nowhere"), "no dataflow.yml in"),
        (("new", "a", "b"), "give one project folder, or `car new node NAME`"),
    ],
)
def test_new_refuses_what_cannot_be_made_and_writes_nothing(tmp_path: Path, args: tuple[str, ...], said: str) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "dataflow.yml").write_text("nodes:\n  - id: talker\n    path: t.py\n")
    before = sorted(p for p in tmp_path.rglob("*"))
    result = car(*args, cwd=tmp_path)
    assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr
    assert sorted(p for p in tmp_path.rglob("*")) == before
