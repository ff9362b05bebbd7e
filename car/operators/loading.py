"""An operator's Python file, imported as dora imports it, and its `Operator` class.

dora puts the file's folder on `sys.path` and imports the file as a module named after
it, so an operator imports the modules beside it (`from utils import LABELS`). Two
operators of one runtime from files of the same name in different folders get modules
of their own. What goes wrong (no such file, an exception while importing, no
`Operator` class) is an `OperatorLoadError` that names the file and says why, with the
traceback of the user's code.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType


class OperatorLoadError(Exception):
    """An operator's file could not be imported, or has no `Operator` class."""


def load_module(path: Path, name: str | None = None) -> ModuleType:
    """Import (or import again, under its `name`) the Python file at `path`."""
    path = path.resolve()
    if not path.is_file():
        raise OperatorLoadError(f"{path}: no such file")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    name = name or _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise OperatorLoadError(f"{path}: Python cannot import this file")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # SystemExit too: a file that exits while imported did not load
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise OperatorLoadError(f"{path}: importing it failed:\n{user_traceback(exc)}") from None
    return module


def operator_class(module: ModuleType) -> type:
    """The module's `Operator` class."""
    found = getattr(module, "Operator", None)
    if not isinstance(found, type):
        what = "defines no `Operator`" if found is None else f"has an `Operator` that is not a class ({found!r})"
        raise OperatorLoadError(f"{module.__file__}: {what}; an operator file defines `class Operator:`")
    return found


def user_traceback(exc: BaseException) -> str:
    """The traceback of `exc` from the user's code on (the runtime's own frames left out)."""
    here = str(Path(__file__).parent)
    frames = [
        frame for frame in traceback.extract_tb(exc.__traceback__) if not frame.filename.startswith((here, "<frozen "))
    ]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()


def _module_name(path: Path) -> str:
    """The file's name without `.py`, unless a module of that name from another file is loaded."""
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is None or Path(getattr(loaded, "__file__", "") or "").resolve() == path:
        return name
    return f"{name}_{abs(hash(str(path))):x}"
