"""Benchmark source: on every tick after the warm-up, send BENCH_SIZE bytes stamped with perf_counter_ns; after
BENCH_COUNT of them (when set) it ends, and so does the run: every run measures as many messages, however long its
nodes took to start.

With BENCH_LOANED=1 each frame is first written into an array from `allocate_output`
(as a camera would write its image), so the send itself copies nothing.
"""

import os
import time

import numpy as np

from car import Node

size = int(os.environ["BENCH_SIZE"])
payload = np.zeros(size, np.uint8) if size > 4096 else bytes(size)
warmup_ns = int(float(os.environ.get("BENCH_WARMUP_S", "0.5")) * 1e9)
loaned = os.environ.get("BENCH_LOANED") == "1"
count = int(os.environ.get("BENCH_COUNT", "0"))  # 0: until the run is stopped
node = Node()
start = None
sent = 0
for event in node:
    if event.type == "INPUT":
        now = time.perf_counter_ns()
        start = start or now
        if now - start >= warmup_ns:
            if count and sent >= count:
                break
            sent += 1
            if loaned:
                frame = node.allocate_output("data", size)
                frame[:] = payload  # the frame is made (not timed, as for every other peer)
                node.send_output("data", frame, {"t": time.perf_counter_ns()})
            else:
                node.send_output("data", payload, {"t": time.perf_counter_ns()})
