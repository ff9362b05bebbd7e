"""The inbox's queueing decisions, in-process: messages go in encoded as on the wire, events come out.

car.node.queues.InputQueues is the inbox without its sockets; each test hands it wire
messages as a socket would and reads the events a node would get.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from car.node.drops import DropFlag
from car.node.event import Event
from car.node.queues import InputQueues
from car.plan.config import InputConfig
from car.spec.model import QueuePolicy
from car.transport import control, wire
from car.transport.hlc import HybridLogicalClock


class Reader:
    """Queues for some inputs, and what they said besides events."""

    def __init__(self, **inputs: tuple[str, int] | tuple[str, int, float]) -> None:
        self.ended: list[str] = []
        self.controls: list[control.DaemonToNode] = []
        self.drops = DropFlag()
        configs = {
            name: InputConfig(spec[0], spec[1], QueuePolicy.DROP_OLDEST, spec[2] if len(spec) > 2 else None)
            for name, spec in inputs.items()
        }
        self.queues = InputQueues(configs, HybridLogicalClock(), self.drops, self.ended.append, self.controls.append)
        self.clock = HybridLogicalClock()

    def arrive(self, kind: int, source: str, value: Any = None) -> None:
        frames = wire.encode(kind, source.encode(), self.clock.tick(), value)
        kind, vtype, routed = wire.route(frames[0])
        self.queues._queue_message(kind, vtype, routed, frames[0], frames[1] if len(frames) > 1 else None, None)

    def events(self) -> list[Event]:
        out = []
        while (event := self.queues.pop()) is not None:
            out.append(event)
        return out


def described(events: list[Event]) -> list[tuple[str, str, Any]]:
    return [(e.type, e.id or "", e.value if e.type == "INPUT" else e.error) for e in events]


def test_messages_come_out_in_arrival_order_across_inputs_with_their_values() -> None:
    reader = Reader(image=("camera/image", 10), line=("detector/line", 10))
    reader.arrive(wire.KIND_DATA, "camera/image", np.arange(6, dtype=np.uint8).reshape(2, 3))
    reader.arrive(wire.KIND_DATA, "detector/line", {"offset": 0.1})
    reader.arrive(wire.KIND_DATA, "camera/image", b"raw")
    events = reader.events()
    assert [(e.type, e.id) for e in events] == [("INPUT", "image"), ("INPUT", "line"), ("INPUT", "image")]
    assert events[0].value.shape == (2, 3) and events[1].value == {"offset": 0.1} and events[2].value == b"raw"
    assert events[0].timestamp is not None and events[0].timestamp < events[2].timestamp
    assert reader.queues.received == 3


def test_a_full_queue_drops_its_oldest_and_says_so() -> None:
    reader = Reader(line=("detector/line", 2))
    for n in range(5):
        reader.arrive(wire.KIND_DATA, "detector/line", n)
    assert [e.value for e in reader.events()] == [3, 4]
    assert reader.drops.pending and reader.queues.drop_counts() == {"input line": 3}
    assert reader.queues.unreported_drops() == ["input `line` (queue_size 2): 3"]
    assert reader.queues.unreported_drops() == []  # said once


def test_a_queue_of_one_keeps_the_latest_and_counts_the_rest_as_superseded_not_dropped() -> None:
    reader = Reader(image=("camera/image", 1))
    for n in range(4):
        reader.arrive(wire.KIND_DATA, "camera/image", n)
    assert [e.value for e in reader.events()] == [3]
    assert reader.queues.superseded() == 3 and reader.queues.drop_counts() == {} and not reader.drops.pending


def test_one_source_feeds_every_input_that_reads_it() -> None:
    reader = Reader(a=("src/out", 5), b=("src/out", 5))
    reader.arrive(wire.KIND_DATA, "src/out", "x")
    assert [(e.id, e.value) for e in reader.events()] == [("a", "x"), ("b", "x")]


def test_the_end_of_a_stream_closes_its_inputs_once_and_stop_follows_when_all_are_closed() -> None:
    reader = Reader(a=("one/out", 5), b=("two/out", 5))
    reader.arrive(wire.KIND_DATA, "one/out", 1)
    reader.arrive(wire.KIND_CLOSED, "one/out")
    reader.arrive(wire.KIND_CLOSED, "one/out")  # said twice (a restart, a remote machine): closed once
    assert described(reader.events()) == [("INPUT", "a", 1), ("INPUT_CLOSED", "a", "one/out closed")]
    assert reader.ended == ["one/out"]
    reader.arrive(wire.KIND_CLOSED, "two/out")
    assert described(reader.events()) == [
        ("INPUT_CLOSED", "b", "two/out closed"),
        ("STOP", "ALL_INPUTS_CLOSED", "all inputs closed"),
    ]


def test_a_node_with_a_timer_is_not_stopped_by_its_other_inputs_closing() -> None:
    reader = Reader(tick=("dora/timer/millis/10", 1), a=("one/out", 5))
    reader.arrive(wire.KIND_CLOSED, "one/out")
    assert [e.type for e in reader.events()] == ["INPUT_CLOSED"] and not reader.queues.stop_seen


def test_a_message_after_the_end_of_its_stream_opens_the_input_again() -> None:
    reader = Reader(a=("one/out", 5), b=("two/out", 5))
    reader.arrive(wire.KIND_CLOSED, "one/out")
    reader.arrive(wire.KIND_DATA, "one/out", "restarted")
    reader.arrive(wire.KIND_CLOSED, "two/out")
    assert [e.type for e in reader.events()] == ["INPUT_CLOSED", "INPUT", "INPUT_CLOSED"]


def test_stop_from_the_daemon_is_queued_once_behind_what_came_before() -> None:
    reader = Reader(a=("one/out", 5))
    reader.arrive(wire.KIND_DATA, "one/out", 1)
    reader.arrive(wire.KIND_STOP, "")
    reader.arrive(wire.KIND_STOP, "")
    assert described(reader.events()) == [("INPUT", "a", 1), ("STOP", "MANUAL", "")]
    assert reader.queues.dataflow_stopping


def test_control_messages_go_to_the_node_and_unreadable_ones_become_errors() -> None:
    reader = Reader(a=("one/out", 5))
    reader.arrive(wire.KIND_CONTROL, "", control.encode(control.ReaderGone("b")))
    reader.arrive(wire.KIND_CONTROL, "", b"\xc1")
    reader.arrive(wire.KIND_ERROR, "", "the daemon says hello")
    assert reader.controls == [control.ReaderGone("b")]
    errors = [e.error for e in reader.events()]
    assert errors[0].startswith("a control message from the daemon: not a control message")
    assert errors[1] == "the daemon says hello"


def test_what_senders_dropped_on_the_way_to_a_subscriber_is_added_up() -> None:
    reader = Reader(a=("one/out", 5))
    reader.arrive(wire.KIND_DROPPED, "", 4)
    reader.arrive(wire.KIND_DROPPED, "", 3)
    assert reader.queues.missed == 7 and reader.events() == []


def test_an_input_silent_past_its_timeout_is_closed() -> None:
    reader = Reader(a=("one/out", 5, 0.5), b=("two/out", 5))
    reader.queues.expire_inputs()
    assert reader.events() == []
    reader.queues.inputs["a"].last -= 0.6  # half a second without a message, as a clock would say
    reader.queues.expire_inputs()
    assert described(reader.events()) == [("INPUT_CLOSED", "a", "no message for 0.5 s (input_timeout)")]


def test_a_shared_memory_notice_to_a_reader_without_shared_memory_is_an_error_not_a_crash() -> None:
    reader = Reader(image=("camera/image", 2))
    frames = wire.encode(wire.KIND_DATA, b"camera/image", reader.clock.tick(), np.zeros(100_000, np.uint8))
    notice = wire.shared(frames[0], b"\x00" * 24)
    kind, vtype, source = wire.route(notice)
    reader.queues._queue_message(kind, vtype, source, notice, None, None)
    (event,) = reader.events()
    assert event.type == "ERROR" and "dropped a shared-memory message" in (event.error or "")


@pytest.mark.parametrize("size", [1, 3, 10])
def test_every_message_is_handed_out_or_counted(size: int) -> None:
    reader = Reader(a=("one/out", size))
    sent, handed = 25, 0
    for n in range(sent):
        reader.arrive(wire.KIND_DATA, "one/out", n)
        if n % 7 == 0:
            handed += len(reader.events())  # the node reads now and then
    handed += len(reader.events())
    counted = reader.queues.superseded() + sum(reader.queues.drop_counts().values())
    assert handed + counted == sent and reader.queues.received == handed
