"""Target profiles: what a kernel has, as plain JSON, loaded and checked here.

A profile is a JSON object (the shipped ones are in car/doctor/profiles/, `car doctor
--list-targets`; `--target FILE.json` takes any other):

    {
      "name": "starryos-2e075ac",                  # optional: the file's name without .json
      "target": "Starry-OS/StarryOS@2e075ac ...",  # what kernel, and where the data came from
      "source": "...",                             # optional: where this file was copied or measured from
      "syscalls": ["accept", "bind", ...],         # every system call the kernel dispatches (by Linux's names)
      "flags": {                                   # optional: for a call, the argument tokens it accepts
        "ioctl": {"allow_tokens": ["TCGETS", ...]} # (strace's names); a call not listed takes any
      },
      "errno": {                                   # optional: how the kernel fails what it lacks
        "call": "ENOSYS",                          # a missing call (the default)
        "tokens": {"socket": {"AF_": "EAFNOSUPPORT", "SOCK_": "ESOCKTNOSUPPORT"}}
      },                                           # a missing token, by the token's prefix ("" any; else EINVAL)
      "libc": "musl",                              # optional: the target's C library (glibc, musl)
      "behaviours": [                              # optional: calls it has that behave differently
        {"call": "futex", "tokens": ["FUTEX_WAIT_BITSET"], "timed": true, "note": "..."}
      ]                                            # a call matches with any of `tokens` (and a timeout, if timed)
    }

Names are Linux's own for the target's architecture (`car doctor` maps an x86_64 trace
onto that architecture's table first, car.doctor.arch).
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).with_name("profiles")
DEFAULT = "starryos-2e075ac"


class ProfileError(ValueError):
    """A profile that cannot be read; the message names the file and the field."""


@dataclass(frozen=True)
class Behaviour:
    """A call the target has but runs differently (a warning, not a gap)."""

    call: str
    tokens: frozenset[str]  # the call matches with any of these (all calls when empty)
    timed: bool  # only calls that wait with a timeout
    note: str


@dataclass(frozen=True)
class Profile:
    """What a target kernel has: its calls, the tokens some calls accept, how it fails, what behaves differently."""

    name: str
    target: str
    syscalls: frozenset[str]
    allowed_tokens: dict[str, frozenset[str]] = field(default_factory=dict)  # call -> the tokens it accepts
    call_errno: str = "ENOSYS"
    token_errno: dict[str, dict[str, str]] = field(default_factory=dict)  # call -> token prefix -> errno name
    libc: str = ""
    behaviours: tuple[Behaviour, ...] = ()
    source: str = ""

    def has_call(self, call: str) -> bool:
        """Whether the target dispatches `call`."""
        return call in self.syscalls

    def token_allowed(self, call: str, token: str) -> bool:
        """Whether the target takes `token` in `call` (a call without a token list takes any). strace names an
        ambiguous ioctl request `A or B`: allowed when either is."""
        allowed = self.allowed_tokens.get(call)
        return allowed is None or any(alternative in allowed for alternative in token.split(" or "))

    def errno_for_token(self, call: str, token: str) -> str:
        """The errno the target fails `token` in `call` with (by the longest matching prefix; EINVAL unknown)."""
        prefixes = self.token_errno.get(call, {})
        matching = [prefix for prefix in prefixes if token.startswith(prefix)]
        return prefixes[max(matching, key=len)] if matching else "EINVAL"

    def behaviour_of(self, call: str, tokens: frozenset[str], timed: bool) -> Behaviour | None:
        """The behaviour a call made with `tokens` (and a timeout, when `timed`) runs into, if any."""
        for behaviour in self.behaviours:
            matches = behaviour.call == call and (not behaviour.tokens or behaviour.tokens & tokens)
            if matches and (timed or not behaviour.timed):
                return behaviour
        return None


def shipped() -> list[str]:
    """The names of the profiles that come with car."""
    return sorted(path.stem for path in SHIPPED.glob("*.json"))


def load_profile(name_or_path: str | None) -> Profile:
    """A shipped profile by name, or a profile file; ProfileError naming what is wrong."""
    name = name_or_path or DEFAULT
    path = Path(name)
    if not path.suffix:
        path = SHIPPED / f"{name}.json"
        if not path.is_file():
            raise ProfileError(f"no target profile `{name}` (shipped: {', '.join(shipped())}; or give a .json file)")
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path}:{exc.lineno}:{exc.colno}: not JSON ({exc.msg})") from None
    return profile_from(raw, str(path))


def profile_from(raw: Any, where: str) -> Profile:
    """A profile from its JSON value; ProfileError naming `where` and the field."""
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: a profile is a JSON object")
    syscalls = _names(raw.get("syscalls"), f"{where}: syscalls")
    if not syscalls:
        raise ProfileError(f"{where}: syscalls: list the system calls the target has")
    flags = raw.get("flags", {})
    if not isinstance(flags, dict):
        raise ProfileError(f"{where}: flags: an object of call -> {{allow_tokens: [...]}}")
    allowed = {}
    for call, rule in flags.items():
        if not isinstance(rule, dict):
            raise ProfileError(f"{where}: flags.{call}: an object with allow_tokens")
        allowed[call] = _names(rule.get("allow_tokens"), f"{where}: flags.{call}.allow_tokens")
    errnos = raw.get("errno", {})
    if not isinstance(errnos, dict):
        raise ProfileError(f"{where}: errno: an object with call and tokens")
    call_errno = _errno(errnos.get("call", "ENOSYS"), f"{where}: errno.call")
    token_errno: dict[str, dict[str, str]] = {}
    for call, prefixes in (errnos.get("tokens") or {}).items():
        if not isinstance(prefixes, dict):
            raise ProfileError(f"{where}: errno.tokens.{call}: an object of token prefix -> errno name")
        token_errno[call] = {p: _errno(e, f"{where}: errno.tokens.{call}.{p}") for p, e in prefixes.items()}
    behaviours = []
    for k, item in enumerate(raw.get("behaviours") or []):
        at = f"{where}: behaviours[{k}]"
        if not isinstance(item, dict) or not isinstance(item.get("call"), str) or not isinstance(item.get("note"), str):
            raise ProfileError(f"{at}: give call and note (and tokens, timed)")
        tokens = _names(item.get("tokens", []), f"{at}.tokens")
        behaviours.append(Behaviour(item["call"], tokens, bool(item.get("timed", False)), item["note"]))
    return Profile(
        name=str(raw.get("name") or Path(where).stem),
        target=str(raw.get("target", "")),
        syscalls=syscalls,
        allowed_tokens=allowed,
        call_errno=call_errno,
        token_errno=token_errno,
        libc=str(raw.get("libc", "")),
        behaviours=tuple(behaviours),
        source=str(raw.get("source", "")),
    )


def _names(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProfileError(f"{where}: a list of names")
    return frozenset(value)


def _errno(value: Any, where: str) -> str:
    if not isinstance(value, str) or not hasattr(errno, value):
        raise ProfileError(f"{where}: {value!r} is not an errno name (ENOSYS, EINVAL, ...)")
    return value
