"""dora benchmark source: on every tick after the warm-up, send BENCH_SIZE bytes stamped with perf_counter_ns.

With BENCH_ARROW=struct it sends a 100-element struct array instead. `car` runs this very
file too (through its dora API) for the Arrow cases of compare.py.

After BENCH_COUNT messages (when set) it ends, and so does the run: every run measures as many
messages, however long its nodes took to start.

With BENCH_LOANED=1 each frame is written into a buffer from dora's zero-copy
`send_output_raw`; the stamp then goes into the frame's first 8 bytes, written last
(metadata is fixed when the buffer is allocated, before the frame is made).
"""

import os
import time

import numpy as np
import pinning
import pyarrow as pa
from dora import Node

size = int(os.environ["BENCH_SIZE"])
arrow = os.environ.get("BENCH_ARROW", "uint8")  # or "struct": a 100-element struct array (BENCH_SIZE unused)
if arrow == "struct":
    payload = pa.array([{"x": float(i), "y": i, "label": f"object {i}"} for i in range(100)])
else:
    payload = pa.array(np.zeros(size, np.uint8))
frame = np.zeros(size, np.uint8)
loaned = os.environ.get("BENCH_LOANED") == "1"
warmup_ns = int(float(os.environ.get("BENCH_WARMUP_S", "0.5")) * 1e9)
count = int(os.environ.get("BENCH_COUNT", "0"))  # 0: until the run is stopped
pinning.apply()
node = Node()
start = None
sent = 0
for event in node:
    if event["type"] == "INPUT":
        now = time.perf_counter_ns()
        start = start or now
        if now - start >= warmup_ns:
            if count and sent >= count:
                break
            sent += 1
            if loaned:
                sample = node.send_output_raw("data", size)
                buffer = sample.as_memoryview()
                buffer[:] = frame  # the frame is made (not timed, as for every other peer)
                buffer[:8] = time.perf_counter_ns().to_bytes(8, "little")
                buffer.release()
                sample.send()
            else:
                node.send_output("data", payload, {"t": time.perf_counter_ns()})
