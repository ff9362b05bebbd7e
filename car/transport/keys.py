"""CurveZMQ keys: who may talk to the coordinator, the daemons and the nodes across machines.

The keys folder is `$CAR_KEYS_DIR`, else `$XDG_CONFIG_HOME/car/keys` (~/.config/car/keys):

    self.key, self.key_secret   this host's key pair (`car keys init`; the secret file mode 0600)
    trusted/NAME.key            public keys this host accepts: its own (`self.key`), and those
                                `car keys trust NAME FILE` added; `trusted/coordinator.key` is the
                                coordinator's, which daemons and `car` commands connect to

With a key pair in the folder every tcp:// socket of car on this host is encrypted and
authenticated: the coordinator's two ports, and the links between nodes on different
machines. A listening socket accepts only peers whose public keys are in `trusted/`
(zmq.auth's authenticator checks them); anything else is refused and logged. Without
keys, car listens on 127.0.0.1 only.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

ENV_VAR = "CAR_KEYS_DIR"
SELF = "self"
COORDINATOR = "coordinator"


class KeysError(Exception):
    """The keys folder is missing something it needs; the message says what to do."""


def keys_dir() -> Path:
    """The keys folder (it may not exist)."""
    given = os.environ.get(ENV_VAR)
    if given:
        return Path(given)
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "car" / "keys"


@dataclass(frozen=True)
class Keys:
    """This host's key pair and where its trusted public keys are."""

    folder: Path
    public: bytes
    secret: bytes

    @property
    def trusted(self) -> Path:
        """The folder of public keys this host accepts."""
        return self.folder / "trusted"

    def peer(self, name: str) -> bytes:
        """The trusted public key called `name` (`coordinator`, a machine's), or KeysError saying how to add it."""
        path = self.trusted / f"{name}.key"
        try:
            public, _ = zmq.auth.load_certificate(path)
        except (OSError, ValueError):
            raise KeysError(
                f"no public key `{name}` in {self.trusted}: copy it from that host's {self.folder.name}/self.key "
                f"and run `car keys trust {name} FILE`"
            ) from None
        return public

    def serve(self, sock: zmq.Socket[bytes]) -> None:
        """Make `sock`'s next binds CurveZMQ servers (peers are checked by the context's authenticator)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def connect_to(self, sock: zmq.Socket[bytes], server: bytes) -> None:
        """Make `sock`'s next connects CurveZMQ clients of the server whose public key is `server`."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = server


def load_keys(folder: Path | None = None) -> Keys | None:
    """This host's keys, or None when it has none (then car stays on 127.0.0.1)."""
    folder = folder or keys_dir()
    secret_file = folder / f"{SELF}.key_secret"
    if not secret_file.exists():
        return None
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as exc:
        raise KeysError(
            f"{secret_file} cannot be read as a CurveZMQ key ({exc}): make new keys with `car keys init --force`"
        ) from None
    if secret is None:
        raise KeysError(f"{secret_file} holds no secret key: make new keys with `car keys init --force`")
    if secret_file.stat().st_mode & 0o077:
        raise KeysError(f"{secret_file} can be read by others: `chmod 600 {secret_file}` (or make new keys)")
    return Keys(folder, public, secret)


def create_keys(folder: Path, coordinator: bool, force: bool = False) -> Keys:
    """Make this host's key pair (secret mode 0600) and trust it; with `coordinator`, as the coordinator's key too."""
    if (folder / f"{SELF}.key_secret").exists() and not force:
        raise KeysError(f"{folder} already has keys: use them, or make new ones with --force")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    (folder / "trusted").mkdir(mode=0o700, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(folder, SELF)
    os.chmod(secret_file, 0o600)
    shutil.copyfile(public_file, folder / "trusted" / f"{SELF}.key")
    if coordinator:
        shutil.copyfile(public_file, folder / "trusted" / f"{COORDINATOR}.key")
    keys = load_keys(folder)
    assert keys is not None
    return keys


def trust(folder: Path, name: str, public_file: Path) -> Path:
    """Accept the public key in `public_file` as `name`; the file it went to."""
    if not name or "/" in name or name.startswith("."):
        raise KeysError(f"`{name}` cannot be a key name: use a plain name such as a machine id")
    try:
        public, _ = zmq.auth.load_certificate(public_file)
    except (OSError, ValueError) as exc:
        raise KeysError(f"{public_file} is not a CurveZMQ public key file ({exc})") from None
    target = folder / "trusted" / f"{name}.key"
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(public_file, target)
    assert public
    return target


def trusted_publics(keys: Keys) -> set[str]:
    """The public keys (Z85) this host trusts."""
    found = set()
    for path in keys.trusted.glob("*.key"):
        try:
            found.add(zmq.auth.load_certificate(path)[0].decode())
        except (OSError, ValueError):
            continue  # not a key file: trusts nothing
    return found


def trust_public(folder: Path, name: str, public: str) -> Path:
    """Accept the public key `public` (Z85) as `name` (written as a public key file); the file it went to."""
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "peer.key"
        source.write_text(
            f'#   car: {name}\'s public key, trusted by pairing\nmetadata\ncurve\n    public-key = "{public}"\n'
        )
        return trust(folder, name, source)


class _Refusals(logging.Handler):
    """Passes the authenticator's refusals (it logs them at debug level) to `say`."""

    def __init__(self, say: Callable[[str], None]):
        super().__init__(logging.DEBUG)
        self._say = say

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith("DENIED"):
            self._say(f"refused a peer without a trusted key ({text})")


class _Peers:
    """Accepts exactly the public keys (Z85) it is given: a run's machines, which the coordinator vouched for."""

    def __init__(self, peers: list[str]):
        self._peers = {peer.encode() for peer in peers}

    def callback(self, _domain: str, client_key: bytes) -> bool:
        return client_key in self._peers


def authenticator(
    ctx: zmq.Context[zmq.Socket[bytes]],
    keys: Keys,
    say: Callable[[str], None] | None = None,
    peers: list[str] | None = None,
) -> ThreadAuthenticator:
    """Start checking CurveZMQ peers of `ctx`'s server sockets: against the trusted keys, or only `peers`
    (public keys, Z85) when given; refusals go to `say`."""
    log = logging.getLogger(f"car.keys.{id(ctx)}")
    log.propagate = False
    if say is not None:
        log.setLevel(logging.DEBUG)
        log.addHandler(_Refusals(say))
    auth = ThreadAuthenticator(ctx, log=log)
    auth.start()
    if peers is None:
        auth.configure_curve(domain="*", location=str(keys.trusted))
    else:
        auth.configure_curve_callback(domain="*", credentials_provider=_Peers(peers))
    return auth
