"""`car launch --hot-reload`: which files are watched, what a change asks for (car.daemon.reloads)."""

from __future__ import annotations

from pathlib import Path

from car.daemon.reloads import FileWatch, Reload, compile_error
from car.spec.loader import load_dataflow


def test_changed_files_are_found_once_each_and_say_what_they_ask_for(tmp_path: Path) -> None:
    for name in ("node.py", "op_a.py", "op_b.py"):
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / "flow.yml").write_text(
        "nodes:\n"
        "  - {id: plain, path: node.py, outputs: [o]}\n"
        "  - id: ops\n"
        "    operators:\n"
        "      - {id: a, python: op_a.py, inputs: {o: plain/o}}\n"
        "      - {id: b, python: op_b.py, inputs: {o: plain/o}}\n"
        "  - {id: program, path: echo}\n"
    )
    watch = FileWatch(load_dataflow(tmp_path / "flow.yml"), {"plain", "ops", "program"})
    assert [(w.node, w.operator) for w in watch.watched] == [("plain", ""), ("ops", "a"), ("ops", "b")]
    assert watch.changed() == []
    (tmp_path / "op_b.py").write_text("x = 22\n")
    (tmp_path / "node.py").write_text("x = 3\n")
    changed = watch.changed()
    assert [(w.node, w.operator, w.reload) for w in changed] == [
        ("plain", "", Reload.NODE),
        ("ops", "b", Reload.OPERATOR),
    ]
    assert watch.changed() == []  # each change once
    (tmp_path / "op_a.py").unlink()  # an editor saving by removing first: nothing until the file is back
    assert watch.changed() == []
    (tmp_path / "op_a.py").write_text("x = 4\n")
    assert [w.operator for w in watch.changed()] == ["a"]


def test_only_the_nodes_of_this_machine_are_watched(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    (tmp_path / "flow.yml").write_text("nodes:\n  - {id: a, path: a.py}\n  - {id: b, path: a.py}\n")
    watch = FileWatch(load_dataflow(tmp_path / "flow.yml"), {"b"})
    assert [w.node for w in watch.watched] == ["b"]


def test_a_file_that_does_not_compile_says_where(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("import nothing_such  # imports are not run: only compiled\n")
    bad.write_text("x = 1\ny = (\n")
    assert compile_error(good) == ""
    assert compile_error(bad).startswith(f"{bad}:2: '(' was never closed")
    assert "No such file" in compile_error(tmp_path / "gone.py")
