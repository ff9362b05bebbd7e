"""The recorder node: what its inputs receive, written into an MCAP file on the machine it runs on.

    - id: recorder
      path: -m car.recording.recorder
      args: run.mcap                     # relative to the node's folder; `--compress jpeg` for JPEG frames
      deploy: {machine: car}             # on the car: the run is kept even if the laptop's link drops
      inputs:
        image: {source: car_io/image, queue_size: 30}
        cmd: {source: controller/cmd, queue_size: 100}

One channel per input, named after its source (`node/output`), written as `car record`
writes them (car.recording.sink, car.recording.channels), so `car info`, `car
replay` and Foxglove read either alike. Its inputs queue as any node's do: when it falls
behind, the oldest are dropped and counted, and it says how many at its end. The file is
finished when the run stops or every input has closed. `car start FILE --record FILE.mcap
[--record-machine M]` adds one to the file it starts (`add_recorder`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from car.node.api import Node
from car.recording.sink import McapSink, RecordError, check_output, run_facts
from car.spec.model import Dataflow

PATH = "-m car.recording.recorder"
RECORDER_QUEUE = 100  # messages each input may fall behind before the oldest are dropped (counted)


def add_recorder(text: str, dataflow: Dataflow, path: str, machine: str, topics: list[str]) -> str:
    """The dataflow file `text` (checked: `dataflow`) with a recorder node on `machine` writing `path` there, of
    `topics` (`node/output`; [] for every output): what `car start FILE --record` runs (RecordError for a mistake)."""
    if not path.endswith(".mcap"):
        raise RecordError(f"--record {path}: name the file FILE.mcap (Foxglove and `car info` go by the suffix)")
    machines = dataflow.machines()
    if machine not in machines:
        raise RecordError(
            f"--record-machine {machine or '(none)'}: give one of the file's machines ({', '.join(machines)})"
        )
    outputs = [f"{n.id}/{o}" for n in dataflow.nodes for o in n.outputs]
    for topic in topics:
        if topic not in outputs:
            raise RecordError(f"--topics {topic}: {dataflow.file} has no such output ({', '.join(outputs)})")
    taken = {n.id for n in dataflow.nodes}
    node_id = next(
        name for k in range(1, len(taken) + 2) if (name := "recorder" if k == 1 else f"recorder-{k}") not in taken
    )
    inputs = {t.replace("/", "."): {"source": t, "queue_size": RECORDER_QUEUE} for t in topics or outputs}
    recorder = {"id": node_id, "path": PATH, "args": path, "inputs": inputs, "deploy": {"machine": machine}}
    document = yaml.safe_load(text)
    document["nodes"].append(recorder)
    return yaml.safe_dump(document, sort_keys=False)


def main() -> None:
    """The recorder node."""
    parser = argparse.ArgumentParser(prog="car.recording.recorder")
    parser.add_argument("file", metavar="FILE.mcap")
    parser.add_argument("--compress", choices=["jpeg"], default="")
    args = parser.parse_args()
    with Node() as node:
        path = Path(args.file)
        try:
            check_output(path)
            sink = McapSink(path, args.compress)
        except RecordError as exc:
            print(f"recorder: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        sink.describe(run_facts(node.config.run_name, [], node.config.dataflow), node.config.dataflow)
        try:
            for event in node:
                if event.type == "INPUT":
                    stamp = event.timestamp.wall_ns if event.timestamp is not None else time.time_ns()
                    sink.write(event.source or event.id, event.value, event.metadata, stamp)
        finally:
            recording = sink.close()
        lost = sum(node.drop_counts().values())
        said = f"lost {lost} (the recorder fell behind)" if lost else "none lost"
        print(f"recorded {recording.messages} messages on {len(recording.channels)} channels into {path}; {said}")


if __name__ == "__main__":
    main()
