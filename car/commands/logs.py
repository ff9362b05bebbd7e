"""`car logs DATAFLOW NODE [--follow] [--lines N]`: a node's log, from a `car launch` run here or from
whichever machine a coordinator's dataflow runs it on."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from car.commands.several import coordinator_option
from car.plan.coordinator_client import ask, control_endpoint
from car.plan.runs import RunError, find_run, list_runs
from car.transport import cluster

FOLLOW_PERIOD_S = 0.3
READ_LIMIT = 1 << 20  # bytes read at a time

LogReader = Callable[[int], cluster.LogChunk]  # offset -> the text from there, where the next read starts, ended


def local_log(name: str, node: str) -> LogReader | None:
    """How to read a node's log of the `car launch` run `name` here; None when no such run runs here."""
    try:
        run = find_run(name)
    except RunError:
        return None
    folder = Path(run.out_dir)
    path = folder / f"{Path(node).name}.log"
    if not path.exists():
        nodes = ", ".join(sorted(p.stem for p in folder.glob("*.log"))) or "none yet"
        raise RunError(f"run `{run.name}` has no log of a node `{node}` (nodes with logs: {nodes})")

    def read(offset: int) -> cluster.LogChunk:
        with open(path, "rb") as log:
            log.seek(offset)
            data = log.read(READ_LIMIT)
        ended = all(r.run_id != run.run_id for r in list_runs())
        return cluster.LogChunk(data.decode("utf-8", errors="replace"), offset + len(data), ended)

    return read


def coordinator_log(address: str | None, name: str, node: str) -> LogReader:
    """How to read a node's log of a coordinator's dataflow, from the machine it runs on."""
    target, _ = control_endpoint(address)
    return lambda offset: ask(target, cluster.ReadLogs(name, node, offset), cluster.LogChunk)


def logs_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car logs`."""
    parser.add_argument("name", help="the dataflow's name or id")
    parser.add_argument("node", help="the node")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing what it writes until its run ends")
    parser.add_argument("--lines", "-n", type=int, default=0, help="start with only the last N lines")
    coordinator_option(parser)


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a node's log: of a `car launch` run here, else of the coordinator's dataflow of that name."""
    read = local_log(args.name, args.node) or coordinator_log(args.coordinator_addr, args.name, args.node)
    offset, text, ended = 0, "", False
    while True:  # what is there now
        chunk = read(offset)
        offset, text, ended = chunk.next_offset, text + chunk.text, chunk.ended
        if not chunk.text:
            break
    lines = text.splitlines()
    for line in lines[-args.lines :] if args.lines > 0 else lines:
        print(f"{args.node} | {line}", flush=True)
    try:
        while args.follow and not ended:
            time.sleep(FOLLOW_PERIOD_S)
            chunk = read(offset)
            offset, ended = chunk.next_offset, chunk.ended
            for line in chunk.text.splitlines():
                print(f"{args.node} | {line}", flush=True)
    except KeyboardInterrupt:
        return 130
    return 0
