"""Bare pyzmq PUSH/PULL over ipc://, the baseline `car` is compared with.

Roles (one process each):
  sender   ENDPOINT SIZE HZ SECONDS    send SIZE bytes at HZ, perf_counter_ns in the first 8
  relay    IN_ENDPOINT OUT_ENDPOINT    forward until the end marker (an empty message)
  receiver ENDPOINT OUT_FILE           record latencies until the end marker
  flood    ENDPOINT SIZE COUNT DONE    send COUNT messages as fast as possible, then stay
                                       connected until the file DONE exists (ZeroMQ drops what
                                       a lagging reader has not read when its sender leaves)
  count    ENDPOINT OUT_FILE           count messages until the end marker
"""

import json
import os
import sys
import time

import numpy as np
import zmq


def main() -> None:
    role, args = sys.argv[1], sys.argv[2:]
    ctx = zmq.Context()
    ctx.setsockopt(zmq.RCVTIMEO, 10_000)  # a lost peer ends the run instead of hanging it
    if role == "sender":
        endpoint, size, hz, seconds = args[0], int(args[1]), float(args[2]), float(args[3])
        push = ctx.socket(zmq.PUSH)
        push.connect(endpoint)
        buf = np.zeros(size, np.uint8)
        stamp = buf[:8].view(np.int64)
        period = 1e9 / hz
        start = time.perf_counter_ns() + 200_000_000  # let the peers connect
        for k in range(int(seconds * hz)):
            due = start + k * period
            wait = (due - time.perf_counter_ns()) / 1e9
            if wait > 0:
                time.sleep(wait)
            stamp[0] = time.perf_counter_ns()
            push.send(buf if size > 4096 else buf.tobytes(), copy=size <= 4096)
        push.send(b"")
    elif role == "relay":
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        pull.bind(args[0])
        push.connect(args[1])
        while True:
            frame = pull.recv(copy=False)
            push.send(frame, copy=False)
            if len(frame) == 0:
                break
    elif role == "receiver":
        pull = ctx.socket(zmq.PULL)
        pull.bind(args[0])
        latencies = []
        while True:
            frame = pull.recv(copy=False)
            now = time.perf_counter_ns()
            if len(frame) == 0:
                break
            latencies.append(now - int(np.frombuffer(frame.buffer[:8], np.int64)[0]))
        with open(args[1], "w") as out:
            json.dump({"latencies_ns": latencies, "cpus": sorted(os.sched_getaffinity(0))}, out)
    elif role == "flood":
        endpoint, size, count, done = args[0], int(args[1]), int(args[2]), args[3]
        push = ctx.socket(zmq.PUSH)
        push.connect(endpoint)
        time.sleep(0.2)
        payload = bytes(size)
        for _ in range(count):
            push.send(payload)
        push.send(b"")
        deadline = time.monotonic() + 60
        while not os.path.exists(done) and time.monotonic() < deadline:
            time.sleep(0.01)
    elif role == "count":
        pull = ctx.socket(zmq.PULL)
        pull.bind(args[0])
        received, first, last = 0, 0, 0
        while True:
            msg = pull.recv()
            if not msg:
                break
            received += 1
            last = time.perf_counter_ns()
            if received == 1:
                first = last
        with open(args[1], "w") as out:
            json.dump({"received": received, "first_ns": first, "last_ns": last}, out)
    ctx.destroy(linger=-1)  # deliver everything queued, the end marker included


if __name__ == "__main__":
    main()
