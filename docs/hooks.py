"""MkDocs hooks: the reference pages made from the code at each build (so they cannot drift from it).

- `reference/cli.md`: every `car` command's and subcommand's `--help` (car.commands.reference).
- `reference/car-description.md`: the car description file's sections and keys, with their
  defaults and comments, read from `hal/description.py`'s dataclasses.
- `reference/board-protocol.md`: the board protocol's messages, payload layouts, flags and
  error codes, read from `firmware/protocol.py`.
- `reference/run-report.md`: the fields of `car launch --report`, from `nodes.car_io.sim.RunReport`.
- `explanation/graphs.md`: the shipped dataflows drawn as `car graph` draws them (Mermaid).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
from typing import Any

from mkdocs.structure.files import File, Files

from car.commands.reference import cli_reference


def on_files(files: Files, config: Any) -> Files:
    """Add the generated pages."""
    for path, content in (
        ("reference/cli.md", cli_reference()),
        ("reference/car-description.md", car_description()),
        ("reference/board-protocol.md", board_protocol()),
        ("reference/run-report.md", run_report()),
        ("explanation/graphs.md", graphs()),
    ):
        files.append(File.generated(config, path, content=content))
    return files


def _comments(source: str) -> dict[str, str]:
    """`NAME: ... = ...  # comment` or `NAME = ...  # comment` lines of a source: NAME -> comment."""
    found = {}
    for line in source.splitlines():
        match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=#]*)?=[^#]*#\s*(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def car_description() -> str:
    """The car description file's reference: one table per section, from hal.description's dataclasses."""
    from hal import description

    parts = [
        "# The car description file\n",
        "Made from `hal/description.py` at each build. " + textwrap.dedent(description.__doc__ or "").strip() + "\n",
    ]
    top = description.CarDescription
    for section in dataclasses.fields(top):
        params = section.default_factory()  # type: ignore[misc]
        cls = type(params)
        comments = _comments(inspect.getsource(cls))
        parts.append(f"## `{section.name}`\n\n{inspect.getdoc(cls) or ''}\n")
        parts.append("| key | default | meaning |\n| --- | --- | --- |")
        for item in dataclasses.fields(cls):
            value = getattr(params, item.name)
            parts.append(f"| `{item.name}` | `{value!r}` | {comments.get(item.name, '')} |")
        parts.append("")
    return "\n".join(parts)


def board_protocol() -> str:
    """The board protocol's reference, from firmware/protocol.py: messages with their payload layouts, flags, errors."""
    from firmware import protocol

    source = inspect.getsource(protocol)
    comments = _comments(source)
    tree = ast.parse(source)
    order = [
        t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)
    ]
    layouts: dict[int, str] = getattr(protocol, "LAYOUTS", {})
    parts = [
        "# The board protocol\n",
        f"Made from `firmware/protocol.py` at each build (protocol version {protocol.PROTOCOL_VERSION}). "
        + textwrap.dedent(protocol.__doc__ or "").strip()
        + "\n",
        "## Messages\n",
        "Payloads are `struct` formats (little endian); `host -> board` types are below 0x80.\n",
        "| message | type | direction | payload | meaning |\n| --- | --- | --- | --- | --- |",
    ]
    for name in order:
        value = getattr(protocol, name)
        if not isinstance(value, int) or name.startswith(("ERR_", "FLAG_", "MAX_", "PROTOCOL", "LINE_", "NO_")):
            continue
        if value not in layouts and name not in ("LOG",):
            continue
        direction = "host -> board" if value < 0x80 else "board -> host"
        layout = layouts.get(value, "utf-8 text") or "(none)"
        parts.append(f"| `{name}` | `0x{value:02x}` | {direction} | `{layout}` | {comments.get(name, '')} |")
    for prefix, title in (("FLAG_", "Telemetry flags"), ("ERR_", "NACK error codes")):
        parts.append(f"\n## {title}\n\n| name | value | meaning |\n| --- | --- | --- |")
        for name in (n for n in order if n.startswith(prefix)):
            parts.append(f"| `{name}` | `{getattr(protocol, name)}` | {comments.get(name, '')} |")
    return "\n".join(parts) + "\n"


def _record_table(cls: type) -> list[str]:
    """A dataclass's fields as a table: name, type, the comment beside it."""
    comments = _comments(inspect.getsource(cls))
    rows = ["| field | type | meaning |", "| --- | --- | --- |"]
    for item in dataclasses.fields(cls):
        kind = str(item.type).replace("|", "or")
        rows.append(f"| `{item.name}` | `{kind}` | {comments.get(item.name, '')} |")
    return rows


def run_report() -> str:
    """`car launch --report FILE.json`'s fields, from the record that writes them."""
    from nodes.car_io.sim import RunReport, StopRecord

    parts = [
        "# The run report\n",
        f"Made from `nodes/car_io/sim.py` at each build. {inspect.getdoc(RunReport)}\n",
        *_record_table(RunReport),
        "\n## Each safety stop\n",
        f"{inspect.getdoc(StopRecord)}\n",
        *_record_table(StopRecord),
    ]
    return "\n".join(parts) + "\n"


def graphs() -> str:
    """The shipped dataflows, drawn as `car graph FILE` draws them."""
    from pathlib import Path

    from car.spec.drawing import to_mermaid
    from car.spec.loader import load_dataflow

    root = Path(__file__).resolve().parent.parent
    parts = [
        "# The shipped graphs\n",
        "Each dataflow in `dataflows/`, drawn at each build of this site as `car graph FILE` draws it (`car graph "
        "FILE --html OUT.html` writes a page of its own): nodes, timers, and each input with its queue.\n",
    ]
    for path in sorted((root / "dataflows").glob("*.yml")):
        dataflow = load_dataflow(path)
        said = []
        for line in path.read_text().splitlines():  # the file's first comment paragraph says what it is
            if not line.startswith("#") or line.strip() == "#":
                break
            said.append(line.lstrip("#").strip())
        first = " ".join(said)
        parts.append(f"## `dataflows/{path.name}`\n\n{first}\n\n```mermaid\n{to_mermaid(dataflow).rstrip()}\n```\n")
    return "\n".join(parts)
