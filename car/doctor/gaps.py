"""What a traced run used that a target lacks: each call mapped onto the target's architecture, then compared with
its profile (a missing call, a token a call does not take), and what it has but runs differently."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from car.doctor.arch import Mapped, on_target
from car.doctor.profile import Behaviour, Profile
from car.doctor.trace import Trace


@dataclass(frozen=True)
class GapKey:
    """A call the target lacks (`token` ""), or a token its call does not take."""

    call: str  # the target's name for it
    token: str = ""

    def __str__(self) -> str:
        return f"{self.call}({self.token})" if self.token else self.call


@dataclass
class Gap:
    """One gap: how the target fails it, the traced calls that are it there, and who made them how often."""

    key: GapKey
    errno: str
    traced: set[str] = field(default_factory=set)  # the traced calls' names (x86_64's, when mapped)
    by: Counter[str] = field(default_factory=Counter)  # who (a node, the daemon) -> calls

    @property
    def count(self) -> int:
        """How many calls ran into it."""
        return sum(self.by.values())


@dataclass
class Differs:
    """A call the target has but runs differently (a profile's behaviour), and who made it how often."""

    behaviour: Behaviour
    by: Counter[str] = field(default_factory=Counter)


@dataclass
class Findings:
    """What one traced run used that the target lacks, what was mapped, and the processes it took."""

    gaps: dict[GapKey, Gap] = field(default_factory=dict)
    mapped: Counter[Mapped] = field(default_factory=Counter)  # traced calls the target makes otherwise (or not)
    differs: list[Differs] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # who -> calls made
    processes: dict[str, set[int]] = field(default_factory=dict)  # who -> its processes
    threads: dict[str, set[int]] = field(default_factory=dict)  # who -> its threads (processes included)


def compare(trace: Trace, profile: Profile, architecture: str, who: Callable[[int], str]) -> Findings:
    """The findings of `trace` against `profile` on `architecture`; `who(tid)` names the node (or the daemon) a
    thread belongs to, "" for threads that are not the car side's (not counted)."""
    found = Findings()
    mapped: dict[str, Mapped] = {}
    differs: dict[Behaviour, Differs] = {}
    for call in trace.calls:
        name = who(call.tid)
        if not name:
            continue
        found.calls[name] += 1
        found.threads.setdefault(name, set()).add(call.tid)
        found.processes.setdefault(name, set()).add(trace.process_of(call.tid))
        target = mapped.get(call.name) or mapped.setdefault(call.name, on_target(call.name, architecture))
        if target.replaced:
            found.mapped[target] += 1
        if not target.call:
            continue  # not made on the target at all
        if not profile.has_call(target.call):
            _gap(found, GapKey(target.call), profile.call_errno, call.name, name)
            continue
        for token in call.tokens:
            if not profile.token_allowed(target.call, token):
                _gap(found, GapKey(target.call, token), profile.errno_for_token(target.call, token), call.name, name)
        behaviour = profile.behaviour_of(target.call, call.tokens, call.timed)
        if behaviour is not None:
            differs.setdefault(behaviour, Differs(behaviour)).by[name] += 1
    found.differs = list(differs.values())
    return found


def _gap(found: Findings, key: GapKey, errno: str, traced: str, name: str) -> None:
    gap = found.gaps.get(key) or found.gaps.setdefault(key, Gap(key, errno))
    gap.traced.add(traced)
    gap.by[name] += 1
