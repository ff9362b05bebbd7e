"""iceoryx2 (a zero-copy shared-memory middleware with a Rust core) driven from Python: a reference.

Runs on the Python of bench/.iceoryx2-venv (see iceoryx2_runner.py). One process per
role; each hop is a publish-subscribe service of byte slices plus an event service whose
notification wakes the reader (iceoryx2's way of waiting without polling). Every sample
is a slice the publisher loans in shared memory; perf_counter_ns sits in its first 8 bytes.

Roles:
  sender   SERVICE SIZE HZ SECONDS WARMUP LOANED   LOANED 0: stamp, then copy a ready-made array into
                                                   the loan (as car and dora copy); 1: fill the loan,
                                                   then stamp (as car's allocate_output)
  relay    IN_SERVICE OUT_SERVICE SIZE             copy each sample into a new loan and send it on
  receiver SERVICE OUT_FILE                        record latencies until the end event
"""

import ctypes
import json
import os
import sys
import time
from collections.abc import Iterator

import iceoryx2 as iox2
import numpy as np

DATA, END = iox2.EventId.new(1), iox2.EventId.new(2)
GIVE_UP = iox2.Duration.from_secs(10)  # a lost peer ends the run instead of hanging it


def open_hop(node: "iox2.Node", name: str) -> tuple["iox2.PortFactoryPublishSubscribe", "iox2.PortFactoryEvent"]:
    """The two services of one hop: the samples and the wake-ups."""
    samples = node.service_builder(iox2.ServiceName.new(name)).publish_subscribe(iox2.Slice[ctypes.c_uint8])
    events = node.service_builder(iox2.ServiceName.new(name + "/wake")).event()
    return samples.open_or_create(), events.open_or_create()


def view(sample: object) -> np.ndarray:
    """A sample's bytes as a numpy array, without a copy."""
    return np.frombuffer(sample.payload().as_memory_view(), np.uint8)  # type: ignore[attr-defined]


def arrivals(subscriber: "iox2.Subscriber", listener: "iox2.Listener") -> Iterator[object]:
    """Every sample, each as soon as its wake-up comes, until the upstream ends (or goes quiet)."""
    ended = False
    while not ended:
        events = listener.timed_wait(GIVE_UP)
        ended = not events or any(e.id.as_value == END.as_value for e in events)
        while (sample := subscriber.receive()) is not None:
            yield sample


def main() -> None:
    role, args = sys.argv[1], sys.argv[2:]
    iox2.set_log_level_from_env_or(iox2.LogLevel.Error)
    node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    if role == "sender":
        name, size, hz, seconds, warmup, loaned = args[0], int(args[1]), float(args[2]), *map(float, args[3:5]), args[5]
        samples, events = open_hop(node, name)
        publisher = samples.publisher_builder().initial_max_slice_len(size).create()
        notifier = events.notifier_builder().create()
        frame = np.zeros(size, np.uint8)
        period = 1e9 / hz
        start = time.perf_counter_ns() + int(warmup * 1e9)  # let the readers subscribe
        for k in range(int(seconds * hz)):
            wait_s = (start + k * period - time.perf_counter_ns()) / 1e9
            if wait_s > 0:
                time.sleep(wait_s)
            stamp = time.perf_counter_ns()  # copied: the loan and the copy count, as for every peer that copies
            loan = publisher.loan_slice_uninit(size)
            out = view(loan)
            out[:] = frame
            if loaned == "1":  # the frame is made in the loan before the stamp, as with allocate_output
                stamp = time.perf_counter_ns()
            out[:8].view(np.int64)[0] = stamp
            del out
            loan.assume_init().send()
            notifier.notify_with_custom_event_id(DATA)
        time.sleep(0.2)
        notifier.notify_with_custom_event_id(END)
    elif role == "relay":
        upstream, downstream = open_hop(node, args[0]), open_hop(node, args[1])
        subscriber = upstream[0].subscriber_builder().create()
        listener = upstream[1].listener_builder().create()
        publisher = downstream[0].publisher_builder().initial_max_slice_len(int(args[2])).create()
        notifier = downstream[1].notifier_builder().create()
        for sample in arrivals(subscriber, listener):
            data = view(sample)
            loan = publisher.loan_slice_uninit(data.size)
            view(loan)[:] = data
            del data, sample
            loan.assume_init().send()
            notifier.notify_with_custom_event_id(DATA)
        notifier.notify_with_custom_event_id(END)
    elif role == "receiver":
        samples, events = open_hop(node, args[0])
        subscriber = samples.subscriber_builder().create()
        listener = events.listener_builder().create()
        latencies = []
        for sample in arrivals(subscriber, listener):
            now = time.perf_counter_ns()
            latencies.append(now - int(view(sample)[:8].view(np.int64)[0]))
            del sample
        with open(args[1], "w") as out_file:
            json.dump({"latencies_ns": latencies, "cpus": sorted(os.sched_getaffinity(0))}, out_file)
    else:
        raise SystemExit(f"unknown role {role}")


if __name__ == "__main__":
    main()
