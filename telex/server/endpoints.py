"""Where the server listens: Twisted endpoint strings, SO_REUSEPORT and adopted sockets.

``listening_endpoint`` turns one endpoint string into something with
``listen(factory)``: Twisted's ``serverFromString`` for every kind it knows
(``tcp:``, ``unix:``, ``ssl:``, ``systemd:``, plugins), or, with
``--reuse-port``, a TCP listener bound here. ``adopt`` listens on a socket
that is already bound (``--fd``). A plain module rather than a Twisted
endpoint plugin: plugins are found through a cache Twisted writes into
site-packages, and an ``fd:`` plugin would clash with Daphne's.

Under ``--workers``/``--reload`` the supervisor binds each endpoint string's
socket (``bind_for_children``) and a child serves it as ``inherited:FD:SPEC``:
the inherited descriptor, listened on as SPEC would be (TLS for ``ssl:``).
Both sides let Twisted parse SPEC and call a stand-in reactor's
``listenTCP``/``listenSSL``/``listenUNIX``, so every argument Twisted
accepts means the same with and without a supervisor.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Any

from twisted.internet import defer, reactor, tcp, unix
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import lockfile
from twisted.python.failure import Failure

#: The smallest accept queue of a supervisor's socket: connections wait there
#: while a child is being replaced.
SHARED_BACKLOG = 1024


def listening_endpoint(spec: str, reuse_port: bool = False) -> Any:
    """``serverFromString``, but TCP listeners get SO_REUSEPORT with
    ``reuse_port``, and a ``systemd:`` endpoint without its socket fails with
    a message instead of an IndexError."""
    if spec.startswith("inherited:"):
        _, fd, inner = spec.split(":", 2)
        return InheritedEndpoint(int(fd), inner)
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
    if family != socket.AF_UNIX:
        return reactor.adoptStreamPort(fd, family, factory)
    # adoptStreamPort would chmod the socket file to 0666 as it starts listening;
    # keep the mode it was bound with (systemd's SocketMode=, unix:PATH:mode=).
    port = AdoptedUnixPort._fromListeningDescriptor(reactor, fd, factory)
    try:
        port.mode = stat.S_IMODE(os.stat(port._bindPath).st_mode)
    except (OSError, ValueError):  # an abstract socket: no file
        pass
    port.startListening()
    return port


class AdoptedUnixPort(unix.Port):
    """A Unix socket someone else bound (the supervisor, systemd): stopping it must
    leave the socket as it is, whereas Twisted's own Port shuts the socket down and
    removes its file. Under ``--workers`` the other processes still serve it when
    one drains or stops (a rolling restart)."""

    _shouldShutdown = False

    def connectionLost(self, reason: Any) -> None:
        if self.lockFile is not None:
            self.lockFile.unlock()
        tcp.Port.connectionLost(self, reason)


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


class _BindingReactor:
    """Stands in for the reactor while Twisted's endpoint for a spec
    "listens": binds the socket and keeps its descriptor instead."""

    def __init__(self, reuse_port: bool) -> None:
        self.reuse_port = reuse_port
        self.unix_paths: list[str] = []
        self.locks: list[lockfile.FilesystemLock] = []

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> int:
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                sock.bind((interface, port))
            except OSError as exc:
                raise CannotListenError(interface, port, exc) from exc
            sock.listen(max(backlog, SHARED_BACKLOG))
            return sock.detach()

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> int:
        return self.listenTCP(port, factory, backlog, interface)

    def listenUNIX(
        self, address: str, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> int:
        if wantPID:  # lockfile=1, the default: as Twisted's own listenUNIX does
            lock = lockfile.FilesystemLock(address + ".lock")
            if not lock.lock():
                raise CannotListenError(None, address, "Cannot acquire lock")
            self.locks.append(lock)
            # The lock was left by a process that died: so was its socket, if any file is one.
            if not lock.clean and os.path.exists(address) and stat.S_ISSOCK(os.stat(address).st_mode):
                os.unlink(address)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with sock:
            try:
                sock.bind(address)
            except OSError as exc:
                raise CannotListenError(None, address, exc) from exc
            self.unix_paths.append(address)
            os.chmod(address, mode)
            sock.listen(max(backlog, SHARED_BACKLOG))
            return sock.detach()

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: Any) -> int:
        return os.dup(fileDescriptor)  # systemd: the socket is bound already


class SharedSockets:
    """The sockets a supervisor binds for its children; unix socket files are its to remove."""

    def __init__(self, reuse_port: bool = False) -> None:
        self._binder = _BindingReactor(reuse_port)
        self.fds: list[int] = []

    def bind(self, spec: str) -> int:
        """Bind what ``spec`` names and keep the descriptor: ValueError (one line)
        for a kind that does not listen on a socket, CannotListenError when binding fails."""
        outcome: list[Any] = []
        try:
            serverFromString(self._binder, spec).listen(None).addBoth(outcome.append)
        except AttributeError:  # it wanted more of the reactor at once
            outcome.append(None)
        if outcome and isinstance(outcome[0], Failure) and not outcome[0].check(AttributeError):
            outcome[0].raiseException()
        if not outcome or not isinstance(outcome[0], int):
            raise ValueError(
                f"endpoint {spec!r} cannot be shared by --workers or --reload: the supervisor binds "
                "sockets for its children, and this endpoint does not listen on one "
                "(tcp:, tcp6:, unix:, ssl: and systemd: do)"
            )
        self.fds.append(outcome[0])
        return outcome[0]

    def remove_unix_paths(self) -> None:
        for path in self._binder.unix_paths:
            if os.path.exists(path):
                os.unlink(path)
        for lock in self._binder.locks:
            lock.unlock()


class _AdoptingReactor:
    """Stands in for the reactor while Twisted's endpoint for a spec listens:
    serves the inherited descriptor instead of binding (TLS as ``listenSSL`` does)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        return adopt(self.fd, factory)

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        return adopt(self.fd, TLSMemoryBIOFactory(contextFactory, False, factory))

    def listenUNIX(
        self, address: str, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> Any:
        return adopt(self.fd, factory)


class InheritedEndpoint:
    """``inherited:FD:SPEC``: a supervisor's socket, served as SPEC would be."""

    def __init__(self, fd: int, spec: str) -> None:
        self.fd = fd
        self.spec = spec

    def listen(self, factory: Any) -> defer.Deferred:
        if self.spec.startswith("systemd:"):
            # The systemd variables named the supervisor, not this child: nothing to parse.
            return defer.execute(adopt, self.fd, factory)
        return serverFromString(_AdoptingReactor(self.fd), self.spec).listen(factory)
