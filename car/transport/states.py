"""The states every side reports: of a node, of a run's part on one machine, of a dataflow, of a machine.

They travel in control messages (car.transport.control, car.transport.cluster) as their
string values and are compared as enums everywhere: the daemon keeps its nodes' states,
the coordinator its dataflows', parts' and machines', and the `car` command reads them.
"""

from __future__ import annotations

import enum


class NodeStatus(enum.StrEnum):
    """Where a node is in its life."""

    PENDING = "pending"  # not started yet
    WAITING = "waiting"  # a dynamic node: waits for `car run-node`
    RUNNING = "running"
    RESTARTING = "restarting"  # ended; starts again after its restart_delay
    EXITED = "exited"  # ended without error, or was stopped
    FAILED = "failed"  # ended with an error and is not restarted

    @property
    def ended(self) -> bool:
        """Whether the node has ended for good."""
        return self in (NodeStatus.EXITED, NodeStatus.FAILED)


ALIVE = (NodeStatus.PENDING, NodeStatus.RUNNING, NodeStatus.RESTARTING)


class PartState(enum.StrEnum):
    """A dataflow's nodes on one machine, as the coordinator knows them."""

    PREPARING = "preparing"  # its machine checks its nodes and picks ports
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    LOST = "lost"  # its machine stopped answering
    UNKNOWN = "unknown"  # its daemon has not registered since this coordinator restarted
    ENDED = "ended"  # it ended while this coordinator was not there

    @property
    def live(self) -> bool:
        """Whether the part may still run (so its dataflow has not ended)."""
        return self in (PartState.PREPARING, PartState.RUNNING, PartState.LOST, PartState.UNKNOWN)


class FlowState(enum.StrEnum):
    """A dataflow placed on machines."""

    STARTING = "starting"  # its machines prepare it
    RUNNING = "running"
    STOPPING = "stopping"  # `car stop` asked
    DEGRADED = "degraded"  # a machine was lost
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        """Whether the dataflow has ended."""
        return self in (FlowState.FINISHED, FlowState.FAILED)


class MachineState(enum.StrEnum):
    """A machine's daemon, as the coordinator sees it."""

    CONNECTED = "connected"
    LOST = "lost"  # no heartbeat for the coordinator's timeout
