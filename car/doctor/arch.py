"""A trace taken on one architecture, seen on another: which system call the target's C library makes instead.

RISC-V 64, AArch64 and LoongArch64 use Linux's generic system-call table, which has none
of the legacy calls x86_64 keeps (`open`, `stat`, `poll`, `select`, `epoll_wait`, `fork`,
`vfork`, ...): their C libraries (glibc and musl alike) make the newer call that does the
same (`openat`, `newfstatat`, `ppoll`, `pselect6`, `epoll_pwait`, `clone`). A call the
target's table has is kept as it is; one it lacks is replaced by the first of its
replacements the table has; a call with none (`arch_prctl`: x86 only) is not made there,
nor is `restart_syscall`, Linux's own way of resuming a sleep a signal interrupted, which
no program asks for (a kernel without it resumes the sleep its own way).
Which calls each architecture has comes from hrw's syscalls-table (the `system-calls`
package), read from Linux's own tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

ARCHITECTURES = ("riscv64", "aarch64", "loongarch64", "x86_64")
_TABLE_NAME = {"aarch64": "arm64"}  # the syscalls-table's name for an architecture, where it differs

# A legacy call -> what a C library makes on a table without it, in order of preference.
REPLACEMENTS: dict[str, tuple[str, ...]] = {
    "open": ("openat",),
    "creat": ("openat",),
    "stat": ("newfstatat", "statx"),
    "lstat": ("newfstatat", "statx"),
    "fstat": ("newfstatat", "statx"),
    "newfstatat": ("statx",),
    "access": ("faccessat", "faccessat2"),
    "poll": ("ppoll",),
    "select": ("pselect6",),
    "epoll_wait": ("epoll_pwait",),
    "epoll_create": ("epoll_create1",),
    "pipe": ("pipe2",),
    "dup2": ("dup3",),
    "fork": ("clone",),
    "vfork": ("clone",),
    "readlink": ("readlinkat",),
    "mkdir": ("mkdirat",),
    "mknod": ("mknodat",),
    "rmdir": ("unlinkat",),
    "unlink": ("unlinkat",),
    "rename": ("renameat", "renameat2"),
    "renameat": ("renameat2",),
    "chmod": ("fchmodat",),
    "chown": ("fchownat",),
    "lchown": ("fchownat",),
    "link": ("linkat",),
    "symlink": ("symlinkat",),
    "getdents": ("getdents64",),
    "eventfd": ("eventfd2",),
    "signalfd": ("signalfd4",),
    "inotify_init": ("inotify_init1",),
    "alarm": ("setitimer",),
    "pause": ("ppoll",),
    "time": ("clock_gettime",),
    "utime": ("utimensat",),
    "utimes": ("utimensat",),
    "futimesat": ("utimensat",),
    "getpgrp": ("getpgid",),
    "getrlimit": ("prlimit64",),
    "setrlimit": ("prlimit64",),
    "sendfile64": ("sendfile",),
}


KERNEL_ONLY = frozenset({"restart_syscall"})  # made by Linux itself on a program's behalf


class ArchitectureError(ValueError):
    """An architecture this module has no table for."""


@dataclass(frozen=True)
class Mapped:
    """What a traced call is on the target: the same call, another one, or none (`call` is "")."""

    traced: str
    call: str

    @property
    def replaced(self) -> bool:
        """Whether the target makes another call (or none) in its place."""
        return self.call != self.traced


@cache
def calls_of(architecture: str) -> frozenset[str]:
    """The system calls `architecture`'s Linux table has, by name."""
    if architecture not in ARCHITECTURES:
        raise ArchitectureError(f"no system-call table for {architecture} (give one of {', '.join(ARCHITECTURES)})")
    try:
        import system_calls
    except ImportError:
        raise ArchitectureError("car doctor needs the system-call tables: pip install 'smartcar[doctor]'") from None
    table = system_calls.syscalls()
    name = _TABLE_NAME.get(architecture, architecture)
    return frozenset(call for call in table.names() if _has(table, call, name, system_calls.NotSupportedSystemCall))


def _has(table: Any, call: str, architecture: str, missing: type[Exception]) -> bool:
    try:
        table.get(call, architecture)
    except missing:
        return False
    return True


def on_target(traced: str, architecture: str) -> Mapped:
    """The call `architecture`'s C library makes where the trace shows `traced` (x86_64 or the same table)."""
    if traced in KERNEL_ONLY:
        return Mapped(traced, "")
    calls = calls_of(architecture)
    if traced in calls or traced not in calls_of("x86_64"):  # kept; or unknown to every table: left as traced
        return Mapped(traced, traced)
    seen: set[str] = set()
    wanted = list(REPLACEMENTS.get(traced, ()))
    while wanted:
        candidate = wanted.pop(0)
        if candidate in calls:
            return Mapped(traced, candidate)
        if candidate not in seen:
            seen.add(candidate)
            wanted += REPLACEMENTS.get(candidate, ())
    return Mapped(traced, "")
