"""The interface server: one reply reader, many connections, one lifecycle.

Every connection of this process gets reply channels under one
process-specific prefix (``telex.response.<random>!``). One reader receives
that prefix from the layer and dispatches each message to the connection
whose reply channel it names — the only place replies enter the server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, task, threads
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError

from ..layers.base import BaseChannelLayer
from ..protocols.context import LocalResponse
from ..protocols.http import HttpFactory
from ..protocols.proxy import TrustedProxies
from .accesslog import AccessLog
from .bridge import LayerBridge, OrderedSender, make_bridge
from .metrics import Metrics
from .settings import ServerSettings
from .tls import CertificateFiles, TLSListeners

logger = logging.getLogger("telex.server")

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"

#: Seconds a health check may wait for the layer before reporting it down.
HEALTH_CHECK_TIMEOUT = 2.0


def _base36(number: int) -> str:
    digits = []
    while True:
        number, remainder = divmod(number, 36)
        digits.append(_BASE36[remainder])
        if not number:
            return "".join(reversed(digits))


class Server:
    """Implements ``telex.protocols.context.ServerContext`` for the protocols.

    It reaches the channel layer only through its bridge: give the layer
    (the bridge is made for it) or a bridge already made (``run.serve``).
    """

    def __init__(
        self, settings: ServerSettings, channel_layer: Any = None, *, bridge: LayerBridge | None = None
    ) -> None:
        self.settings = settings
        self.bridge = bridge if bridge is not None else make_bridge(channel_layer)
        capabilities = self.bridge.capabilities
        self.channel_full = capabilities.channel_full
        self.message_too_large = capabilities.message_too_large
        self.group_expiry = capabilities.group_expiry
        # Short names: Channels 1.x era layers reject names of 100 characters
        # and more, and their workers add prefixes of their own.
        self.reply_prefix = f"{settings.reply_channel_prefix}{BaseChannelLayer.random_suffix()}!"
        self._next_local = 0
        self._handlers: dict[str, Callable[[dict], None]] = {}
        self.trusted_proxies = TrustedProxies(settings.proxy_headers_trusted)
        self.metrics = Metrics()
        self.access_log = (
            AccessLog(settings.access_log, settings.access_log_format) if settings.access_log else None
        )
        self.http_factory = HttpFactory(self, self.access_log)
        self.websocket: Any = None  # set by the WebSocket support when available
        self.ports: list[Any] = []
        self.tls = TLSListeners()
        self.metrics.gauges["telex_open_connections"] = lambda: len(self.http_factory.connections)
        self._reader_lag = 0.0
        if capabilities.channel_statistics is not None:
            self.metrics.gauges["telex_reply_reader_lag_seconds"] = self._reply_reader_lag
        self.metrics.gauges["telex_open_websockets"] = lambda: (
            self.websocket.open_count if self.websocket else 0
        )

    # -- ServerContext -----------------------------------------------------------

    def new_reply_channel(self, handler: Callable[[dict], None]) -> str:
        name = self.reply_prefix + _base36(self._next_local)
        self._next_local += 1
        self._handlers[name] = handler
        return name

    def release_reply_channel(self, name: str) -> None:
        self._handlers.pop(name, None)

    def make_sender(self) -> OrderedSender:
        return OrderedSender(self.bridge)

    def new_body_channel(self) -> str:
        # Named here rather than by layer.new_channel(), which for network
        # layers is a blocking round trip; 96 random bits make it unique.
        return "http.request.body?" + BaseChannelLayer.random_suffix() + BaseChannelLayer.random_suffix()[:4]

    def upgrade_websocket(self, request: Any) -> bool:
        return self.websocket is not None and self.websocket.upgrade(request)

    def local_response(self, request: Any, path: str) -> defer.Deferred[LocalResponse] | None:
        if path == self.settings.metrics_path:
            headers = [(b"content-type", b"text/plain; version=0.0.4")]
            return defer.succeed((200, headers, self.metrics.render()))
        if path == self.settings.health_path:
            return self._health()
        return None

    def count(self, metric: str, amount: int = 1, **labels: str) -> None:
        self.metrics.count(metric, amount, **labels)

    # -- replies -----------------------------------------------------------------

    def dispatch(self, channel: str, message: dict) -> None:
        handler = self._handlers.get(channel)
        if handler is None:
            logger.debug("dropping message for unknown or finished reply channel %s", channel)
            self.metrics.count("telex_replies_dropped_total")
            return
        handler(message)

    # -- health ------------------------------------------------------------------

    def _health(self) -> defer.Deferred[LocalResponse]:
        """Answer the health path without any worker: is the layer reachable?

        A non-blocking receive on a channel nobody uses is a round trip with
        no side effects; it runs in a thread since foreign layers block.
        """
        headers = [(b"content-type", b"application/json")]
        if self.bridge.kind == "inline":
            return defer.succeed((200, headers, b'{"status": "ok", "layer": "ok"}\n'))
        check = threads.deferToThread(self.bridge.probe)
        check.addTimeout(HEALTH_CHECK_TIMEOUT, reactor)
        check.addCallbacks(
            lambda _: (200, headers, b'{"status": "ok", "layer": "ok"}\n'),
            lambda failure: (503, headers, b'{"status": "down", "layer": "unreachable"}\n'),
        )
        return check

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> defer.Deferred:
        """Start the reply reader and listen on every endpoint."""
        self.bridge.start_reading([self.reply_prefix], self.dispatch)
        self._watches = []
        if self.bridge.capabilities.check_data_lost_async is not None and self.bridge.kind == "asyncio":
            self._watches.append(task.LoopingCall(self._check_data_lost))
        if "telex_reply_reader_lag_seconds" in self.metrics.gauges and self.bridge.kind != "inline":
            self._watches.append(task.LoopingCall(self._refresh_reader_lag))
        for watch in self._watches:
            watch.start(self.settings.layer_check_interval, now=True)
        listening = [self._endpoint(spec).listen(self.http_factory) for spec in self.settings.endpoints]
        if self.settings.tls_endpoints:
            files = CertificateFiles(
                self.settings.ssl_certfile or "",
                self.settings.ssl_keyfile,
                self.settings.ssl_keyfile_password,
                self.settings.ssl_ca_certs,
            )
            listening += [
                self.tls.listen(self._endpoint(spec), files, self.http_factory)
                for spec in self.settings.tls_endpoints
            ]
        for fd in self.settings.adopt_fds:
            self.ports.append(_adopt(fd, self.http_factory))
        result = defer.gatherResults(listening, consumeErrors=True)
        result.addCallback(self.ports.extend)
        return result

    def _reply_reader_lag(self) -> float:
        """Age of the oldest unread reply for this process: how far the reader is behind."""
        statistics = self.bridge.capabilities.channel_statistics
        if self.bridge.kind == "inline" and statistics is not None:
            return statistics(self.reply_prefix).get("messages_max_age", 0.0)
        return self._reader_lag

    def _refresh_reader_lag(self) -> defer.Deferred:
        # A network round trip: never on the reactor thread.
        check = threads.deferToThread(self.bridge.capabilities.channel_statistics, self.reply_prefix)

        def store(statistics: dict) -> None:
            self._reader_lag = float(statistics.get("messages_max_age", 0.0) or 0.0)

        return check.addCallbacks(store, lambda failure: logger.debug("lag check failed: %s", failure.value))

    def _endpoint(self, spec: str) -> Any:
        """``serverFromString``, but TCP listeners get SO_REUSEPORT with
        ``--reuse-port``, and a ``systemd:`` endpoint without its socket
        fails with a message instead of an IndexError."""
        if self.settings.reuse_port and spec.split(":", 1)[0] in ("tcp", "tcp6"):
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

    async def _check_data_lost(self) -> None:
        """Spec (Persistence): a layer that lost its data lost every group
        membership; close the WebSockets (1012) so clients reconnect and rejoin."""
        try:
            check = self.bridge.capabilities.check_data_lost_async
            assert check is not None  # watched only when the layer offers it
            lost = await defer.Deferred.fromFuture(asyncio.ensure_future(check()))
        except Exception as exc:  # unreachable now; the layer reconnects by itself
            logger.debug("data-loss check failed: %s", exc)
            return
        if lost:
            logger.error("the channel layer lost its data (restart without persistence?): closing WebSockets")
            if self.websocket is not None:
                self.websocket.close_all(1012)

    def stop_listening(self) -> defer.Deferred:
        ports, self.ports = self.ports, []
        return defer.gatherResults([defer.maybeDeferred(port.stopListening) for port in ports])

    def in_flight(self) -> int:
        """Connections with a request in progress (idle keep-alives do not count)."""
        busy = 0
        for protocol in self.http_factory.connections:
            channel = getattr(protocol, "_channel", None)
            requests = getattr(channel, "requests", None)
            if requests or getattr(channel, "streams", None):
                busy += 1
        return busy

    def close_idle_connections(self) -> None:
        """At shutdown: close idle keep-alive connections; busy ones close
        after their current response (they stop being persistent)."""
        for protocol in list(self.http_factory.connections):
            channel = getattr(protocol, "_channel", None)
            if channel is None or channel.transport is None:
                continue
            if hasattr(channel, "persistent"):
                channel.persistent = False
            if not getattr(channel, "requests", None) and not getattr(channel, "streams", None):
                channel.transport.loseConnection()

    def connection_closed(self, timeout: float) -> defer.Deferred:
        """Fires when the next connection closes, or after ``timeout`` seconds."""
        waiter: defer.Deferred = defer.Deferred()
        self.http_factory.close_waiters.append(waiter)
        waiter.addTimeout(max(timeout, 0.0), reactor, onTimeoutCancel=lambda *_: None)
        return waiter

    def stop(self) -> None:
        for watch in getattr(self, "_watches", ()):
            if watch.running:
                watch.stop()
        self.bridge.stop()
        if self.access_log is not None:
            self.access_log.close()


def _adopt(fd: int, factory: Any) -> Any:
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


def _split_endpoint(spec: str) -> list[str]:
    """Fields of an endpoint string: colon-separated, backslash escapes the next character."""
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
        kind, *fields = _split_endpoint(spec)
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
