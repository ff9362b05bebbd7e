"""Operator (or, run as a program, a node): fails once on its BENCH_FAIL_AT-th event, and says when it failed and
when its next instance handled its first event (perf_counter_ns, one clock for every process) in BENCH_OUT."""

import json
import os
import time
from pathlib import Path

from dora import DoraStatus

FAIL_AT = int(os.environ.get("BENCH_FAIL_AT", "200"))
OUT = Path(os.environ["BENCH_OUT"])


class Operator:
    """Counts its events; the first instance raises at FAIL_AT, the next records its first event."""

    def __init__(self):
        self.count = 0

    def on_event(self, event, send_output):
        if event["type"] != "INPUT":
            return DoraStatus.CONTINUE
        self.count += 1
        if not OUT.exists():
            if self.count >= FAIL_AT:
                OUT.write_text(json.dumps({"failed_ns": time.perf_counter_ns()}))
                raise RuntimeError("the benchmark's failure")
        elif self.count == 1:
            found = json.loads(OUT.read_text())
            if "back_ns" not in found:
                found["back_ns"] = time.perf_counter_ns()
                OUT.write_text(json.dumps(found))
        return DoraStatus.CONTINUE


if __name__ == "__main__":  # the same code as a node: the daemon restarts the process
    from dora import Node

    operator = Operator()
    for event in Node():
        operator.on_event(event, None)
