"""Pinning nodes to CPUs: the `cpu_affinity` key of a dataflow node.

Why pin: Linux tends to wake a message's reader on the CPU of the node that sent it, so
the reader starts only once the sender sleeps and the two run one after the other even
when another CPU is idle. A camera and the node reading its frames, pinned to different
CPUs, run side by side instead (bench/README.md has the figures).

The daemon pins a node by pinning its own thread around the fork that starts the node:
the child inherits the set, so every thread the node ever makes is pinned from its first
instruction on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from car.spec.model import Dataflow, Problem


def usable_cpus() -> frozenset[int] | None:
    """The CPUs this process may run on, or None where the system cannot pin processes."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    try:
        return frozenset(os.sched_getaffinity(0))
    except OSError:
        return None


def check(dataflow: Dataflow) -> list[Problem]:
    """Problems with the `cpu_affinity` of the dataflow's nodes on this machine: CPUs it lacks."""
    usable = usable_cpus()
    if usable is None:
        return []
    problems = []
    for node in dataflow.nodes:
        missing = sorted(set(node.cpu_affinity) - usable)
        if missing:
            names = ", ".join(str(cpu) for cpu in missing)
            problems.append(
                Problem(
                    node.cpu_affinity_location or node.location,
                    f"node `{node.id}`.cpu_affinity names CPU {names}, which this machine does not let car use",
                    f"use CPUs of {', '.join(str(cpu) for cpu in sorted(usable))}, "
                    "or remove `cpu_affinity` to let the kernel choose",
                )
            )
    return problems


@contextmanager
def inherited(cpus: tuple[int, ...]) -> Iterator[None]:
    """Run the block with the calling thread pinned to `cpus`, so processes it starts inherit them.

    Only for systems that can pin (`usable_cpus()` is not None); OSError if the kernel refuses the set.
    """
    if not cpus:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)
