"""Where the server listens: Twisted endpoint strings, SO_REUSEPORT and adopted sockets.

``listening_endpoint`` turns one endpoint string into something with
``listen(factory)``: Twisted's ``serverFromString`` for every kind it knows
(``tcp:``, ``unix:``, ``ssl:``, ``systemd:``, plugins), or, with
``--reuse-port``, a TCP listener bound here. ``adopt`` listens on a socket
that is already bound (``--fd``). A plain module rather than a Twisted
endpoint plugin: plugins are found through a cache Twisted writes into
site-packages, and an ``fd:`` plugin would clash with Daphne's.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError


def listening_endpoint(spec: str, reuse_port: bool = False) -> Any:
    """``serverFromString``, but TCP listeners get SO_REUSEPORT with
    ``reuse_port``, and a ``systemd:`` endpoint without its socket fails with
    a message instead of an IndexError."""
    if reuse_port and spec.split(":", 1)[0] in ("tcp", "tcp6"):
        return ReusePortEndpoint.from_string(spec)
    try:
        return serverFromString(reactor, spec)
    except (IndexError, KeyError) as exc:
        if not spec.startswith("systemd:"):
            raise
        raise ValueError(
            f"{spec}: no such socket passed by systemd (LISTEN_FDS and LISTEN_PID unset, "
            "or set for another process); or adopt it with --fd 3"
        ) from exc


def adopt(fd: int, factory: Any) -> Any:
    """Listen on an already-bound socket (``--fd``, systemd socket activation)."""
    try:
        with socket.socket(fileno=os.dup(fd)) as probe:
            family = probe.family
    except OSError as exc:
        raise OSError(f"file descriptor {fd} is not a socket: {exc}") from exc
    # Twisted requires a non-blocking socket; inherited ones usually are not,
    # and a blocking accept() would stall the whole reactor.
    os.set_blocking(fd, False)
    return reactor.adoptStreamPort(fd, family, factory)


def split_endpoint(spec: str) -> list[str]:
    """Fields of an endpoint string: colon-separated, backslash escapes the next character
    (Twisted's own parser is private, so this is the part of it ``ReusePortEndpoint`` needs)."""
    fields, current = [], []
    chars = iter(spec)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


class ReusePortEndpoint:
    """A TCP listener with SO_REUSEPORT (``--reuse-port``): several processes
    bind the same address and the kernel spreads new connections across them.

    Twisted's ``tcp:`` endpoint has no such option, so the socket is bound
    here and adopted, like ``--fd``.
    """

    def __init__(self, interface: str, port: int, backlog: int = 50) -> None:
        self.interface = interface
        self.port = port
        self.backlog = backlog  # Twisted's default for tcp: endpoints

    @classmethod
    def from_string(cls, spec: str) -> ReusePortEndpoint:
        """Accepts what ``tcp:``/``tcp6:`` accept: ``PORT[:interface=H][:backlog=N]``."""
        kind, *fields = split_endpoint(spec)
        values = {"interface": "::" if kind == "tcp6" else ""}
        positional = iter(("port", "interface", "backlog"))
        for field in fields:
            key, sep, value = field.partition("=")
            if not sep:
                key, value = next(positional, "?"), field
            if key not in ("port", "interface", "backlog"):
                raise ValueError(f"{spec}: unknown field {field!r} for --reuse-port")
            values[key] = value
        if "port" not in values:
            raise ValueError(f"{spec}: no port")
        return cls(values["interface"], int(values["port"]), int(values.get("backlog", 50)))

    def listen(self, factory: Any) -> defer.Deferred:
        return defer.execute(self._listen, factory)

    def _listen(self, factory: Any) -> Any:
        family = socket.AF_INET6 if ":" in self.interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        with sock:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((self.interface, self.port))
                sock.listen(self.backlog)
            except OSError as exc:
                raise CannotListenError(self.interface, self.port, exc) from exc
            sock.setblocking(False)
            # adoptStreamPort duplicates the descriptor; ours closes on leaving.
            return reactor.adoptStreamPort(sock.fileno(), family, factory)
