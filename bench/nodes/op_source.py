"""Operator: on every tick after the warm-up, send BENCH_SIZE bytes stamped with perf_counter_ns (metadata `t`)."""

import os
import time

import numpy as np
import pyarrow as pa
from dora import DoraStatus

SIZE = int(os.environ.get("BENCH_SIZE", "64"))
WARMUP_NS = int(float(os.environ.get("BENCH_WARMUP_S", "0.5")) * 1e9)


class Operator:
    """The benchmark's source, as an operator."""

    def __init__(self):
        self.payload = pa.array(np.zeros(SIZE, np.uint8))
        self.start = None

    def on_event(self, event, send_output):
        if event["type"] == "INPUT":
            now = time.perf_counter_ns()
            self.start = self.start or now
            if now - self.start >= WARMUP_NS:
                send_output("data", self.payload, {"t": time.perf_counter_ns()})
        return DoraStatus.CONTINUE
