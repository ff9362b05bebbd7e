"""A real headless Chromium for page tests, driven over the DevTools protocol (a WebSocket, `websockets`).

`chromium()` finds Debian's `chromium` or installs it with apt-get (the test set-up that
needs it), and skips the test with the reason when neither works.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from car.commands.launch import end_process
from tests.debian import debian_program


def chromium_binary() -> str:
    """The path of `chromium`, installing Debian's package when it is missing; skips the test when it cannot."""
    return shutil.which("chromium-browser") or debian_program("chromium", "the page test")


class Page:
    """One browser tab, over the DevTools protocol."""

    def __init__(self, socket: ClientConnection):
        self._socket = socket
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its result (events in between are skipped)."""
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._socket.recv(timeout=30))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll `expression` until it is truthy; its value (AssertionError with the last value on timeout)."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError as exc:  # not loaded yet, or not yet defined
                value = str(exc)
            else:
                if value:
                    return value
            time.sleep(0.2)
        raise AssertionError(f"{expression} stayed {value!r} for {timeout} s")

    def key(self, key: str, code: str, key_code: int) -> None:
        """Press and release one key."""
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=code, windowsVirtualKeyCode=key_code)

    def screenshot(self) -> bytes:
        """A PNG of the page as it is now."""
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])


@contextmanager
def browser_page(url: str, width: int = 1280, height: int = 1000) -> Iterator[Page]:
    """A headless Chromium (started here, ended here) with one tab on `url`."""
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(prefix="car-chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",  # tests run as root in a container
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",  # it writes the port it took into DevToolsActivePort
                "--remote-allow-origins=*",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes too are ours to end
        )
        try:
            tab = _first_tab(Path(profile))
            with connect(tab, max_size=2**26) as socket:
                page = Page(socket)
                page.call("Page.enable")
                page.call("Page.navigate", url=url)
                yield page
        finally:
            end_process(process, grace=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # helpers that outlived it, which still write the profile


def _first_tab(profile: Path, timeout: float = 30.0) -> str:
    """The DevTools WebSocket address of the browser's first tab, once it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            port = int((profile / "DevToolsActivePort").read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as answer:
                tabs = [t for t in json.loads(answer.read()) if t.get("type") == "page"]
            if tabs:
                address: str = tabs[0]["webSocketDebuggerUrl"]
                return address
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"Chromium's DevTools did not answer within {timeout} s")
