"""MkDocs hooks: the reference pages made from the code at each build (so they cannot drift from it).

- `reference/cli.md`: every `car` command's and subcommand's `--help` (car.commands.reference).
- `reference/car-description.md`: the car description file's sections and keys, with their
  defaults and comments, read from `hal/description.py`'s dataclasses.
- `reference/board-protocol.md`: the board protocol's messages, payload layouts, flags and
  error codes, read from `firmware/protocol.py`.
- `reference/run-report.md`: the fields of `car launch --report`, from `nodes.car_io.sim.RunReport`.
- `explanation/graphs.md`: the shipped dataflows drawn as `car graph` draws them (Mermaid).
- `explanation/target-kernel.md`'s table of gaps and their effects, from `car.doctor.outcome.KNOWN_EFFECTS` and the
  shipped Starry profile.
- `images/latency.svg`, `images/operators.svg`: the latency plots of the performance page, drawn from the
  measured run kept in `docs/data/compare.json` (`bench/compare.py --json`).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import re
import textwrap
from pathlib import Path
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
        ("images/latency.svg", latency_svg(_measured())),
        ("images/operators.svg", operators_svg(_measured())),
    ):
        files.append(File.generated(config, path, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Fill the markers of hand-written pages with what the code holds."""
    if "<!-- known-effects -->" in markdown:
        markdown = markdown.replace("<!-- known-effects -->", known_effects())
    if "<!-- profile-syscalls -->" in markdown:
        markdown = markdown.replace("<!-- profile-syscalls -->", str(len(_starry_profile()["syscalls"])))
    return markdown


def _starry_profile() -> dict[str, Any]:
    """The shipped Starry OS profile (`car doctor`'s default target)."""
    path = Path(__file__).resolve().parent.parent / "car" / "doctor" / "profiles" / "starryos-2e075ac.json"
    profile: dict[str, Any] = json.loads(path.read_text())
    return profile


def known_effects() -> str:
    """What each of Starry's gaps does to this stack, as `car doctor` knows it."""
    from car.doctor.outcome import KNOWN_EFFECTS

    rows = [
        "| the call Starry lacks (or the argument) | its effect here, and what the car side does |",
        "| --- | --- |",
    ]
    rows += [f"| `{gap}` | {effect} |" for gap, effect in KNOWN_EFFECTS.items()]
    return "\n".join(rows)


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


# -- the latency plots ------------------------------------------------------------------------------------------

DATA = Path(__file__).parent / "data" / "compare.json"  # a measured run of bench/compare.py --json
PEER_COLOURS = {"car": "#1565c0", "dora": "#ef6c00", "zmq": "#2e7d32", "iceoryx2": "#6a1b9a"}
PEER_NAMES = {"car": "car", "dora": "dora", "zmq": "bare pyzmq", "iceoryx2": "iceoryx2"}
PLOTTED_CASES = {
    "small_1hop": "64 B at 200 Hz, 1 hop",
    "small_2hop": "64 B at 200 Hz, 2 hops",
    "frame_1hop": "640x480x3 frames at 30 Hz, 1 hop",
    "frame_2hop": "the same frames, 2 hops",
    "frame_1hop_loaned": "frames written into a lent buffer, 1 hop",
}
OPERATOR_CASES = {
    "operator_hop": "64 B at 200 Hz, 1 hop: operators of one node",
    "operator_process_hop": "the same code as two nodes",
    "chain3_operators": "3 stages (2 hops): operators of one node",
    "chain3_nodes": "the same 3 stages as nodes",
}


@functools.cache
def _measured() -> dict[str, Any]:
    """The measured run the performance page draws (`docs/data/compare.json`)."""
    report: dict[str, Any] = json.loads(DATA.read_text())
    return report


def latency_svg(report: dict[str, Any]) -> str:
    """Each case's p50 latency per peer as a bar, its p99 as a whisker (µs)."""
    rows = []
    missing = sorted(set(PLOTTED_CASES) - set(report["cases"]))
    if missing:
        raise ValueError(f"{DATA}: no {', '.join(missing)} in it: keep a whole run of `bench/compare.py --json`")
    for case, label in PLOTTED_CASES.items():
        peers = report["cases"][case]
        rows.append((label, [(peer, peers[peer]) for peer in PEER_COLOURS if peer in peers]))
    pinned = "pinned alike" if report.get("pinned") else "placed by the kernel"
    title = (
        f"Latency, µs: p50 bars, p99 whiskers ({report['machine']['date']}, {report['machine']['cpus']} CPUs, {pinned})"
    )
    return _bars_svg(title, rows)


def operators_svg(report: dict[str, Any]) -> str:
    """The operators' hops against the same code as nodes (car only)."""
    cases = report.get("operators", {}).get("cases")
    if not cases:
        raise ValueError(
            f"{DATA}: no operator cases in it: keep a run of `bench/compare.py --json` without --no-operators"
        )
    rows = [(label, [("car", cases[case])]) for case, label in OPERATOR_CASES.items() if case in cases]
    return _bars_svg(f"Operators against nodes, µs: p50 bars, p99 whiskers ({report['machine']['date']})", rows)


def _bars_svg(title: str, rows: list[tuple[str, list[tuple[str, dict[str, Any]]]]]) -> str:
    """A horizontal bar chart: a group of bars per row (one per peer), a legend of the peers present."""
    label_w, plot_w, bar_h, gap, top = 300, 420, 14, 12, 56
    medians = [float(found["p50_us"]) for _, bars in rows for _, found in bars]
    tails = [float(found["p99_us"]) for _, bars in rows for _, found in bars]
    scale_max = min(max(tails, default=1.0), 2.5 * max(medians, default=1.0))  # a rare stall does not squash the rest
    step = next((s for s in (10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000) if scale_max / s <= 6), 10000)
    scale_max = step * (int(scale_max // step) + 1)

    def x(value: float) -> float:
        return label_w + plot_w * value / scale_max

    height = top + sum(len(bars) * bar_h + gap for _, bars in rows) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 150}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="8" y="18" font-size="13" font-weight="bold">{title}</text>',
    ]
    present = [peer for peer in PEER_COLOURS if any(peer == p for _, bars in rows for p, _ in bars)]
    for k, peer in enumerate(present):
        out.append(f'<rect x="{8 + 110 * k}" y="28" width="12" height="12" fill="{PEER_COLOURS[peer]}"/>')
        out.append(f'<text x="{24 + 110 * k}" y="38">{PEER_NAMES[peer]}</text>')
    for tick in range(0, int(scale_max) + 1, step):
        out.append(f'<line x1="{x(tick):.1f}" y1="{top - 6}" x2="{x(tick):.1f}" y2="{height - 26}" stroke="#ddd"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{height - 12}" text-anchor="middle" fill="#555">{tick}</text>')
    y = top
    for label, bars in rows:
        out.append(f'<text x="{label_w - 8}" y="{y + len(bars) * bar_h / 2 + 4:.1f}" text-anchor="end">{label}</text>')
        for peer, found in bars:
            p50, p99 = float(found["p50_us"]), float(found["p99_us"])
            middle = y + bar_h / 2
            out.append(
                f'<rect x="{label_w}" y="{y + 1}" width="{x(p50) - label_w:.1f}" height="{bar_h - 2}" '
                f'fill="{PEER_COLOURS[peer]}"><title>{PEER_NAMES[peer]}: p50 {p50:.0f} µs, p99 {p99:.0f} µs</title></rect>'
            )
            end = x(min(p99, scale_max))
            out.append(f'<line x1="{x(p50):.1f}" y1="{middle}" x2="{end:.1f}" y2="{middle}" stroke="#333"/>')
            out.append(f'<line x1="{end:.1f}" y1="{y + 3}" x2="{end:.1f}" y2="{y + bar_h - 3}" stroke="#333"/>')
            said = f"{p50:.0f}" if p99 <= scale_max else f"{p50:.0f} (p99 {p99:,.0f})"
            out.append(f'<text x="{end + 4:.1f}" y="{middle + 4}" fill="#333">{said}</text>')
            y += bar_h
        y += gap
    out.append("</svg>")
    return "\n".join(out) + "\n"
