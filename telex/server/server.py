"""The interface server: one reply reader, many connections, one lifecycle.

Every connection of this process gets reply channels under one
process-specific prefix (``telex.response.<random>!``). One reader receives
that prefix from the layer and dispatches each message to the connection
whose reply channel it names — the only place replies enter the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, task, threads

from .._process_group import READY, ProcessGroup, group_health
from ..layers.base import BaseChannelLayer, loss_metrics
from ..protocols.context import LocalResponse
from ..protocols.http import HttpFactory
from ..protocols.proxy import TrustedProxies
from .accesslog import AccessLog
from .bridge import LayerBridge, OrderedSender, make_bridge
from .endpoints import adopt, listening_endpoint
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


def _unused(protocol: Any) -> bool:
    """Whether a connection has yet to tell HTTP/1.1 from HTTP/2: no request seen on it."""
    return getattr(protocol, "_negotiatedProtocol", None) is None


class FinishedRequests:
    """What ``HttpFactory`` tells as each HTTP request finishes (twisted.web
    calls it from ``Request.finish``): its duration goes to the histogram,
    and its line to the access log when there is one."""

    __slots__ = ("access_log", "durations")

    def __init__(self, metrics: Metrics, access_log: AccessLog | None) -> None:
        self.durations = metrics.histogram("telex_http_request_duration_seconds")
        self.access_log = access_log

    def log_http(self, request: Any) -> None:
        duration = time.monotonic() - request.started_at
        self.durations.observe(duration)
        if self.access_log is not None:
            self.access_log.log_http(request, duration)


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
        #: Reply channels whose owner wants to hear of a known data loss.
        self._on_lost: dict[str, Callable[[float], None]] = {}
        self.trusted_proxies = TrustedProxies(settings.proxy_headers_trusted)
        self.metrics = Metrics()
        #: What the metrics path answers: this process's metrics, or (``--workers``) every child's.
        self.render_metrics: Callable[[], bytes] = self.metrics.render
        #: Under ``--workers``: the other children, for the health and metrics paths.
        self.process_group: ProcessGroup | None = None
        self.layer_answered = True
        self.access_log = (
            AccessLog(settings.access_log, settings.access_log_format) if settings.access_log else None
        )
        self.http_factory = HttpFactory(self, FinishedRequests(self.metrics, self.access_log))
        self.websocket: Any = None  # set by the WebSocket support when available
        self.ports: list[Any] = []
        self.tls = TLSListeners()
        self.metrics.gauges["telex_open_connections"] = lambda: len(self.http_factory.connections)
        # Counted by the bridge (reader and sends).
        self.metrics.gauges["telex_layer_errors_total"] = lambda: self.bridge.errors
        self.metrics.gauges.update(loss_metrics(self.bridge.layer))
        self._reader_lag = 0.0
        if capabilities.channel_statistics is not None:
            self.metrics.gauges["telex_reply_reader_lag_seconds"] = self._reply_reader_lag
        self.metrics.gauges["telex_open_websockets"] = lambda: (
            self.websocket.open_count if self.websocket else 0
        )

    # -- ServerContext -----------------------------------------------------------

    def new_reply_channel(
        self, handler: Callable[[dict], None], on_lost: Callable[[float], None] | None = None
    ) -> str:
        name = self.reply_prefix + _base36(self._next_local)
        self._next_local += 1
        self._handlers[name] = handler
        if on_lost is not None:
            self._on_lost[name] = on_lost
        return name

    def register_reply_channel(self, name: str, handler: Callable[[dict], None]) -> None:
        self._handlers[name] = handler

    def release_reply_channel(self, name: str) -> None:
        self._handlers.pop(name, None)
        self._on_lost.pop(name, None)

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
            return defer.succeed((200, headers, self.render_metrics()))
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
        Under ``--workers``, and is every other child ready (``telex._process_group``)?"""
        return self.probe_layer().addCallback(self._health_answer)

    def probe_layer(self) -> defer.Deferred[bool]:
        """Whether the layer answers within ``HEALTH_CHECK_TIMEOUT``; remembered for ``health_state``.

        A non-blocking receive on a channel nobody uses is a round trip with
        no side effects; it runs in a thread since foreign layers block.
        """
        if self.bridge.kind == "inline":
            return defer.succeed(True)
        check: defer.Deferred = threads.deferToThread(self.bridge.probe)
        check.addTimeout(HEALTH_CHECK_TIMEOUT, reactor)
        check.addCallbacks(lambda _: True, lambda failure: False)
        return check.addCallback(self._remember_layer)

    def _remember_layer(self, answered: bool) -> bool:
        self.layer_answered = answered
        return answered

    def _health_answer(self, layer_ok: bool) -> LocalResponse:
        if layer_ok:
            status, body = 200, {"status": "ok", "layer": "ok"}
        else:
            status, body = 503, {"status": "down", "layer": "unreachable"}
        status, body = group_health(self.process_group, status, body, self.health_state())
        return status, [(b"content-type", b"application/json")], json.dumps(body).encode() + b"\n"

    def health_state(self) -> str:
        """This process's state in one word for its group: what the last probe found."""
        return READY if self.layer_answered else "layer unreachable"

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
        # Read from the bridge, which --force-sync replaced after __init__.
        self.metrics.histograms[("telex_layer_send_duration_seconds", ())] = self.bridge.send_seconds
        listening = [
            listening_endpoint(spec, self.settings.reuse_port).listen(self.http_factory)
            for spec in self.settings.endpoints
        ]
        if self.settings.tls_endpoints:
            files = CertificateFiles(
                self.settings.ssl_certfile or "",
                self.settings.ssl_keyfile,
                self.settings.ssl_keyfile_password,
                self.settings.ssl_ca_certs,
            )
            listening += [
                self.tls.listen(listening_endpoint(spec, self.settings.reuse_port), files, self.http_factory)
                for spec in self.settings.tls_endpoints
            ]
        for fd in self.settings.adopt_fds:
            self.ports.append(adopt(fd, self.http_factory))
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
        statistics = self.bridge.capabilities.channel_statistics
        assert statistics is not None  # only scheduled when the layer has statistics
        check = threads.deferToThread(statistics, self.reply_prefix)

        def store(statistics: dict) -> None:
            self._reader_lag = float(statistics.get("messages_max_age", 0.0) or 0.0)

        return check.addCallbacks(store, lambda failure: logger.debug("lag check failed: %s", failure.value))

    async def _check_data_lost(self) -> None:
        """Spec (Persistence): a layer that lost its data lost every group
        membership; close the WebSockets (1012) so clients reconnect and rejoin.
        Requests sent before this check may have lost their request message:
        they are answered 503 now rather than at ``--http-timeout``."""
        checked_at = time.monotonic()
        try:
            check = self.bridge.capabilities.check_data_lost_async
            assert check is not None  # watched only when the layer offers it
            lost = await defer.Deferred.fromFuture(asyncio.ensure_future(check()))
        except Exception as exc:  # unreachable now; the layer reconnects by itself
            logger.debug("data-loss check failed: %s", exc)
            return
        if lost:
            waiting = list(self._on_lost.values())
            logger.error(
                "the channel layer lost its data (restart without persistence?): closing WebSockets, "
                "answering requests still waiting for a response 503 (%d)",
                len(waiting),
            )
            for on_lost in waiting:
                on_lost(checked_at)
            if self.websocket is not None:
                self.websocket.close_all(1012)

    def stop_listening(self) -> defer.Deferred:
        ports, self.ports = self.ports, []
        return defer.gatherResults([defer.maybeDeferred(port.stopListening) for port in ports])

    def in_flight(self) -> int:
        """Connections with a request in progress, or closing while their last response
        is still being written out (idle keep-alives do not count): a process that
        exited then would cut that response off."""
        busy = 0
        for protocol in self.http_factory.connections:
            channel = getattr(protocol, "_channel", None)
            requests = getattr(channel, "requests", None)
            closing = getattr(getattr(channel, "transport", None), "disconnecting", False)
            if requests or getattr(channel, "streams", None) or closing:
                busy += 1
        return busy

    def close_idle_connections(self, keep_unused: bool = False) -> None:
        """At shutdown: close idle keep-alive connections; busy ones close
        after their current response (they stop being persistent).
        ``keep_unused`` spares the connections that have not sent a request yet:
        accepted just before a drain, their request is on its way."""
        for protocol in list(self.http_factory.connections):
            if keep_unused and _unused(protocol):
                continue
            channel = getattr(protocol, "_channel", None)
            if channel is None or channel.transport is None:
                continue
            if hasattr(channel, "persistent"):
                channel.persistent = False
            if not getattr(channel, "requests", None) and not getattr(channel, "streams", None):
                channel.transport.loseConnection()

    def unused_connections(self) -> int:
        """Connections that have not sent a whole request line yet (``close_idle_connections``)."""
        return sum(_unused(protocol) for protocol in self.http_factory.connections)

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
