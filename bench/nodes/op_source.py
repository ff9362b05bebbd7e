"""Operator: on every tick after the warm-up, send BENCH_SIZE bytes stamped with perf_counter_ns (metadata `t`);
after BENCH_COUNT of them (when set) it stops, and so does the run."""

import os
import time

import numpy as np
import pyarrow as pa
from dora import DoraStatus

SIZE = int(os.environ.get("BENCH_SIZE", "64"))
WARMUP_NS = int(float(os.environ.get("BENCH_WARMUP_S", "0.5")) * 1e9)
COUNT = int(os.environ.get("BENCH_COUNT", "0"))  # 0: until the run is stopped


class Operator:
    """The benchmark's source, as an operator."""

    def __init__(self):
        self.payload = pa.array(np.zeros(SIZE, np.uint8))
        self.start = None
        self.sent = 0

    def on_event(self, event, send_output):
        if event["type"] == "INPUT":
            now = time.perf_counter_ns()
            self.start = self.start or now
            if now - self.start >= WARMUP_NS:
                if COUNT and self.sent >= COUNT:
                    return DoraStatus.STOP
                self.sent += 1
                send_output("data", self.payload, {"t": time.perf_counter_ns()})
        return DoraStatus.CONTINUE
