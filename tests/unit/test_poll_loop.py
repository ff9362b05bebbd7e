"""The one poll loop: handlers for what is readable, periodic work on its own schedule, an end it decides.

Driven over a pipe (a file descriptor the poller watches as it watches a socket) and a clock by hand.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from car.transport.poll_loop import PollLoop


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    os.close(read)
    os.close(write)


def test_a_readable_descriptor_is_handled_and_a_quiet_one_is_not(pipe: tuple[int, int]) -> None:
    read, write = pipe
    got: list[bytes] = []
    loop = PollLoop(tick_ms=10)
    loop.add(read, lambda: got.append(os.read(read, 100)))
    loop.run_once(wait_ms=0)
    assert got == []
    os.write(write, b"hello")
    loop.run_once(wait_ms=1000)
    assert got == [b"hello"]
    loop.remove(read)
    os.write(write, b"again")
    loop.run_once(wait_ms=0)
    assert got == [b"hello"]


def test_periodic_work_runs_first_then_once_per_period_with_the_time_of_the_pass() -> None:
    clock = Clock()
    ran: list[tuple[str, float]] = []
    loop = PollLoop(tick_ms=0, clock=clock)
    loop.every(1.0, lambda now: ran.append(("slow", now)))
    loop.every(0.0, lambda now: ran.append(("each", now)))
    for step in (0.0, 0.4, 0.4, 0.4):
        clock.now += step
        loop.run_once(wait_ms=0)
    assert [now for name, now in ran if name == "slow"] == pytest.approx([10.0, 11.2])
    assert len([r for r in ran if r[0] == "each"]) == 4


def test_run_ends_when_its_condition_says_so_given_the_time_of_the_last_pass() -> None:
    clock = Clock()
    passes: list[float] = []

    def tick(now: float) -> None:
        passes.append(now)
        clock.now += 1.0

    loop = PollLoop(tick_ms=0, clock=clock)
    loop.every(0.0, tick)
    loop.run(lambda now: now >= 13.0)
    assert passes == [10.0, 11.0, 12.0, 13.0]  # asked before each pass, with the last pass's time


def test_a_handler_may_remove_another_descriptor_ready_in_the_same_pass(pipe: tuple[int, int]) -> None:
    read, write = pipe
    other_read, other_write = os.pipe()
    try:
        seen: list[str] = []
        loop = PollLoop(tick_ms=10)

        def first() -> None:
            seen.append("first")
            os.read(read, 10)
            loop.remove(other_read)

        loop.add(read, first)
        loop.add(other_read, lambda: seen.append("second"))
        os.write(write, b"x")
        os.write(other_write, b"y")
        loop.run_once(wait_ms=1000)
        assert "first" in seen  # and no error for the descriptor it removed, whichever the poller named first
    finally:
        os.close(other_read)
        os.close(other_write)
