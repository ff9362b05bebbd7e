"""Draw a dataflow as Mermaid text, or as an HTML page that renders it."""

from __future__ import annotations

import html

from car.spec import Dataflow, parse_timer


def _timer_label(source: str) -> str:
    period_ms = parse_timer(source) / 1e6
    return f"timer {period_ms:g} ms" if period_ms < 1000 else f"timer {period_ms / 1000:g} s"


def to_mermaid(dataflow: Dataflow) -> str:
    """The graph as a Mermaid flowchart: nodes, timers, and one edge per input."""
    ids = {node.id: f"n{k}" for k, node in enumerate(dataflow.nodes)}
    timers: dict[str, str] = {}
    lines = ["flowchart LR"]
    for node in dataflow.nodes:
        label = node.id if not node.machine else f"{node.id}<br/><small>{node.machine}</small>"
        lines.append(f'  {ids[node.id]}["{label}"]')
    edges = []
    for node in dataflow.nodes:
        for name, inp in node.inputs.items():
            if inp.is_timer:
                if inp.source not in timers:
                    timers[inp.source] = f"t{len(timers)}"
                    lines.append(f'  {timers[inp.source]}(["{_timer_label(inp.source)}"])')
                start = timers[inp.source]
                label = name
            else:
                start = ids[inp.source_node]
                label = name if name == inp.source_output else f"{inp.source_output} → {name}"
            if inp.queue_policy == "backpressure":
                label += " (backpressure)"
            elif inp.queue_size != 10:
                label += f" (queue {inp.queue_size})"
            edges.append(f'  {start} -->|"{label}"| {ids[node.id]}')
    return "\n".join(lines + edges) + "\n"


def to_html(dataflow: Dataflow) -> str:
    """A page that renders the graph with Mermaid (loaded from its CDN) and shows the source."""
    text = html.escape(to_mermaid(dataflow))
    title = html.escape(dataflow.file.name)
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: sans-serif; margin: 2em; }} details pre {{ background: #f4f4f4; padding: 1em; }}</style>
</head>
<body>
<h1>{title}</h1>
<pre class="mermaid">
{text}</pre>
<details><summary>Mermaid source</summary><pre>{text}</pre></details>
<script type="module">
import mermaid from "https://cdn.jsdelivr.net/npm/mermaid@11/dist/mermaid.esm.min.mjs";
mermaid.initialize({{ startOnLoad: true }});
</script>
</body>
</html>
"""
