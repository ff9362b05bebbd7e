"""The processes that joined a running graph: who they are, what they receive, whether they live.

A subscription is a process (pid) with a PULL socket (its endpoint) that receives some
outputs of this machine's nodes. A subscriber on another host (endpoint tcp://, pid 0)
gets no shared memory, and holds its subscription by renewing it (`Renew`) within its
lease: its pid means nothing here. The daemon adds its destinations to the run plan and
tells the sending nodes; when the subscriber unsubscribes, or is found dead (it may have
been killed with SIGKILL), the daemon takes them away again, frees its shared-memory
reader lines and deletes its socket file, so nothing of it is left behind.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from car.plan.build import RunPlan, SubscriberTarget
from car.plan.runs import pid_alive
from car.transport import control
from car.transport.shm import finish_reader


class SubscriptionError(ValueError):
    """A subscription asked for something this run does not have."""


@dataclass
class Subscription:
    """One subscriber and the destinations it has."""

    id: str
    pid: int
    endpoint: str
    targets: list[SubscriberTarget] = field(default_factory=list)
    lease_s: float = 0.0  # from elsewhere: it ends unless renewed within this long
    renewed: float = field(default_factory=time.monotonic)
    server_key: str = ""


class Subscriptions:
    """Every subscription of one run; `tell(node, message)` reaches a sending node."""

    def __init__(self, plan: RunPlan, tell: Callable[[str, control.DaemonToNode], None]):
        self._plan = plan
        self._tell = tell
        self.active: dict[str, Subscription] = {}

    def subscribe(self, request: control.Subscribe) -> control.DaemonReply:
        """Make a subscription and tell its senders; what the subscriber is answered."""
        try:
            sources = self.resolve(request.sources)
            subscription = self.add(
                request.pid,
                request.endpoint,
                sources,
                request.queue_size,
                request.lease_s,
                request.server_key,
                request.keep,
            )
        except SubscriptionError as exc:
            return control.Refused(str(exc))
        outputs = []
        for target in subscription.targets:
            dest = target.destination
            self._tell(
                target.node,
                control.AddSubscriber(
                    target.output,
                    subscription.id,
                    dest.endpoint,
                    dest.queue_size,
                    dest.line,
                    dest.server_key,
                    dest.keep,
                ),
            )
            outputs.append(control.SubscribedOutput(f"{target.node}/{target.output}", target.shm_prefix, dest.line))
        return control.Subscribed(subscription.id, outputs)

    def unsubscribe(self, subscription_id: str) -> Subscription | None:
        """End a subscription and tell its senders to stop sending to it; the one it was."""
        subscription = self.remove(subscription_id)
        for target in subscription.targets if subscription is not None else []:
            self._tell(target.node, control.RemoveSubscriber(target.output, subscription_id))
        return subscription

    def resolve(self, sources: list[str]) -> list[str]:
        """`node/output`s for `node/output`, `node` (all its outputs) or `*` (every output); SubscriptionError if unknown."""
        every = self._plan.outputs()
        if not sources:
            raise SubscriptionError("name at least one NODE/OUTPUT (or NODE, or *)")
        found: list[str] = []
        for source in sources:
            matches = (
                every
                if source == "*"
                else [o for o in every if o == source or ("/" not in source and o.startswith(source + "/"))]
            )
            if not matches:
                raise SubscriptionError(f"this run has no output `{source}` (outputs: {', '.join(every) or 'none'})")
            found += [m for m in matches if m not in found]
        return found

    def add(
        self,
        pid: int,
        endpoint: str,
        sources: list[str],
        queue_size: int,
        lease_s: float = 0.0,
        server_key: str = "",
        keep: bool = False,
    ) -> Subscription:
        """A new subscription of `sources` (already resolved) to `endpoint`; from elsewhere (tcp://) with a lease;
        `keep`: it keeps frames (a recorder)."""
        if queue_size < 1:
            raise SubscriptionError("queue_size must be at least 1")
        elsewhere = endpoint.startswith("tcp://")
        if elsewhere and lease_s <= 0:
            raise SubscriptionError("a subscriber on another host (tcp://) needs a lease (lease_s > 0)")
        if not elsewhere and pid <= 0:
            raise SubscriptionError("a subscriber on this host names its pid")
        subscription = Subscription(secrets.token_hex(4), pid, endpoint, lease_s=lease_s, server_key=server_key)
        for source in sources:
            target = self._plan.add_subscriber(
                subscription.id, source, endpoint, queue_size, not elsewhere, server_key, keep
            )
            if target.shm_prefix:
                finish_reader(target.shm_prefix, target.destination.line)  # holds nothing until it receives
            subscription.targets.append(target)
        self.active[subscription.id] = subscription
        return subscription

    def remove(self, subscription_id: str) -> Subscription | None:
        """Forget a subscription (its senders are not told: `unsubscribe` does that): its destinations
        leave the plan, its reader lines and socket file are freed."""
        subscription = self.active.pop(subscription_id, None)
        if subscription is None:
            return None
        self._plan.remove_subscriber(subscription_id)
        for target in subscription.targets:
            if target.shm_prefix:
                finish_reader(target.shm_prefix, target.destination.line)
        path = subscription.endpoint.removeprefix("ipc://")
        if path != subscription.endpoint:
            try:
                os.unlink(path)
            except OSError:
                pass  # the subscriber removed it, or never bound it
        return subscription

    def renew(self, subscription_id: str) -> bool:
        """A subscriber elsewhere is still there: its lease starts again (False: no such subscription)."""
        subscription = self.active.get(subscription_id)
        if subscription is not None:
            subscription.renewed = time.monotonic()
        return subscription is not None

    def dead(self) -> list[str]:
        """The subscriptions whose process is gone, or (from elsewhere) whose lease ran out."""
        now = time.monotonic()
        return [
            s.id
            for s in self.active.values()
            if (now - s.renewed > s.lease_s if s.lease_s > 0 else not pid_alive(s.pid))
        ]

    def of(self, source: str) -> list[Subscription]:
        """The subscriptions that receive `source`."""
        return [s for s in self.active.values() if any(f"{t.node}/{t.output}" == source for t in s.targets)]
