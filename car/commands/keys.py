"""`car keys`: make this host's CurveZMQ keys, trust a peer's, show ours (car.transport.keys)."""

from __future__ import annotations

import argparse
from pathlib import Path

from car.plan.runs import RunError
from car.transport.keys import KeysError, create_keys, keys_dir, load_keys, trust


def keys_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `car keys`."""
    parser.add_argument(
        "action", choices=("init", "trust", "show"), help="make this host's keys; trust a peer's; show ours"
    )
    parser.add_argument("name", nargs="?", help="trust: the peer's name (`coordinator`, or a machine id)")
    parser.add_argument("file", nargs="?", help="trust: the peer's public key file (its keys/self.key)")
    parser.add_argument("--coordinator", action="store_true", help="init: this host runs the coordinator")
    parser.add_argument("--force", action="store_true", help="init: replace keys that exist")
    parser.add_argument(
        "--dir", default=None, metavar="DIR", help=f"the keys folder (default {keys_dir()}, or $CAR_KEYS_DIR)"
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
