"""How car's long-running processes (a run's daemon, a machine's daemon, the coordinator) take stop signals.

Ctrl-C, SIGTERM and SIGHUP only note the signal; the process's loop sees it and stops in
order (nodes get STOP, then SIGTERM after their grace period). Outside the main thread
(tests that run a daemon in a thread) nothing is installed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def catch_stop_signals(noted: Callable[[int], None]) -> dict[int, Any]:
    """Call `noted(signum)` on each stop signal instead of stopping; the handlers it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, lambda signum, _frame: noted(signum))
    return previous


def restore_signals(previous: dict[int, Any]) -> None:
    """Put back the handlers `catch_stop_signals` replaced."""
    for sig, old in previous.items():
        signal.signal(sig, old)
