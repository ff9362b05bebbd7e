"""Direct links between two nodes on one machine: a Unix SOCK_DGRAM socket pair.

Messages between nodes the daemon starts on this machine go through one socket pair
per (sender node, receiver node) instead of ZeroMQ. The sender's send wakes the
receiver directly: one hand-off in the kernel, where ZeroMQ takes three thread
wake-ups (sender -> its I/O thread -> the receiver's I/O thread -> receiver), which
costs about 100 µs a message on a small machine. Each send is one whole message (the
socket keeps message boundaries) or fails at once when the link is full, which the
sender counts as a drop, as it does for a full ZeroMQ link.

Datagrams, not SOCK_SEQPACKET: the car's kernel (Starry OS, `car doctor`) has Unix
SOCK_STREAM and SOCK_DGRAM sockets, and on Linux a datagram socket pair does all a
sequenced-packet pair did here. A Unix datagram is never lost or reordered; it keeps its
boundaries; the two ends of a pair are each other's peers, so the limit on queued datagrams
(net.unix.max_dgram_qlen, 10 by default) does not apply to them, only the send buffer, as
for sequenced packets (measured: the same 10,923 64-byte messages queue before a send
would block, the same largest message). What a datagram pair lacks, an end-of-file when
the other end closes, nothing here used: the daemon keeps both ends open for the whole run.

Tried and measured instead (2-core CI machine): a stream socket that a reader drains
with one read. The kernel still keeps each send as its own buffer (reading costs ~0.6 µs
each, against ~1.7 µs per datagram receive), and taking only whole messages needs a look
first (MSG_PEEK) whose cost grows with the backlog: 125,000 messages/s against 181,000
with datagrams. Without that look, a node that fails between two reads would leave half a
message to the node that restarts in its place. Python has no recvmmsg; called through
ctypes, it took 1.2-1.3 µs a message against 1.7-1.8 for one receive each (batches of 64):
not worth a second receive path, with its fallback, in the node's hottest loop.

The daemon creates the pairs before it starts any node, keeps both ends open for the
whole run and hands each node its ends as inherited file descriptors, so a node may
send before its reader runs, and a restarted node gets its ends back with whatever
was queued for it. The daemon's timer thread reaches each node that reads a timer the
same way (one more pair per such node), so a tick also costs one wake-up. Nodes started
by hand (`path: dynamic`), backpressure inputs and the daemon's other messages stay on
ZeroMQ.
"""

from __future__ import annotations

import fcntl
import socket
from functools import cache

KIND = socket.SOCK_DGRAM
SEND_BUFFER_BYTES = 4 * 1024 * 1024  # asked for; the kernel caps it at net.core.wmem_max (and doubles it)
_OVERHEAD = 32  # bytes of a send buffer no message can use


@cache
def unavailable() -> str | None:
    """Why this kernel cannot make Unix datagram socket pairs (then every link stays on ZeroMQ); None: it can."""
    try:
        first, second = socket.socketpair(socket.AF_UNIX, KIND)
    except OSError as exc:
        return f"socketpair(AF_UNIX, SOCK_DGRAM) failed: {exc.strerror or exc}"
    first.close()
    second.close()
    return None


def supported() -> bool:
    """Whether this kernel has Unix datagram socket pairs."""
    return unavailable() is None


def pair() -> tuple[socket.socket, socket.socket]:
    """A new direct link: both ends, on descriptors above 2, with the largest send buffer the kernel allows.
    OSError when the kernel cannot make one (too many open files, say)."""
    ends = [_above_stdio(end) for end in socket.socketpair(socket.AF_UNIX, KIND)]
    for end in ends:
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    return ends[0], ends[1]


def _above_stdio(sock: socket.socket) -> socket.socket:
    """The socket on a descriptor above 2: a child's stdin, stdout and stderr are replaced at its start
    (a daemon started with a standard stream closed would hand out descriptor 0, 1 or 2)."""
    if sock.fileno() > 2:
        return sock
    moved = socket.socket(fileno=fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 3))
    sock.close()
    return moved


class MissingLinkError(RuntimeError):
    """A node was started without the socket ends its configuration names."""


def open_end(fd: int, node: str) -> socket.socket:
    """A node's end of a direct link, non-blocking; a clear error when the process did not inherit it."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        raise MissingLinkError(
            f"node `{node}` was started without the sockets its daemon hands over (file descriptor {fd}); "
            "let `car launch` start it, or mark it `path: dynamic` and start it with `car run-node`"
        ) from None
    sock.setblocking(False)
    close_on_exec(fd)  # inherited once, from the daemon: not by the node's own children
    return sock


def close_on_exec(fd: int) -> None:
    """Keep `fd` from the programs this process runs. With fcntl: Python's `set_inheritable` tries ioctl(FIOCLEX)
    first, which some kernels (StarryOS) lack."""
    fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)


def largest_message(sock: socket.socket) -> int:
    """The largest message, in bytes, a send on this end can take."""
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)) - _OVERHEAD
