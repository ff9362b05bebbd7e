"""Coordinators and daemons that find each other on a LAN: mDNS / DNS-SD with the `zeroconf` package.

A coordinator that listens beyond this host announces `_car-coordinator._tcp` (its daemon
port; its control port and public key in the TXT record); a daemon that listens beyond this
host announces `_car-daemon._tcp` (its machine id and public key). A daemon started without
`--coordinator-addr` looks for a coordinator for DISCOVER_S; `car machines --discover`
lists what answers, paired (its key trusted here) or not. IPv4, on the interfaces of the
address each listens on. `zeroconf` is optional (`pip install smartcar[discovery]`, or
Alpine's package on the car): without it nothing is announced, and looking says why.
"""

from __future__ import annotations

import enum
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


class Kind(enum.StrEnum):
    """What announces itself on the LAN."""

    COORDINATOR = "coordinator"
    DAEMON = "daemon"


SERVICE_TYPES = {Kind.COORDINATOR: "_car-coordinator._tcp.local.", Kind.DAEMON: "_car-daemon._tcp.local."}
KINDS = {service_type: kind for kind, service_type in SERVICE_TYPES.items()}
DISCOVER_S = 3.0
LOOPBACKS = ("127.0.0.1", "localhost", "::1")
MDNS_GROUP, MDNS_PORT = "224.0.0.251", 5353


class DiscoveryUnavailable(Exception):
    """mDNS cannot be used here (the zeroconf package is missing); the message says how to get it."""


@dataclass(frozen=True)
class Found:
    """One coordinator or daemon that answered on the LAN."""

    kind: Kind
    name: str  # a daemon's machine id; a coordinator's host name
    address: str
    port: int  # a coordinator's daemon port (0 for a daemon)
    control_port: int = 0  # a coordinator's port for car commands
    public_key: str = ""  # Z85, when it has keys


def _zeroconf() -> Any:
    try:
        import zeroconf
    except ImportError:
        raise DiscoveryUnavailable(
            "finding machines on the LAN needs the zeroconf package: `pip install 'smartcar[discovery]'`"
        ) from None
    return zeroconf


def addresses_for(listen: str) -> list[str]:
    """The IPv4 addresses to announce for something listening at `listen` ([] on this host only)."""
    if listen in LOOPBACKS:
        return []
    if listen not in ("*", "0.0.0.0", ""):
        try:
            socket.inet_aton(listen)
            return [listen]
        except OSError:
            pass  # an interface name: every address
    zeroconf = _zeroconf()
    try:
        return [a for a in zeroconf.get_all_addresses() if not a.startswith("127.")]
    except OSError:  # no netlink socket to list the interfaces with (StarryOS): the one multicast leaves by
        return [a for a in [_multicast_address()] if a]


def _multicast_address() -> str:
    """The address of the interface mDNS packets leave by, found without listing interfaces (a UDP socket
    connected to the mDNS group sends nothing); "" when there is none."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((MDNS_GROUP, MDNS_PORT))
            address: str = probe.getsockname()[0]
    except OSError:
        return ""
    return "" if address.startswith(("127.", "0.")) else address


@contextmanager
def announced(
    kind: Kind, name: str, listen: str, port: int = 0, properties: dict[str, str] | None = None
) -> Iterator[None]:
    """Announce a coordinator or daemon (`kind`) while the block runs; nothing where it listens on this host only, or
    zeroconf is missing."""
    try:
        addresses = addresses_for(listen)
    except DiscoveryUnavailable:
        addresses = []
    if not addresses:
        yield
        return
    zeroconf = _zeroconf()
    type_ = SERVICE_TYPES[kind]
    info = zeroconf.ServiceInfo(
        type_,
        f"{name}.{type_}",
        addresses=[socket.inet_aton(a) for a in addresses],
        port=port,
        properties=properties or {},
        server=f"car-{kind}-{_label(name)}.local.",  # its own host record: two hosts may have one host name
    )
    try:
        zc = zeroconf.Zeroconf(interfaces=addresses, ip_version=zeroconf.IPVersion.V4Only)
        zc.register_service(info, allow_name_change=True)
    except Exception as exc:  # no multicast on that network, a name taken: it runs on, unannounced
        print(f"car: not announced on the LAN (mDNS): {exc}", file=sys.stderr)
        yield
        return
    try:
        yield
    finally:
        try:
            zc.unregister_service(info)
        finally:
            zc.close()


def _label(name: str) -> str:
    """A DNS label from a name (letters, digits and `-`)."""
    return "".join(c if c.isalnum() or c == "-" else "-" for c in name)[:50] or "unnamed"


def discover(seconds: float = DISCOVER_S, kinds: tuple[Kind, ...] = tuple(Kind)) -> list[Found]:
    """What answers on the LAN within `seconds` (DiscoveryUnavailable without zeroconf)."""
    zeroconf = _zeroconf()
    found: dict[str, Found] = {}
    types = [SERVICE_TYPES[kind] for kind in kinds]
    try:
        zc = zeroconf.Zeroconf(ip_version=zeroconf.IPVersion.V4Only)
    except OSError:  # no netlink socket to list the interfaces with (StarryOS): listen on the default one
        zc = zeroconf.Zeroconf(interfaces=zeroconf.InterfaceChoice.Default, ip_version=zeroconf.IPVersion.V4Only)

    def on_change(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        if state_change is not state_change.__class__.Added:
            return
        info = zc.get_service_info(service_type, name, timeout=1000)
        if info is None or not info.parsed_addresses():
            return
        props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        found[name] = Found(
            kind=KINDS[service_type],
            name=props.get("machine") or name.removesuffix("." + service_type),
            address=info.parsed_addresses()[0],
            port=info.port or 0,
            control_port=int(props.get("control", "0") or 0),
            public_key=props.get("key", ""),
        )

    browser = zeroconf.ServiceBrowser(zc, types, handlers=[on_change])
    try:
        time.sleep(seconds)  # a listening window: answers come when they come
    finally:
        browser.cancel()
        zc.close()
    return sorted(found.values(), key=lambda f: (f.kind, f.name))
