"""What a command read and wrote, from strace's record of its processes (the processcache seed, 003).

`strace -ff -y` writes one file per process (`PREFIX.PID`), so no call is split across
lines; each process's calls are read in order, and its children's after it (a child
starts in its parent's folder at the moment of the fork). Followed: `open`, `openat`,
`creat` (read, or written when opened to write or create), `execve` (the programs run:
inputs), `chdir`/`fchdir` (the folder relative paths resolve in), `rename*` (the new name
is written, the old one gone), `unlink*` (a file written then deleted is no output). A
path relative to a directory descriptor is resolved by the path strace prints for it (`-y`).
Pseudo-filesystems (/proc, /sys, /dev) are left out, as is what `ignore` names.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

TRACED_CALLS = "open,openat,creat,execve,chdir,fchdir,rename,renameat,renameat2,unlink,unlinkat,clone,clone3,fork,vfork"
PSEUDO = ("/proc/", "/sys/", "/dev/")
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")

_LINE = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)")
_FD_PATH = re.compile(r"^(-?\d+|AT_FDCWD)(?:<(.*)>)?$")


@dataclass
class Accesses:
    """The files a command read (before writing them) and wrote, and the programs it ran; absolute paths."""

    read: set[Path] = field(default_factory=set)
    written: set[Path] = field(default_factory=set)
    ran: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)  # files it deleted that it had not written itself

    def inputs(self) -> list[Path]:
        """What it read or ran that it had not written itself, and is a file now."""
        return sorted(p for p in (self.read | self.ran) - self.written if p.is_file())

    def outputs(self) -> list[Path]:
        """What it wrote and is still there (a file written then deleted is none)."""
        return sorted(p for p in self.written if p.is_file())

    def deleted(self) -> list[Path]:
        """What it deleted (or renamed away) that was there before it, and is not there now."""
        return sorted(p for p in self.removed if not p.exists())


def read_accesses(prefix: Path, root_pid: int, cwd: Path, ignore: tuple[Path, ...] = ()) -> Accesses:
    """The accesses in strace's per-process files `prefix.PID`, from the process `root_pid` (started in `cwd`)."""
    found = Accesses()
    queue: deque[tuple[int, Path]] = deque([(root_pid, cwd)])
    seen: set[int] = set()
    while queue:
        pid, folder = queue.popleft()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            lines = Path(f"{prefix}.{pid}").read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            folder = _take(found, line, folder, queue)
    skipped = tuple(str(p) for p in ignore)
    for group in (found.read, found.written, found.ran, found.removed):
        for path in [p for p in group if str(p).startswith(PSEUDO) or str(p).startswith(skipped)]:
            group.discard(path)
    return found


def _take(found: Accesses, line: str, folder: Path, queue: deque[tuple[int, Path]]) -> Path:
    """One call of a process in `folder`; the folder after it."""
    match = _LINE.match(line)
    if match is None:
        return folder
    name, args_text, result = match.groups()
    ok = result != "?" and int(result) >= 0
    args = _split(args_text)
    if name in ("clone", "clone3", "fork", "vfork"):
        if ok and int(result) > 0:
            queue.append((int(result), folder))
        return folder
    if not ok:
        return folder
    if name == "chdir":
        return _resolve(folder, _string(args[0]))
    if name == "fchdir":
        fd = _FD_PATH.match(args[0])
        return Path(fd.group(2)) if fd and fd.group(2) else folder
    if name == "execve":
        found.ran.add(_resolve(folder, _string(args[0])))
    elif name in ("open", "creat"):
        path = _resolve(folder, _string(args[0]))
        _opened(found, path, "O_WRONLY|O_CREAT" if name == "creat" else args[1] if len(args) > 1 else "")
    elif name == "openat":
        _opened(found, _at(folder, args[0], _string(args[1])), args[2] if len(args) > 2 else "")
    elif name in ("rename", "renameat", "renameat2"):
        old, new = (
            (_resolve(folder, _string(args[0])), _resolve(folder, _string(args[1])))
            if name == "rename"
            else (_at(folder, args[0], _string(args[1])), _at(folder, args[2], _string(args[3])))
        )
        if old in found.written:
            found.written.discard(old)
        else:
            found.removed.add(old)
        found.written.add(new)
    elif name in ("unlink", "unlinkat"):
        path = _resolve(folder, _string(args[0])) if name == "unlink" else _at(folder, args[0], _string(args[1]))
        if path in found.written:
            found.written.discard(path)  # written, then deleted: no output
        else:
            found.removed.add(path)
    return folder


def _opened(found: Accesses, path: Path, flags: str) -> None:
    if "O_DIRECTORY" in flags:
        return
    if any(flag in flags for flag in WRITE_FLAGS):
        found.written.add(path)
    elif path not in found.written:
        found.read.add(path)


def _at(folder: Path, dirfd: str, path: str) -> Path:
    """A path relative to a directory descriptor (as strace prints it with -y) or to the current folder."""
    if path.startswith("/"):
        return Path(os.path.normpath(path))
    match = _FD_PATH.match(dirfd.strip())
    if match and match.group(2):
        return Path(os.path.normpath(os.path.join(match.group(2), path)))
    return _resolve(folder, path)


def _resolve(folder: Path, path: str) -> Path:
    return Path(os.path.normpath(os.path.join(folder, path)))


def _string(arg: str) -> str:
    """A string argument as strace prints it (`"..."`), unescaped."""
    text = arg.strip()
    if text.endswith("..."):
        text = text[:-3]
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    return (
        text.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
    )


def _split(args: str) -> list[str]:
    """Top-level arguments (commas inside strings, brackets and braces kept)."""
    parts, depth, quoted, escaped, start = [], 0, False, False, 0
    for k, char in enumerate(args):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "[{(<":
            depth += 1
        elif char in "]})>":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(args[start:k].strip())
            start = k + 1
    parts.append(args[start:].strip())
    return parts
