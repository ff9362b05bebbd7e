"""Run a program as if on the target kernel: the gaps failing as the target fails them, through a seccomp filter.

    python -m car.doctor.confine RULES.json -- COMMAND ARGS...

loads a seccomp filter (libseccomp, through pyseccomp's binding) in which each rule makes
one system call fail with the target's errno, every call or only those with an argument
that matches (`args[n] & mask == value`: a socket type, an ioctl request), then runs
COMMAND in its place. The filter holds for COMMAND and everything it starts. A gap becomes
rules on this machine's calls (`rules_for`): the traced calls that are that call on the
target, and for a token the argument it is in, by its value on this machine.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import termios
from dataclasses import asdict, dataclass
from typing import Any

from car.doctor.gaps import Gap

MASK32 = 0xFFFFFFFF
SOCKET_TYPE_MASK = 0xF
FUTEX_COMMAND_MASK = 0x7F
FUTEX_PRIVATE = 128
FUTEX_CLOCK_REALTIME = 256
FUTEX_COMMANDS = {
    "FUTEX_WAIT": 0,
    "FUTEX_WAKE": 1,
    "FUTEX_FD": 2,
    "FUTEX_REQUEUE": 3,
    "FUTEX_CMP_REQUEUE": 4,
    "FUTEX_WAKE_OP": 5,
    "FUTEX_LOCK_PI": 6,
    "FUTEX_UNLOCK_PI": 7,
    "FUTEX_TRYLOCK_PI": 8,
    "FUTEX_WAIT_BITSET": 9,
    "FUTEX_WAKE_BITSET": 10,
    "FUTEX_WAIT_REQUEUE_PI": 11,
    "FUTEX_CMP_REQUEUE_PI": 12,
    "FUTEX_LOCK_PI2": 13,
}
IOCTLS_NOT_IN_TERMIOS = {"TIOCGPTPEER": 0x5441}  # Linux's asm-generic/ioctls.h


@dataclass(frozen=True)
class Rule:
    """One call failing with `errno`: every call (`argument` -1), or those where `args[argument] & mask == value`."""

    call: str
    errno: str
    argument: int = -1
    mask: int = 0
    value: int = 0


@dataclass(frozen=True)
class ArgumentMatch:
    """Where a token is in its call, and its value there."""

    argument: int
    mask: int
    value: int


def rules_for(gap: Gap) -> list[Rule]:
    """The rules that make `gap` fail on this machine as on the target; ValueError saying why it cannot be done
    (a token seccomp cannot see, or whose value is not known here)."""
    if not gap.key.token:
        return [Rule(call, gap.errno) for call in sorted(gap.traced)]
    rules = []
    for call in sorted(gap.traced):
        match = token_match(call, gap.key.token)
        rules.append(Rule(call, gap.errno, match.argument, match.mask, match.value))
    return rules


def token_match(call: str, token: str) -> ArgumentMatch:
    """Where `token` is in `call`'s arguments on this machine (ValueError when that is not known)."""
    alternatives = token.split(" or ")
    if call == "ioctl":
        for name in alternatives:
            value = getattr(termios, name, IOCTLS_NOT_IN_TERMIOS.get(name))
            if isinstance(value, int):
                return ArgumentMatch(1, MASK32, value)
        raise ValueError(f"the value of ioctl request {token} is not known here")
    if call in ("socket", "socketpair"):
        value = getattr(socket, token, None)
        if isinstance(value, int) and token.startswith("AF_"):
            return ArgumentMatch(0, MASK32, value)
        if isinstance(value, int) and token in ("SOCK_CLOEXEC", "SOCK_NONBLOCK"):
            return ArgumentMatch(1, value, value)
        if isinstance(value, int) and token.startswith("SOCK_"):
            return ArgumentMatch(1, SOCKET_TYPE_MASK, value)
        raise ValueError(f"the value of {token} is not known here")
    if call == "futex":
        if token == "FUTEX_CLOCK_REALTIME":
            return ArgumentMatch(1, FUTEX_CLOCK_REALTIME, FUTEX_CLOCK_REALTIME)
        private = token.endswith("_PRIVATE")
        command = FUTEX_COMMANDS.get(token.removesuffix("_PRIVATE"))
        if command is not None:
            mask = FUTEX_COMMAND_MASK | (FUTEX_PRIVATE if private else 0)
            return ArgumentMatch(1, mask, command | (FUTEX_PRIVATE if private else 0))
        raise ValueError(f"{token} is not a futex operation this knows")
    raise ValueError(f"{call}'s {token} cannot be failed alone (seccomp sees only plain arguments of known calls)")


def load_seccomp() -> Any:
    """pyseccomp: libseccomp's Python interface, over the system's libseccomp.so.2 (ImportError saying how to get
    it)."""
    try:
        import pyseccomp
    except (ImportError, OSError) as exc:
        raise ImportError(
            f"failing calls needs pyseccomp and libseccomp ({exc}): pip install 'smartcar[doctor]'"
        ) from None
    return pyseccomp


def write_rules(rules: list[Rule], path: str) -> None:
    """Save rules for `python -m car.doctor.confine`."""
    with open(path, "w") as out:
        json.dump([asdict(rule) for rule in rules], out)


def main(argv: list[str]) -> None:
    """`python -m car.doctor.confine RULES.json -- COMMAND ARGS...`."""
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m car.doctor.confine RULES.json -- COMMAND ARGS...", file=sys.stderr)
        raise SystemExit(2)
    with open(argv[0]) as saved:
        rules = [Rule(**fields) for fields in json.load(saved)]
    try:
        seccomp = load_seccomp()
    except ImportError as exc:
        print(f"car doctor: {exc}", file=sys.stderr)
        raise SystemExit(3) from None
    confined = seccomp.SyscallFilter(seccomp.ALLOW)
    for rule in rules:
        action = seccomp.ERRNO(getattr(errno, rule.errno))
        if rule.argument < 0:
            confined.add_rule(action, rule.call)
        else:
            confined.add_rule(action, rule.call, seccomp.Arg(rule.argument, seccomp.MASKED_EQ, rule.mask, rule.value))
    confined.load()
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
