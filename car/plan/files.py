"""The files a node needs on a machine that does not share the CLI's files (what `car sync` sends).

A node on a machine that does not share the CLI's files gets, in its `working_dir` there:

- the folder its `path` sits in (for `-m package.module`, the package's folder; for an
  operator node, each operator's file's folder), walked down, relative to the node's folder
  on this machine (`Dataflow.source_folder`): a node beside the dataflow file takes the
  whole project with it;
- minus what is never code: `out/` (runs and recordings), caches, virtual environments,
  version control (`NEVER_SENT`), and what is not a regular file;
- plus the node's `deploy.files` globs, minus its `!GLOB`s.

An absolute path, or a program on PATH, is the machine's own: nothing is sent for it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from car.spec.model import DYNAMIC_PATH, Dataflow, NodeSpec

# Folders never sent: runs and recordings, caches, virtual environments, version control, builds' leftovers.
NEVER_SENT = frozenset(
    {
        "out",
        "__pycache__",
        ".venv",
        "venv",
        ".git",
        ".hg",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        "node_modules",
        "site",
        ".ipynb_checkpoints",
    }
)
NEVER_SENT_SUFFIXES = (".pyc", ".pyo", ".swp", "~")
MAX_FILES = 5000  # more than this in a node's folders is a project folder that is not one (a home, a disk)


class FilesError(ValueError):
    """The files of a node cannot be gathered (too many, unreadable): says which and what to do."""


def node_files(dataflow: Dataflow, node: NodeSpec) -> list[str]:
    """The files (POSIX paths relative to `dataflow.source_folder(node)`) that node needs on its machine, sorted."""
    folder = dataflow.source_folder(node)
    chosen: set[str] = set()
    for start in _code_folders(folder, node):
        chosen.update(_walk(folder, start))
    for glob in node.deploy_files:
        if glob.startswith("!"):
            continue
        for match in folder.glob(glob):
            if match.is_file() and not _never_sent(match.relative_to(folder)):
                chosen.add(match.relative_to(folder).as_posix())
            elif match.is_dir():
                chosen.update(_walk(folder, match))
    for glob in (g[1:] for g in node.deploy_files if g.startswith("!")):
        chosen = {path for path in chosen if not _matches(path, glob)}
    if len(chosen) > MAX_FILES:
        raise FilesError(
            f"node `{node.id}` would take {len(chosen)} files from {folder}: more than {MAX_FILES}; "
            "give it a `working_dir` of its own, or narrow what it takes with `deploy.files: ['!GLOB']`"
        )
    return sorted(chosen)


def _code_folders(folder: Path, node: NodeSpec) -> list[Path]:
    """The folders (under `folder`) the node's code sits in: its path's, or each operator's file's."""
    paths = [op.python for op in node.operators] if node.operators else [node.path]
    found = []
    for path in paths:
        if not path or path == DYNAMIC_PATH or Path(path).is_absolute():
            continue
        if path.startswith("-m "):
            top = path[3:].strip().split(".")[0]
            package = folder / top
            if package.is_dir():
                found.append(package)
            elif (folder / f"{top}.py").is_file():
                found.append(folder)
            continue
        if (folder / path).is_file():
            found.append((folder / path).parent)
    return found


def _walk(folder: Path, start: Path) -> set[str]:
    """The regular files under `start` (relative to `folder`), minus what is never sent."""
    found: set[str] = set()
    for root, dirs, files in os.walk(start):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if d not in NEVER_SENT and not (here / d / "pyvenv.cfg").exists())
        for name in files:
            path = here / name
            relative = path.relative_to(folder)
            if not _never_sent(relative) and path.is_file() and not path.is_symlink():
                found.add(relative.as_posix())
        if len(found) > MAX_FILES:
            break  # said by the caller
    return found


def _never_sent(relative: Path) -> bool:
    return any(part in NEVER_SENT for part in relative.parts[:-1]) or relative.name.endswith(NEVER_SENT_SUFFIXES)


def _matches(path: str, glob: str) -> bool:
    """Whether a relative path matches a glob (`**` any folders), or lies in a folder that does."""
    pure = PurePosixPath(path)
    return pure.match(glob) or any(parent.match(glob) for parent in pure.parents if parent != PurePosixPath("."))
