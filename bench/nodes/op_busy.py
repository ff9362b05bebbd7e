"""Operator: on every tick, BENCH_BUSY_MS of pure-Python work; how many ticks it handled and over what time (from
the first to the last it handled), in a file of its own in BENCH_OUT_DIR, at the end and every SAVE_EVERY ticks."""

import json
import os
import time

from dora import DoraStatus

BUSY_NS = int(float(os.environ.get("BENCH_BUSY_MS", "6")) * 1e6)
WARMUP_NS = int(float(os.environ.get("BENCH_WARMUP_S", "0.5")) * 1e9)
SAVE_EVERY = 50  # ticks handled between saves of the count (every half second at 100 Hz)


def spin(rounds):
    """Pure-Python work (a fixed amount: a loop timed by the clock would count time spent waiting for the GIL)."""
    total = 0
    for k in range(rounds):
        total += k
    return total


def calibrate():
    """The rounds of `spin` that take BENCH_BUSY_MS here, alone."""
    rounds = 10_000
    while True:
        began = time.perf_counter_ns()
        spin(rounds)
        took = time.perf_counter_ns() - began
        if took > 20_000_000:
            return max(1, rounds * BUSY_NS // took)
        rounds *= 2


class Operator:
    """Python-bound work per tick: the GIL lets one thread of a process run it at a time."""

    def __init__(self):
        self.rounds = calibrate()
        self.start = None
        self.handled = 0
        self.first = self.last = 0

    def on_event(self, event, send_output):
        if event["type"] == "INPUT":
            now = time.perf_counter_ns()
            self.start = self.start or now
            if now - self.start >= WARMUP_NS:
                self.handled += 1
                self.first = self.first or now
                self.last = now
                spin(self.rounds)
                if self.handled % SAVE_EVERY == 0:
                    self.save()
        elif event["type"] == "STOP":
            self.save()
        return DoraStatus.CONTINUE

    def save(self):
        """The count so far, replaced whole (a runtime stopped hard on a busy machine still leaves its last)."""
        path = os.path.join(os.environ["BENCH_OUT_DIR"], f"busy-{os.getpid()}-{id(self)}.json")
        with open(path + ".part", "w") as out:
            json.dump({"handled": self.handled, "seconds": (self.last - self.first) / 1e9}, out)
        os.replace(path + ".part", path)
