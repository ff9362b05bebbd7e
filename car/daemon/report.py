"""What a run tells the person who started it: the status line while it runs, the summary at its end."""

from __future__ import annotations

from pathlib import Path

from car.daemon.processes import NodeState
from car.daemon.timers import Timers
from car.transport.states import NodeStatus


def status_line(nodes: list[NodeState]) -> str:
    """One line: each running node's message rate (and superseded messages), then what nodes say they do."""
    parts = []
    for n in nodes:
        if n.state == NodeStatus.RUNNING and n.usage.at:
            parts.append(
                f"{n.spec.id} {n.usage.rate:.0f}/s" + (f" ({n.superseded} superseded)" if n.superseded else "")
            )
    rates = "  ".join(parts)
    said = "  |  ".join(n.status for n in nodes if n.status and n.state == NodeStatus.RUNNING)
    return f"{rates}  |  {said}" if said else rates


def summary_lines(name: str, nodes: list[NodeState], timers: Timers, elapsed: float, out_dir: Path) -> list[str]:
    """Lines describing how the run ended: failures, drops, superseded messages, traffic, timers, logs."""
    failed = [n for n in nodes if n.state == NodeStatus.FAILED]
    lines = [f"run `{name}` ended after {elapsed:.1f} s: {len(nodes) - len(failed)} of {len(nodes)} nodes ok"]
    lines += [f"  node `{n.spec.id}` failed: {n.failure}" for n in failed]
    for node in nodes:
        for where, count in node.drops.items():
            lines.append(f"  node `{node.spec.id}` dropped {count} message(s): {where}")
    superseded = ", ".join(f"{n.spec.id} {n.superseded}" for n in nodes if n.superseded)
    if superseded:
        lines.append(f"  superseded in queue_size 1 inputs (kept the latest, by design): {superseded}")
    traffic = ", ".join(f"{n.spec.id} {n.sent} sent / {n.received} received" for n in nodes if n.sent or n.received)
    if traffic:
        lines.append(f"  messages: {traffic}")
    for node_id, count in timers.undelivered.items():
        lines.append(f"  node `{node_id}` missed {count} timer tick(s): its queue was full")
    if timers.skipped:
        lines.append(f"  timers skipped {timers.skipped} tick(s): the machine was too busy")
    lines.append(f"  logs: {out_dir}/")
    return lines
