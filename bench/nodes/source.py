"""Benchmark source: on every tick, send BENCH_SIZE bytes stamped with perf_counter_ns."""

import os
import time

import numpy as np

from car import Node

size = int(os.environ["BENCH_SIZE"])
payload = np.zeros(size, np.uint8) if size > 4096 else bytes(size)
node = Node()
for event in node:
    if event.type == "INPUT":
        node.send_output("data", payload, {"t": time.perf_counter_ns()})
