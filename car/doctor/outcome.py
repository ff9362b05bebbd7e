"""How a run with gaps failing went, against the run without: harmless, degraded (and which fallback ran), fatal
(who died and how), or the gap not reached; and what was known of each gap's effect before injecting it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from car.doctor.gaps import Gap
from car.doctor.trace import Call
from car.doctor.traced import TracedRun

FALLBACK_WINDOW = 4  # calls a thread makes after a failed one that may be its fallback

# Measured effects (shared/starry/README.md and `car doctor --inject` runs of this stack), shown before injecting.
KNOWN_EFFECTS = {
    "epoll_wait": "fatal: libzmq aborts (an x86_64 call: elsewhere the C library makes epoll_pwait)",
    "rseq": "harmless: the C library goes on without restartable sequences",
    "mbind": "harmless: OpenBLAS places its memory anyway",
    "vfork": "harmless: CPython falls back to a fork-style clone",
    "socket(AF_NETLINK)": "fatal: libzmq aborts (it lists the interfaces to bind an IP address; bind tcp://* instead); "
    "mDNS (zeroconf) announces the address the mDNS group is reached by instead",
    "socket(SOCK_RAW)": "harmless: the C library's interface listing (netlink) fails; mDNS uses the multicast route",
    "ioctl(TCFLSH)": "pyserial's open fails; hal's serial port opens without it",
    "ioctl(TIOCMBIS)": "pyserial's open fails; hal's serial port opens without it",
    "ioctl(TIOCMBIC)": "pyserial's open fails; hal's serial port opens without it",
    "ioctl(FIOCLEX)": "harmless with ENOTTY: CPython falls back to fcntl (fatal at start-up with EINVAL)",
    "ioctl(FIONCLEX)": "harmless with ENOTTY: CPython falls back to fcntl (fatal at start-up with EINVAL)",
}


class Verdict(Enum):
    """What a failing gap did to the run."""

    HARMLESS = "harmless"
    DEGRADED = "degraded"
    FATAL = "fatal"
    NOT_REACHED = "not reached"


@dataclass(frozen=True)
class Outcome:
    """A verdict and what it rests on."""

    verdict: Verdict
    detail: str

    def __str__(self) -> str:
        return f"{self.verdict.value}: {self.detail}" if self.detail else self.verdict.value


def failing(gaps: list[Gap]) -> Callable[[Call], bool]:
    """Whether a call is one of `gaps` failing (its traced name, its token, the target's errno)."""

    def failed(call: Call) -> bool:
        return any(
            call.name in gap.traced and call.errno == gap.errno and (not gap.key.token or gap.key.token in call.tokens)
            for gap in gaps
        )

    return failed


def judge(run: TracedRun, baseline: TracedRun, failed: Callable[[Call], bool], duration: float) -> Outcome:
    """The outcome of `run`, whose failing calls `failed` tells, next to `baseline` (the same graph, nothing
    failing)."""
    died = _deaths(run)
    if run.timed_out:
        died.append(f"the run did not end: stopped {duration:g} s past its time")
    if run.returncode != 0 and not died:
        said = [line.strip() for line in run.output.splitlines() if "failed" in line or "Error" in line]
        died.append("; ".join(said[-3:]) or f"car launch exited with {run.returncode}")
    if died:
        return Outcome(Verdict.FATAL, "; ".join(died))
    calls = run.trace.calls
    reached = [k for k, call in enumerate(calls) if failed(call) and run.who(call.tid)]
    if not reached:
        return Outcome(Verdict.NOT_REACHED, "no call ran into it this time")
    known = baseline.signatures
    fallbacks: list[str] = []
    for k in reached:
        tid = calls[k].tid
        after = [c for c in calls[k + 1 : k + 200] if c.tid == tid][:FALLBACK_WINDOW]
        for call in after:
            text = _shown(call)
            if (call.name, call.tokens) not in known and not failed(call) and text not in fallbacks:
                fallbacks.append(text)
    warned = {line.strip() for line in run.output.splitlines() if "warning" in line.lower()}
    warned -= {line.strip() for line in baseline.output.splitlines()}
    if fallbacks or warned:
        parts = ([f"fell back to {', '.join(fallbacks[:3])}"] if fallbacks else []) + sorted(warned)[:2]
        return Outcome(Verdict.DEGRADED, f"{len(reached)} calls failed; " + "; ".join(parts))
    return Outcome(Verdict.HARMLESS, f"{len(reached)} calls failed, the run went on as without")


def _deaths(run: TracedRun) -> list[str]:
    """The car side's processes that died of a signal, or nodes that exited with an error."""
    found = []
    for tid, end in sorted(run.trace.ends.items()):
        who = run.who(tid)
        if not who or run.trace.process_of(tid) != tid:
            continue
        if end.startswith("killed by") or (end != "exited with 0" and who in run.nodes):  # the daemon's is the launch's
            said = run.last_line_of(who)
            found.append(f"{who} {end}" + (f" ({said})" if said else ""))
    return sorted(set(found))


def _shown(call: Call) -> str:
    return f"{call.name}({'|'.join(sorted(call.tokens))})" if call.tokens else call.name
