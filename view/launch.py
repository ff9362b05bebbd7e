"""`car launch FILE --view [--view-port P] [--view-host H] [--foxglove [--foxglove-port P]]`: the live view beside the run (a `car.launch_options`
provider whose companion is `car view RUN`, car.commands.extensions). It is loaded by every `car launch`, so it imports
nothing heavy: the view itself runs in the companion process."""

from __future__ import annotations

import argparse
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded by every `car launch`: nothing at run time
    from car.spec.model import Dataflow

DEFAULT_PORT = 8887  # the page's (donkeycar's)
FOXGLOVE_PORT = 8765  # Foxglove's own default


class ViewOptions:
    """Registered under the entry point `car.launch_options` as `view`."""

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Declare the options."""
        group.add_argument("--view", action="store_true", help="serve the live web view (prints its URL)")
        group.add_argument("--view-port", type=int, default=DEFAULT_PORT, help=f"its port (default {DEFAULT_PORT})")
        group.add_argument("--view-host", default="127.0.0.1", help="its address (default 127.0.0.1: this host)")
        group.add_argument("--foxglove", action="store_true", help="serve the Foxglove WebSocket protocol too")
        group.add_argument("--foxglove-port", type=int, default=FOXGLOVE_PORT, help=f"(default {FOXGLOVE_PORT})")

    def environment(self, args: argparse.Namespace) -> dict[str, str]:
        """None: the view is a process beside the nodes; ValueError for a bad port, or one taken (so that
        `car launch` refuses before anything starts, naming the option)."""
        wanted = [("--view-port", args.view_port, args.view), ("--foxglove-port", args.foxglove_port, args.foxglove)]
        for option, port, used in wanted:
            if not 0 <= port <= 65535:
                raise ValueError(f"{option} {port}: give 0-65535")
            if used and port:
                _check_free(option, args.view_host, port)
        return {}

    def warnings(self, args: argparse.Namespace, dataflow: Dataflow) -> list[str]:
        """What to know about the options."""
        given = args.view_port != DEFAULT_PORT or args.view_host != "127.0.0.1"
        return ["--view-port and --view-host do nothing without --view"] if given and not args.view else []

    def companions(self, args: argparse.Namespace, run: str) -> list[list[str]]:
        """`car view RUN` when --view or --foxglove was given."""
        if not (args.view or args.foxglove):
            return []
        command = [
            sys.executable,
            "-m",
            "car",
            "view",
            "-d",
            run,
            "--port",
            str(args.view_port),
            "--host",
            args.view_host,
        ]
        command += ["--port-option=--view-port"]  # its errors name the option given to `car launch`
        if args.foxglove:
            command += ["--foxglove", "--foxglove-port", str(args.foxglove_port)] + ([] if args.view else ["--no-page"])
        return [command]  # the view reads the run's car description and track from the run itself


def _check_free(option: str, host: str, port: int) -> None:
    """ValueError when nothing can listen on host:port now (another view, another program)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValueError(
                f"{option} {port}: cannot listen on {host}:{port} ({exc.strerror}); pick another {option}"
            ) from None


OPTIONS = ViewOptions()
