"""`car keys`: make this host's CurveZMQ keys, trust a peer's, show ours, pair with another host (car.transport.keys,
car.transport.pairing)."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from car.plan.runs import RunError
from car.transport.keys import COORDINATOR, Keys, KeysError, create_keys, keys_dir, load_keys, trust, trust_public
from car.transport.pairing import Channel, Hello, PairingError, short_code

PAIR_PORT = 53291
PAIR_WAIT_S = 120.0


def keys_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car keys`."""
    parser.add_argument(
        "action",
        choices=("init", "trust", "show", "pair"),
        help="make this host's keys; trust a peer's; show ours; pair with another host (both confirm a code)",
    )
    parser.add_argument(
        "name", nargs="?", help="trust: the peer's name (`coordinator`, or a machine id); pair: HOST[:PORT] to reach"
    )
    parser.add_argument("file", nargs="?", help="trust: the peer's public key file (its keys/self.key)")
    parser.add_argument("--coordinator", action="store_true", help="init: this host runs the coordinator")
    parser.add_argument("--force", action="store_true", help="init: replace keys that exist")
    parser.add_argument(
        "--dir", default=None, metavar="DIR", help=f"the keys folder (default {keys_dir()}, or $CAR_KEYS_DIR)"
    )
    parser.add_argument("--listen", action="store_true", help=f"pair: wait for the other host (port {PAIR_PORT})")
    parser.add_argument("--bind", default="0.0.0.0", metavar="ADDR", help="pair --listen: the address to wait on")
    parser.add_argument("--port", type=int, default=PAIR_PORT, help=f"pair: the port (default {PAIR_PORT})")
    parser.add_argument(
        "--as",
        dest="as_name",
        default="",
        metavar="NAME",
        help="pair: the name the other host trusts this one as (default: `coordinator` on the coordinator's host, "
        "else this host's name; a daemon's machine id)",
    )


def cmd_keys(args: argparse.Namespace) -> int:
    """Make, trust and show CurveZMQ keys."""
    folder = Path(args.dir) if args.dir else keys_dir()
    try:
        if args.action == "init":
            keys = create_keys(folder, args.coordinator, args.force)
            print(f"made this host's keys in {folder} (secret key mode 0600)")
            print(f"public key: {keys.public.decode()} ({folder / 'self.key'})")
            if args.coordinator:
                print(f"on each other host: `car keys trust coordinator FILE` with this host's {folder / 'self.key'}")
                print("here, for each other host: `car keys trust NAME FILE` with its self.key")
            else:
                print("here: `car keys trust coordinator FILE` with the coordinator host's self.key;")
                print(f"on the coordinator's host: `car keys trust NAME FILE` with this host's {folder / 'self.key'}")
            return 0
        if args.action == "pair":
            return _pair(args, folder)
        if args.action == "trust":
            if not args.name or not args.file:
                raise RunError("car keys trust NAME FILE: name the peer and give its public key file")
            print(f"trusted `{args.name}`: {trust(folder, args.name, Path(args.file))}")
            return 0
        mine = load_keys(folder)
        if mine is None:
            raise RunError(f"no keys in {folder}: make them with `car keys init`")
        print(f"public key: {mine.public.decode()} ({folder / 'self.key'})")
        for path in sorted(mine.trusted.glob("*.key")):
            print(f"trusted: {path.stem}")
        return 0
    except KeysError as exc:
        raise RunError(str(exc)) from None


def _pair(args: argparse.Namespace, folder: Path) -> int:
    """`car keys pair`: exchange public keys with another host once both people confirm the same code."""
    mine = load_keys(folder)
    if mine is None:
        raise RunError(f"no keys in {folder}: make them with `car keys init` first (on both hosts)")
    if args.listen == bool(args.name):
        raise RunError("car keys pair: give the other host (`car keys pair HOST`), or wait for it with --listen")
    channel = _connect(args) if args.name else _wait(args)
    try:
        theirs = channel.hello(Hello(args.as_name or _own_name(mine), mine.public.decode()))
        code = short_code(mine.public.decode(), theirs.public)
        print(f"pairing with `{theirs.name}`: the code is {code}", flush=True)
        answer = _ask(f"does the other host show {code} too? [y/N] ")
        if not channel.both_confirm(answer):
            print("not paired: a code was not confirmed on both hosts; nothing was trusted", file=sys.stderr)
            return 1
        print(f"trusted `{theirs.name}`: {trust_public(folder, theirs.name, theirs.public)}")
        return 0
    except PairingError as exc:
        raise RunError(f"car keys pair: {exc}") from None
    finally:
        channel.close()


def _own_name(mine: Keys) -> str:
    """The name the other host trusts this one as: `coordinator` where the coordinator's key is this host's."""
    coordinator = mine.trusted / f"{COORDINATOR}.key"
    own = mine.folder / "self.key"
    if coordinator.exists() and coordinator.read_bytes() == own.read_bytes():
        return COORDINATOR
    return socket.gethostname()


def _connect(args: argparse.Namespace) -> Channel:
    host, _, port = str(args.name).partition(":")
    try:
        return Channel(socket.create_connection((host, int(port or args.port)), timeout=PAIR_WAIT_S))
    except (OSError, ValueError) as exc:
        hint = "is `car keys pair --listen` running there?"
        raise RunError(f"car keys pair: cannot reach {args.name} ({exc}); {hint}") from None


def _wait(args: argparse.Namespace) -> Channel:
    server = socket.create_server((args.bind, args.port), reuse_port=False)
    server.settimeout(PAIR_WAIT_S)
    print(f"waiting for `car keys pair THIS-HOST` on {args.bind}:{args.port} ...", flush=True)
    try:
        peer, _ = server.accept()
    except TimeoutError:
        raise RunError(f"car keys pair: nobody came within {PAIR_WAIT_S:g} s") from None
    finally:
        server.close()
    peer.settimeout(PAIR_WAIT_S)
    return Channel(peer)


def _ask(prompt: str) -> bool:
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    return line.strip().lower() in ("y", "yes")
