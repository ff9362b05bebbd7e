"""No dataflow file makes the loader raise anything but a DataflowError: mutations of real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from car.spec import types
from car.spec.loader import check_text
from car.spec.model import DataflowError, parse_timer
from tests.helpers import ROOT, car

FILES = sorted((ROOT / "dataflows").glob("*.yml"))
TEXTS = [f.read_text() for f in FILES]

NASTY = [
    "!foo bar",
    "!!python/object:os.system ls",
    "<<",
    "!!int xyz",
    "!!float nope",
    "!!binary ~~~",
    "!!timestamp 2026-99-99",
    "&a [*a]",
    "*undefined",
    "x" * 5000,
    "a\x00b",
    ".nan",
    ".inf",
    "-.inf",
    "1e-300",
    "1e309",
    "99999999999999999999999999",
    "-1",
    "0",
    "dora/timer/secs/inf",
    "dora/timer/hz/1e-300",
    "dora/timer/millis/0",
    "dora/timer/hz/nan",
    "{source: dora/timer/secs/.inf}",
    "[]",
    "{}",
    "~",
    "'unterminated",
    "{a: [b, {c: d}]}",
    "- - -",
    "ö/ü",
    "true",
    "std/core/v1/Int64[",
    "std/core/v1/Int64[a=]",
    "{reading: std/nope/v9/X}",
    "{image: std/media/v1/Image[encoding=rgb8]}",
    "dora/logs/loud/nobody/extra",
    "dora/logs/warn/",
    "100XB",
    "1e400MB",
    "[{from: a}]",
    "[{from: std/core/v1/Int32, to: std/core/v1/Int64}]",
    "[{id: op, python: op.py}]",
]


INSERTED_KEYS = (
    *("path", "restart_delay", "tick", "queue_size", "env", "args", "<<"),
    *("output_types", "input_types", "type_rules", "min_log_level", "max_log_size"),
    *("send_logs_as", "send_stdout_as", "operators", "operator", "module", "strict_types"),
    *("inputs_optional", "params", "_mod"),
)


def mutate(text: str, data: st.DataObject) -> str:
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        if not lines:
            break
        k = data.draw(st.integers(0, len(lines) - 1))
        line = lines[k]
        how = data.draw(st.sampled_from(["value", "insert", "delete", "indent", "char"]))
        if how == "value" and ":" in line:
            lines[k] = line[: line.index(":") + 1] + " " + data.draw(st.sampled_from(NASTY))
        elif how == "insert":
            key = data.draw(st.sampled_from(INSERTED_KEYS))
            lines.insert(
                k, " " * data.draw(st.sampled_from([0, 2, 4, 6])) + f"{key}: {data.draw(st.sampled_from(NASTY))}"
            )
        elif how == "delete":
            del lines[k]
        elif how == "indent":
            lines[k] = " " * data.draw(st.integers(0, 3)) + line
        elif line:
            at = data.draw(st.integers(0, len(line) - 1))
            lines[k] = (
                line[:at] + data.draw(st.sampled_from([":", "-", "{", "[", "&", "*", "!", "'", "\t"])) + line[at + 1 :]
            )
    return "\n".join(lines) + "\n"


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_mutation_of_a_real_dataflow_makes_the_loader_raise(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(FILES) - 1))
    text = mutate(TEXTS[index], data)
    try:
        check_text(text, "fuzzed.yml", FILES[index])
    except DataflowError as exc:
        assert exc.problems and all(p.location.file == "fuzzed.yml" for p in exc.problems)


MODULE_FLOW = ROOT / "tests" / "fixtures" / "dora_modules" / "dataflow.yml"
MODULE_TEXT = (MODULE_FLOW.parent / "modules" / "transform_module.yml").read_text()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_mutation_of_a_module_file_makes_the_loader_raise(tmp_path_factory: Any, data: st.DataObject) -> None:
    """dora's module example with its module file mutated: problems, located in the module's file or the dataflow's."""
    folder = tmp_path_factory.mktemp("module")
    (folder / "modules").mkdir()
    for name in ("sender.py", "receiver.py", "modules/doubler.py", "modules/filter_even.py"):
        (folder / name).write_text("")
    (folder / "modules" / "transform_module.yml").write_text(mutate(MODULE_TEXT, data))
    flow = folder / "dataflow.yml"
    flow.write_text(MODULE_FLOW.read_text())
    try:
        check_text(flow.read_text(), str(flow), flow)
    except DataflowError as exc:
        assert exc.problems and all(
            p.location.file in (str(flow), str(folder / "modules" / "transform_module.yml")) for p in exc.problems
        )


def test_the_values_that_once_raised_are_located_problems(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yml"
    (tmp_path / "a.py").write_text("")
    flow.write_text(
        "nodes:\n"
        "  - id: a\n"
        f"    path: {'x' * 5000}\n"
        "    restart_delay: .nan\n"
        "    max_restarts: !!int xyz\n"
        "    inputs: {t: dora/timer/secs/inf, u: dora/timer/hz/1e-300}\n"
        "    outputs: [!foo out]\n"
        "  - id: b\n"
        "    path: a.py\n"
        "    restart_delay: .inf\n"
        "    description: <<\n"
        "    name: !!python/object:os.system ls\n"
        "    critical: !!timestamp 2026-99-99x\n"
    )
    result = car("check", str(flow))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for line, text in [
        (3, "cannot be a file name"),
        (4, "must be a finite number, got nan"),
        (5, "cannot read this value"),
        (6, "must be positive and finite"),
        (7, "cannot read this value"),
        (10, "must be a finite number, got inf"),
        (11, "cannot read this value"),
        (12, "cannot read this value"),
        (13, "is not a timestamp"),  # PyYAML's constructor raised AttributeError
    ]:
        assert f"flow.yml:{line}:" in result.stderr and text in result.stderr, (line, text, result.stderr)


@given(st.text(max_size=80))
def test_type_urns_parse_or_say_why_not(text: str) -> None:
    try:
        ref = types.parse(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert types.parse(str(ref)) == ref


def test_timer_periods_outside_a_microsecond_and_a_day_are_refused() -> None:
    for source in ("dora/timer/hz/1e-300", "dora/timer/secs/1e12", "dora/timer/hz/1e7", "dora/timer/secs/nan"):
        try:
            parse_timer(source)
        except ValueError as exc:
            assert source in str(exc)
        else:
            raise AssertionError(f"{source} was accepted")
    assert parse_timer("dora/timer/hz/1000000") == 1000
