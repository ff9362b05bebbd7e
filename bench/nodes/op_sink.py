"""Operator: record each value's send-to-receive latency; write BENCH_OUT when it stops."""

import json
import os
import time

from dora import DoraStatus


class Operator:
    """The benchmark's sink, as an operator."""

    def __init__(self):
        self.latencies = []

    def on_event(self, event, send_output):
        if event["type"] == "INPUT":
            self.latencies.append(time.perf_counter_ns() - event["metadata"]["t"])
        elif event["type"] == "STOP":
            with open(os.environ["BENCH_OUT"], "w") as out:
                json.dump({"latencies_ns": self.latencies, "cpus": sorted(os.sched_getaffinity(0))}, out)
        return DoraStatus.CONTINUE
