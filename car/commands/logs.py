"""`car logs NODE [-d NAME] [--follow] [--lines N] [--json]`: a node's log, from a `car launch` run here (running,
or ended: its folder under `--out`), or from whichever machine a coordinator's dataflow runs it on."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from car.commands.common import UserError, coordinator_option, dataflow_option
from car.plan.coordinator_client import ask, control_endpoint
from car.plan.runs import RunError, find_run, list_runs
from car.transport import cluster

FOLLOW_PERIOD_S = 0.3
READ_LIMIT = 1 << 20  # bytes read at a time

LogReader = Callable[[int], cluster.LogChunk]  # offset -> the text from there, where the next read starts, ended


def _file_reader(path: Path, ended: Callable[[], bool]) -> LogReader:
    def read(offset: int) -> cluster.LogChunk:
        with open(path, "rb") as log:
            log.seek(offset)
            data = log.read(READ_LIMIT)
        return cluster.LogChunk(data.decode("utf-8", errors="replace"), offset + len(data), ended())

    return read


def _node_log(folder: Path, run: str, node: str) -> Path:
    path = folder / f"{Path(node).name}.log"
    if not path.exists():
        nodes = ", ".join(sorted(p.stem for p in folder.glob("*.log"))) or "none yet"
        raise RunError(f"run `{run}` has no log of a node `{node}` (nodes with logs: {nodes})")
    return path


def running_log(name: str | None, node: str) -> LogReader | None:
    """How to read a node's log of the `car launch` run `name` running here; None when no such run runs."""
    try:
        run = find_run(name)
    except RunError:
        return None
    path = _node_log(Path(run.out_dir), run.name, node)
    return _file_reader(path, lambda: all(r.run_id != run.run_id for r in list_runs()))


def ended_log(out: Path, name: str | None, node: str) -> LogReader | None:
    """How to read a node's log of an ended `car launch` run in `out/NAME/` (no name: the latest run there that
    has the node); None when there is none."""
    if name:
        folders = [out / name] if (out / name).is_dir() else []
    else:
        runs = [p for p in out.iterdir() if (p / f"{Path(node).name}.log").exists()] if out.is_dir() else []
        folders = sorted(runs, key=lambda p: p.stat().st_mtime)[-1:]
    if not folders:
        return None
    return _file_reader(_node_log(folders[0], folders[0].name, node), lambda: True)


def coordinator_log(address: str | None, name: str | None, node: str) -> LogReader | None:
    """How to read a node's log of a coordinator's dataflow, from the machine it runs on (None: no coordinator)."""
    target, named = control_endpoint(address)
    if not named:
        return None
    return lambda offset: ask(target, cluster.ReadLogs(name or "", node, offset), cluster.LogChunk)


def logs_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car logs`."""
    parser.add_argument("node", help="the node")
    dataflow_option(parser)
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing what it writes until its run ends")
    parser.add_argument("--lines", "-n", type=int, default=0, help="start with only the last N lines")
    parser.add_argument(
        "--out", default="out", metavar="DIR", help="where ended `car launch` runs' logs are (default out)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line: {node, line}")
    coordinator_option(parser)


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a node's log: of a `car launch` run here (running, else ended), else of the coordinator's dataflow."""
    read = (
        running_log(args.dataflow, args.node)
        or ended_log(Path(args.out), args.dataflow, args.node)
        or coordinator_log(args.coordinator_addr, args.dataflow, args.node)
    )
    if read is None:
        named = f"`{args.dataflow}` " if args.dataflow else ""
        raise UserError(
            f"no run {named}with a node `{args.node}`: none runs here, none ended in {args.out}/, "
            "and no coordinator runs here (--coordinator-addr names one elsewhere)"
        )

    def show(line: str) -> None:
        text = json.dumps({"node": args.node, "line": line}) if args.json else f"{args.node} | {line}"
        print(text, flush=True)

    offset, text, ended = 0, "", False
    while True:  # what is there now
        chunk = read(offset)
        offset, text, ended = chunk.next_offset, text + chunk.text, chunk.ended
        if not chunk.text:
            break
    lines = text.splitlines()
    for line in lines[-args.lines :] if args.lines > 0 else lines:
        show(line)
    try:
        while args.follow and not ended:
            time.sleep(FOLLOW_PERIOD_S)
            chunk = read(offset)
            offset, ended = chunk.next_offset, chunk.ended
            for line in chunk.text.splitlines():
                show(line)
    except KeyboardInterrupt:
        return 130
    return 0
