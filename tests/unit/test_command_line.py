"""The `car` command's table and parsing, in-process: every row runs, mistakes get the closest names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from car.commands import cli
from car.commands.cli import COMMANDS, Command, command_parser, listed, main, suggest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize("row", [c for c in COMMANDS if c.own_main is None], ids=lambda c: c.name)
def test_every_row_names_functions_that_exist_and_its_parser_builds(row: Command) -> None:
    parser = command_parser(row)
    assert callable(row.function(row.handler))
    assert parser.prog == f"car {row.name}"


def test_every_command_that_prints_data_takes_json() -> None:
    prints_data = ["check", "list", "stop", "machines", "top", "logs"]
    for name in prints_data:
        row = next(c for c in COMMANDS if c.name == name)
        options = {s for action in command_parser(row)._actions for s in action.option_strings}
        assert "--json" in options, name


def test_a_group_and_its_members_are_listed_once() -> None:
    def row(name: str) -> Command:
        return Command(name=name, help="")

    table = [row("board"), row("board-info"), row("board-shell"), row("flash"), row("run-node")]
    assert [c.name for c in listed(table)] == ["board", "flash", "run-node"]


def test_close_names_are_suggested_and_far_ones_are_not() -> None:
    assert suggest("lunch", [c.name for c in COMMANDS]) == " (did you mean launch?)"
    assert suggest("--view-prot", ["--view", "--view-port", "--out"]).startswith(" (did you mean --view-port")
    assert suggest("xyzzy", [c.name for c in COMMANDS]) == ""


def test_an_unknown_command_is_a_usage_error_naming_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lunch", "flow.yml"]) == 2
    assert "no command `lunch` (did you mean launch?)" in capsys.readouterr().err


def test_an_unknown_option_is_a_usage_error_naming_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", "flow.yml", "--jsn"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "usage: car check" in err and "unrecognized arguments: --jsn (did you mean --json?)" in err


def test_version_and_help_name_the_commands_without_running_any(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("car ")
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "launch" in out and "board-info" not in out and "added by an installed package" not in out


def test_bench_scripts_import_each_other_without_a_circle() -> None:
    """bench/ is scripts, not a package the import contracts see: its sibling imports are checked here."""
    folder = ROOT / "bench"
    scripts = {p.stem: p for p in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in scripts.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
        graph[name] = imported & set(scripts) - {name}

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph[path[-1]]):
            if nxt == start:
                return [*path, nxt]
            if nxt not in path:
                found = cycle_from(start, [*path, nxt])
                if found:
                    return found
        return None

    cycles = [c for c in (cycle_from(name, [name]) for name in graph) if c]
    assert not cycles, f"bench scripts import each other in a circle: {' -> '.join(cycles[0])}"


def test_the_table_is_the_one_place_commands_are_named() -> None:
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))
    assert isinstance(cli.COMMANDS[0], Command) and not hasattr(cli, "cmd_launch")  # handlers live elsewhere
