"""An strace log reduced to what a kernel check needs: each call's name, the argument tokens that matter, its
error; and the process tree (who cloned whom, who ran what, how each ended).

Reads `strace -f -o FILE` output: lines prefixed with the thread id (or `[pid N]`), calls
split across threads as `NAME(ARGS <unfinished ...>` then `<... NAME resumed>REST`, signals
(`--- SIGCHLD {...} ---`) and ends (`+++ exited with 0 +++`, `+++ killed by SIGABRT +++`).
The tokens kept are strace's symbolic names in the arguments that decide whether a kernel
can run a call (TOKEN_ARGUMENTS): socket families and types, futex operations, ioctl
requests, clone flags, mmap and open flags, epoll and fcntl commands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

# call -> the arguments whose tokens are kept: positions, or a keyword strace prints (`flags=`)
TOKEN_ARGUMENTS: dict[str, tuple[int | str, ...]] = {
    "socket": (0, 1),
    "socketpair": (0, 1),
    "futex": (1, 4, 5),  # strace leaves out the unused uaddr2 of a bitset wait: its mask is then the 5th
    "ioctl": (1,),
    "clone": ("flags",),
    "clone3": ("flags",),
    "mmap": (2, 3),
    "open": (1,),
    "openat": (2,),
    "epoll_create1": (0,),
    "epoll_ctl": (1,),
    "fcntl": (1,),
}
FUTEX_TIMEOUT = 3  # futex's argument that is a wait's timeout (NULL: no timeout)
CREATES = ("clone", "clone3", "fork", "vfork")

_PID = re.compile(r"^(?:\[pid\s+(\d+)\]|(\d+))\s+")
_TOKEN = re.compile(r"\b[A-Z][A-Z0-9_]*[A-Z0-9]\b")
_RESUMED = re.compile(r"^<\.\.\. (\w+|\?\?\?) resumed>\s?")  # `???`: a call of a thread that was killed
_END = re.compile(r"^\+\+\+ (exited with (-?\d+)|killed by (SIG\w+)(?: \(core dumped\))?) \+\+\+$")
_SIGNAL = re.compile(r"^--- (SIG\w+) ")
_ERRNO = re.compile(r"^-1 (E[A-Z0-9]+)")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


class TraceError(ValueError):
    """A line that is not strace's output."""


@dataclass(frozen=True)
class Call:
    """One system call as the kernel saw it."""

    tid: int
    name: str
    tokens: frozenset[str]
    timed: bool  # a futex wait with a timeout
    errno: str  # "" when it did not fail
    args: tuple[str, ...]


@dataclass
class Trace:
    """A whole log: the calls in order, and the threads' and processes' history."""

    calls: list[Call] = field(default_factory=list)
    created_by: dict[int, int] = field(default_factory=dict)  # a new thread or process -> the thread that made it
    threads: set[int] = field(default_factory=set)  # made with CLONE_THREAD: part of its creator's process
    programs: dict[int, list[str]] = field(default_factory=dict)  # a process -> the argv it last exec'd
    ends: dict[int, str] = field(default_factory=dict)  # a thread -> "exited with N" or "killed by SIGX"
    signals: list[tuple[int, str]] = field(default_factory=list)  # (thread, signal) delivered
    execs: dict[int, int] = field(default_factory=dict)  # a process -> the index in `calls` of its last exec

    def process_of(self, tid: int) -> int:
        """The process (thread-group leader) thread `tid` belongs to."""
        while tid in self.threads and tid in self.created_by:
            tid = self.created_by[tid]
        return tid


def read_trace(lines: Iterable[str]) -> Trace:
    """Reduce strace's lines (TraceError for a line that is not strace's)."""
    trace = Trace()
    pending: dict[int, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        found = _PID.match(line)
        tid = int(found.group(1) or found.group(2)) if found else 0
        text = line[found.end() :] if found else line
        try:
            _take(trace, pending, tid, text)
        except TraceError as exc:
            raise TraceError(f"line {number}: {exc}: {line[:120]}") from None
    return trace


def _take(trace: Trace, pending: dict[int, str], tid: int, text: str) -> None:
    end = _END.match(text)
    if end:
        trace.ends[tid] = end.group(1).replace(" (core dumped)", "")
        return
    if text.startswith("+++ superseded by execve"):
        return
    signal = _SIGNAL.match(text)
    if signal:
        trace.signals.append((tid, signal.group(1)))
        return
    resumed = _RESUMED.match(text)
    if resumed:
        text = pending.pop(tid, resumed.group(1) + "(") + text[resumed.end() :]
    elif text.endswith("<unfinished ...>"):
        pending[tid] = text[: -len("<unfinished ...>")].rstrip()
        return
    call = _call(tid, text)
    trace.calls.append(call)
    _follow(trace, call, text)


def _call(tid: int, text: str) -> Call:
    """A whole call `NAME(ARGS) = RESULT` (`= ?` for one that never returned, such as exit_group)."""
    opening = text.find("(")
    name = text[:opening]
    if opening <= 0 or not re.fullmatch(r"\w+|\?\?\?", name):
        raise TraceError("not a system call")
    closing = _matching(text, opening)
    args = tuple(_split(text[opening + 1 : closing]))
    result = text[closing + 1 :].strip()
    result = result[1:].strip() if result.startswith("=") else result
    failed = _ERRNO.match(result)
    return Call(tid, name, _tokens(name, args), _timed(name, args), failed.group(1) if failed else "", args)


def _outside_strings(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """Each character of `text` from `start` that is not inside a quoted string: its index, itself, and the bracket
    depth once it is read."""
    depth, quoted, k = 0, False, start
    while k < len(text):
        char = text[k]
        if quoted:
            if char == "\\":
                k += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        else:
            depth += 1 if char in "([{" else -1 if char in ")]}" else 0
            yield k, char, depth
        k += 1


def _matching(text: str, opening: int) -> int:
    """The index of the parenthesis that closes the one at `opening` (the end of the text if none)."""
    return next((k for k, char, depth in _outside_strings(text, opening) if char in ")]}" and depth == 0), len(text))


def _split(args: str) -> list[str]:
    """The top-level arguments, split at commas outside brackets and strings."""
    cuts = [k for k, char, depth in _outside_strings(args) if char == "," and depth == 0]
    parts = [args[a + 1 : b].strip() for a, b in zip([-1, *cuts], [*cuts, len(args)], strict=True)]
    return parts if cuts or parts[0] else []


def _tokens(name: str, args: tuple[str, ...]) -> frozenset[str]:
    tokens: set[str] = set()
    for where in TOKEN_ARGUMENTS.get(name, ()):
        for arg in _arguments(args, where):
            if name == "ioctl":
                tokens.add(arg)  # a request, as strace names it (`TCGETS`, `SNDCTL_TMR_START or TCGETS`, `0x5441`)
            else:
                tokens.update(t for t in _TOKEN.findall(_STRING.sub("", arg)) if t != "NULL")
    return frozenset(tokens)


def _arguments(args: tuple[str, ...], where: int | str) -> list[str]:
    if isinstance(where, int):
        return [args[where]] if where < len(args) else []
    key = f"{where}="
    found = [arg[len(key) :] for arg in args if arg.startswith(key)]
    for arg in args:  # clone3's flags are inside its structure: {flags=..., ...}
        if arg.startswith("{") and key in arg:
            found.append(arg[arg.index(key) + len(key) :].split(",", 1)[0])
    return found


def _timed(name: str, args: tuple[str, ...]) -> bool:
    if name != "futex" or len(args) <= FUTEX_TIMEOUT:
        return False
    return "WAIT" in args[1] and args[FUTEX_TIMEOUT] not in ("NULL", "0")


def _follow(trace: Trace, call: Call, text: str) -> None:
    """Keep the process tree: new threads and processes, programs exec'd."""
    result = text[_matching(text, text.find("(")) + 1 :].strip().lstrip("=").strip()
    if call.name in CREATES and result.split(" ", 1)[0].isdigit():
        child = int(result.split(" ", 1)[0])
        trace.created_by[child] = call.tid
        if "CLONE_THREAD" in call.tokens:
            trace.threads.add(child)
    elif call.name == "execve" and result.startswith("0") and len(call.args) > 1:
        trace.programs[call.tid] = [_unescape(s) for s in _STRING.findall(call.args[1])]
        trace.execs[call.tid] = len(trace.calls) - 1


def _unescape(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")
