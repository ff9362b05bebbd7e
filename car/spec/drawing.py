"""Draw a dataflow as Mermaid text, or as an HTML page that renders it."""

from __future__ import annotations

import html

from car.spec.model import Dataflow, InputSpec, NodeSpec, QueuePolicy, parse_timer


def _daemon_label(inp: InputSpec) -> str:
    """What a timer or log source is called in a drawing."""
    if inp.is_log:
        parts = inp.source.split("/")[2:]  # [LEVEL[, NODE]]
        level = f" ≥ {parts[0]}" if parts else ""
        return f"logs{level} of {parts[1]}" if len(parts) > 1 else f"logs{level}"
    period_ms = parse_timer(inp.source) / 1e6
    return f"timer {period_ms:g} ms" if period_ms < 1000 else f"timer {period_ms / 1000:g} s"


def _edge_label(dataflow: Dataflow, name: str, inp: InputSpec) -> str:
    """An input's edge: its name (and the output's, when they differ), its output's declared type, its queue."""
    if inp.from_daemon:
        return name
    label = name if name == inp.source_output else f"{inp.source_output} → {name}"
    urn = dataflow.node(inp.source_node).output_types.get(inp.source_output)
    return f"{label} [{urn.rsplit('/', 1)[1]}]" if urn else label


def _edges(dataflow: Dataflow) -> list[tuple[NodeSpec, InputSpec, str]]:
    """Every input of every node, with its edge label."""
    return [
        (node, inp, _edge_label(dataflow, name, inp)) for node in dataflow.nodes for name, inp in node.inputs.items()
    ]


def to_mermaid(dataflow: Dataflow) -> str:
    """The graph as a Mermaid flowchart: nodes, timers, and one edge per input."""
    ids = {node.id: f"n{k}" for k, node in enumerate(dataflow.nodes)}
    timers: dict[str, str] = {}
    lines = ["flowchart LR"]
    for node in dataflow.nodes:
        label = node.id if not node.machine else f"{node.id}<br/><small>{node.machine}</small>"
        lines.append(f'  {ids[node.id]}["{label}"]')
    edges = []
    for node, inp, label in _edges(dataflow):
        if inp.from_daemon:
            if inp.source not in timers:
                timers[inp.source] = f"t{len(timers)}"
                lines.append(f'  {timers[inp.source]}(["{_daemon_label(inp)}"])')
            start = timers[inp.source]
        else:
            start = ids[inp.source_node]
        if inp.queue_policy == QueuePolicy.BACKPRESSURE:
            label += " (backpressure)"
        elif inp.queue_size != 10:
            label += f" (queue {inp.queue_size})"
        edges.append(f'  {start} -->|"{label}"| {ids[node.id]}')
    return "\n".join(lines + edges) + "\n"


BOX_H = 36
LAYER_GAP = 90  # horizontal space between layers, for edge labels
ROW_GAP = 40
TOP = 50  # room above the first row for edges that pass over a layer
CHAR_W = 7.5  # px per character of a 13 px sans-serif label, roughly


def _layers(vertices: list[str], edges: list[tuple[str, str, str]]) -> dict[str, int]:
    """A layer for each vertex: the longest path to it from a vertex nothing feeds, ignoring edges that close cycles."""
    feeds: dict[str, list[str]] = {v: [] for v in vertices}
    for start, end, _ in edges:
        feeds[start].append(end)
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    back: set[tuple[str, str]] = set()

    def visit(v: str) -> None:
        state[v] = 1
        for w in feeds[v]:
            if state.get(w) == 1:
                back.add((v, w))
            elif w not in state:
                visit(w)
        state[v] = 2
        order.append(v)

    for v in vertices:
        if v not in state:
            visit(v)
    layer = dict.fromkeys(vertices, 0)
    for v in reversed(order):  # a topological order of the graph without its back edges
        for w in feeds[v]:
            if (v, w) not in back:
                layer[w] = max(layer[w], layer[v] + 1)
    return layer


def to_svg(dataflow: Dataflow) -> str:
    """The graph as an SVG drawing (layered left to right: timers and sources first); needs nothing else."""
    labels: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for node in dataflow.nodes:
        labels[node.id] = node.id if not node.machine else f"{node.id} ({node.machine})"
    for node, inp, label in _edges(dataflow):
        if inp.from_daemon:
            labels.setdefault(inp.source, _daemon_label(inp))
        edges.append((inp.source if inp.from_daemon else inp.source_node, node.id, label))
    vertices = list(labels)
    layer = _layers(vertices, edges)
    width = {v: max(80.0, CHAR_W * len(labels[v]) + 24) for v in vertices}
    columns: dict[int, list[str]] = {}
    for v in vertices:
        columns.setdefault(layer[v], []).append(v)
    column_w = {k: max(width[v] for v in vs) for k, vs in columns.items()}
    x_of: dict[int, float] = {}
    x = 20.0
    for k in sorted(columns):
        x_of[k] = x
        x += column_w[k] + LAYER_GAP + 40
    pos = {v: (x_of[layer[v]], TOP + row * (BOX_H + ROW_GAP)) for vs in columns.values() for row, v in enumerate(vs)}
    total_w = x - LAYER_GAP - 20
    total_h = TOP + max(len(vs) for vs in columns.values()) * (BOX_H + ROW_GAP) + 50
    parts = []
    for start, end, label in edges:
        (x0, y0), (x1, y1) = pos[start], pos[end]
        ax, ay = x0 + width[start], y0 + BOX_H / 2
        bx, by = x1, y1 + BOX_H / 2
        if bx > ax and layer[end] - layer[start] > 1:  # forward past other layers: arc above them
            high = min(y0, y1) - ROW_GAP * 0.9
            path = f"M{ax:.0f},{ay:.0f} C{ax + 60:.0f},{high:.0f} {bx - 60:.0f},{high:.0f} {bx:.0f},{by:.0f}"
            lx, ly = (ax + bx) / 2, high + 12
        elif bx > ax:  # to the next layer
            bend = (bx - ax) / 2
            path = f"M{ax:.0f},{ay:.0f} C{ax + bend:.0f},{ay:.0f} {bx - bend:.0f},{by:.0f} {bx:.0f},{by:.0f}"
            lx, ly = (ax + bx) / 2, (ay + by) / 2 - 6
        else:  # back to an earlier layer: round below
            low = max(y0, y1) + BOX_H + ROW_GAP * 0.8
            path = f"M{ax:.0f},{ay:.0f} C{ax + 60:.0f},{low:.0f} {bx - 60:.0f},{low:.0f} {bx:.0f},{by:.0f}"
            lx, ly = (ax + bx) / 2, low - 4
        parts.append(f'<path d="{path}" class="edge" marker-end="url(#arrow)"/>')
        parts.append(f'<text x="{lx:.0f}" y="{ly:.0f}" class="label">{html.escape(label)}</text>')
    for v in vertices:
        vx, vy = pos[v]
        shape = "timer" if v.startswith("dora/") else "node"
        rx = BOX_H / 2 if shape == "timer" else 6
        parts.append(
            f'<rect x="{vx:.0f}" y="{vy:.0f}" width="{width[v]:.0f}" height="{BOX_H}" rx="{rx:.0f}" class="{shape}"/>'
        )
        cx, cy = vx + width[v] / 2, vy + BOX_H / 2 + 5
        parts.append(f'<text x="{cx:.0f}" y="{cy:.0f}" class="name">{html.escape(labels[v])}</text>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" height="{total_h:.0f}" '
        f'viewBox="0 0 {total_w:.0f} {total_h:.0f}">\n'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>\n'
        "<style>.node{fill:#e8f0fe;stroke:#3367d6} .timer{fill:#fef7e0;stroke:#b06000} "
        ".edge{fill:none;stroke:#555;stroke-width:1.5} text{font:13px sans-serif} "
        ".name{text-anchor:middle} .label{text-anchor:middle;fill:#333;font-size:11px}</style>\n"
        + "\n".join(parts)
        + "\n</svg>\n"
    )


def to_html(dataflow: Dataflow) -> str:
    """A page that shows the graph as inline SVG (no network needed) and its Mermaid source."""
    text = html.escape(to_mermaid(dataflow))
    title = html.escape(dataflow.file.name)
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: sans-serif; margin: 2em; }} details pre {{ background: #f4f4f4; padding: 1em; }}</style>
</head>
<body>
<h1>{title}</h1>
{to_svg(dataflow)}
<details><summary>Mermaid source (for mermaid.live or a Markdown page)</summary><pre>{text}</pre></details>
</body>
</html>
"""
