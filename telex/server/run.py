"""Run the server until it is told to stop: start-up checks, signals, shutdown.

Shutdown (SIGTERM or SIGINT): stop accepting; close idle connections; let
in-flight HTTP responses finish for up to ``graceful_timeout``; close
WebSockets with 1001 (their ``websocket.disconnect`` messages are sent);
stop the embedded workers (with ``--asgi``: the application's instances end,
then its lifespan shutdown runs); exit 0. A second signal exits at once (status 1).

SIGHUP re-reads the TLS certificates (docs/tls-http2.md); open connections
are not touched.

SIGUSR2 drains for a replacement (a rolling restart under ``--workers``):
stop accepting at once, so new connections go to the other processes; wait
until the WebSockets are gone or ``drain_timeout`` passes; then shut down as
above (the WebSockets left get 1001) and exit 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, task, threads
from twisted.internet.error import CannotListenError, ReactorNotRunning

from .._process_group import WRITE_INTERVAL, group_from_environment
from ..layers import LayerSpecError, get_channel_layer
from ..supervisor import child_index, notify_systemd, supervisor_gone, tell_supervisor_ready
from .bridge import LayerBridge, make_bridge
from .server import Server
from .settings import ServerSettings
from .tls import is_tls_port

logger = logging.getLogger("telex.server")

#: The close code of the sockets still open when the server shuts down (RFC 6455 7.4.1).
GOING_AWAY = 1001
#: Seconds a connection accepted just before a drain has to send its request.
UNUSED_GRACE = 1.0
#: Seconds between two sweeps of idle keep-alive connections while draining.
SWEEP_INTERVAL = 1.0


class ServeError(Exception):
    """Start-up failed for a reason the user can fix; the message says which."""


class LayerUnreachableError(ServeError):
    """The layer did not answer at start: worth a restart later (exit status 1), not a usage error."""


class ApplicationStartupError(ServeError):
    """The ``--asgi`` application's lifespan startup failed: its own problem (exit status 1)."""


def load_layer(spec: str | None, routing: str | None) -> Any:
    if spec is None:
        if routing is None:
            raise ServeError(
                "no channel layer given: pass LAYER (e.g. redis://127.0.0.1:6379/0 or "
                "myproject.asgi:channel_layer), or --routing ROUTING or --asgi APP to run the "
                "application in-process on memory://"
            )
        spec = "memory://"
    try:
        return get_channel_layer(spec)
    except LayerSpecError as exc:
        raise ServeError(str(exc)) from exc
    except ConnectionError as exc:  # a Redis Cluster's slot map is read when the layer is made
        raise LayerUnreachableError(f"channel layer unreachable: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # the user's module failed while importing
        raise ServeError(f"could not load channel layer {spec!r}: {type(exc).__name__}: {exc}") from exc


def check_layer_reachable(bridge: LayerBridge) -> None:
    """Fail at start, with one line, if a network layer cannot be reached."""
    if bridge.capabilities.in_process:
        return
    try:
        bridge.probe()
    except Exception as exc:
        raise LayerUnreachableError(f"channel layer unreachable: {type(exc).__name__}: {exc}") from exc


def asgi_memory_layer() -> Any:
    """``memory://`` for ``telex serve --asgi`` without a LAYER: ``http.request`` holds as many
    requests as the application runs at once. The server may read a few hundred requests in one
    turn of the loop before the application's intake, on the same loop, takes any: at the
    general capacity of 100 the rest were answered 503."""
    from ..layers import InMemoryChannelLayer
    from ..worker.asgi3.runner import MAX_REQUESTS

    return InMemoryChannelLayer(channel_capacity={"http.request": MAX_REQUESTS})


def load_asgi_application(layer: Any, spec: str) -> Any:
    """An ``Asgi3Worker`` for ``--asgi``, to run on the reactor's own loop; a spec that
    names no ASGI 3 application is one line."""
    from ..worker.asgi3 import Asgi3Worker

    try:
        # Nothing to resume on: the server goes away with the application.
        return Asgi3Worker(layer, spec, resume=False)
    except ValueError as exc:  # ApplicationError: the text says why
        raise ServeError(str(exc)) from exc
    except Exception as exc:  # the user's module failed while importing
        raise ServeError(f"could not load ASGI application {spec!r}: {type(exc).__name__}: {exc}") from exc


def serve(
    settings: ServerSettings,
    layer_spec: str | None,
    routing: str | None = None,
    threads: int = 1,
    *,
    asgi: str | None = None,
    signal_handlers: bool = True,
) -> int:
    """Serve until stopped; ``signal_handlers=False`` off the main thread, where the caller stops the reactor.

    (Django's autoreloader runs ``manage.py runserver`` on a thread of its own.)
    With ``asgi``, that ASGI 3 application runs on the reactor's loop as the
    consumer of the layer (``telex serve --asgi``, docs/asgi3.md): its lifespan
    startup runs before the server listens, its shutdown after the drain.
    """
    if asgi is not None and layer_spec is None:
        layer = asgi_memory_layer()
    else:
        layer = load_layer(layer_spec, routing)
    bridge = make_bridge(layer, threaded=settings.force_sync)
    check_layer_reachable(bridge)
    worker = None
    if routing is not None:
        from ..worker import RoutingError, Worker

        try:
            worker = Worker(layer, routing, threads=threads)
        except RoutingError as exc:
            raise ServeError(str(exc)) from exc
        except Exception as exc:
            raise ServeError(f"could not load routing {routing!r}: {type(exc).__name__}: {exc}") from exc
    application = None if asgi is None else load_asgi_application(layer, asgi)
    server = Server(settings, bridge=bridge)
    bridge.outage.summary_interval = settings.outage_summary_interval
    attach_websocket(server)
    state: dict[str, Any] = {"error": None, "started": False, "draining": False, "publishing": None}

    def started(_: Any) -> None:
        # Registered only now: a start that failed has nothing to drain, and its
        # one-line error must come alone.
        reactor.addSystemEventTrigger("before", "shutdown", _shutdown, server, worker, application, settings)
        for port in server.ports:
            logger.info("listening on %s", _describe(port))
        logger.info(
            "Telex serving with %s (%s bridge), reply channels %s",
            type(layer).__name__,
            server.bridge.kind,
            server.reply_prefix,
        )
        if settings.proxy_headers and settings.proxy_headers_trusted == ["127.0.0.1", "::1"]:
            logger.warning(
                "--proxy-headers trusts only loopback peers; name your proxies with "
                "--proxy-headers-trusted ('*' trusts every peer, as Daphne 1.x did)"
            )
        _tune_garbage_collector(settings.gc_threshold)
        if worker is not None:
            worker.start()
            logger.info("running %d consumer thread(s) for %s", threads, routing)
        if application is not None:
            logger.info("running ASGI 3 application %s on the server's asyncio loop", asgi)
        if signal_handlers:
            logger.info("press Ctrl+C (or send SIGTERM) to stop")
        notify_systemd(b"READY=1")
        state["started"] = True
        if child_index() is not None:
            orphan_watch.start(1.0, now=False)
            joined, state["publishing"] = _join_group(server)
            joined.addCallback(lambda _: tell_supervisor_ready())

    def drain() -> None:
        """SIGUSR2: leave the group's accounting to the replacement and drain (``_drain_for_replacement``)."""
        if not state["started"]:
            logger.info("received SIGUSR2 while starting: shutting down")
            reactor.stop()
            return
        if state["draining"]:
            return
        state["draining"] = True
        publishing = state["publishing"]
        if publishing is not None and publishing.running:
            publishing.stop()  # the replacement publishes this index's state now
        defer.ensureDeferred(_drain_for_replacement(server, settings))

    def failed(failure: Any) -> None:
        failure = getattr(failure.value, "subFailure", failure)
        error = failure.value
        if isinstance(error, CannotListenError):
            state["error"] = f"cannot listen on {error.interface or '*'}:{error.port}: {error.socketError}"
        else:
            state["error"] = f"cannot start: {type(error).__name__}: {error}"
        give_up()

    def give_up() -> None:
        """Stop after a failed start; an ``--asgi`` application had its lifespan startup: shut it down."""
        if application is None:
            reactor.stop()
        else:
            _on_loop(application.stop_on_loop(settings.graceful_timeout)).addBoth(lambda _: reactor.stop())

    def application_failed(failure: Any) -> None:
        from ..worker.asgi3 import LifespanFailed

        if failure.check(LifespanFailed):
            state["error"] = f"the application's lifespan startup failed: {failure.value}"
            state["status"] = ApplicationStartupError
        else:
            state["error"] = f"cannot start: {type(failure.value).__name__}: {failure.value}"
        reactor.stop()

    def begin() -> None:
        if application is not None:
            # The lifespan startup first: no connection is taken before the application is ready.
            _on_loop(application.start_on_loop()).addCallbacks(lambda _: listen(), application_failed)
        else:
            listen()

    def listen() -> None:
        try:
            server.start().addCallbacks(started, failed)
        except (ValueError, OSError) as exc:  # bad endpoint string, bad --fd
            state["error"] = f"cannot start: {exc}"
            give_up()
        except Exception as exc:  # anything else must not leave a process that never listens
            logger.debug("start-up failed", exc_info=True)
            state["error"] = f"cannot start: {type(exc).__name__}: {exc}"
            give_up()

    def stop_if_orphaned() -> None:
        if supervisor_gone():
            logger.warning("the supervisor is gone; shutting down")
            orphan_watch.stop()
            reactor.stop()

    orphan_watch = task.LoopingCall(stop_if_orphaned)
    reactor.callWhenRunning(begin)
    if signal_handlers:
        _install_signal_handlers(server, drain)
    reactor.run(installSignalHandlers=False)
    if state["error"]:
        raise state.get("status", ServeError)(state["error"])
    return 0


def _on_loop(coroutine: Any) -> defer.Deferred:
    """A coroutine run as a task of the reactor's asyncio loop, as a Deferred."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


def _join_group(server: Server) -> tuple[defer.Deferred, task.LoopingCall | None]:
    """Under ``--workers``: the health and metrics paths answer for every child
    (``telex._process_group``). With a health path, each child probes the layer
    once a second, so that the others can tell what it would answer.

    Gives what fires once this child's state is first published (a rolling
    restart waits for it, so the health path never misses this child), and
    the loop that publishes it."""
    settings = server.settings
    if settings.metrics_path is None and settings.health_path is None:
        return defer.succeed(None), None
    render = None if settings.metrics_path is None else server.metrics.render
    group = group_from_environment(render, server.health_state)
    if group is None:
        return defer.succeed(None), None
    server.process_group = group
    if render is not None:
        server.render_metrics = group.render
    published: defer.Deferred = defer.Deferred()

    def write(_: object = None) -> None:
        group.write()
        if not published.called:
            published.callback(None)

    def publish() -> defer.Deferred | None:
        if settings.health_path is None:
            write()
            return None
        return server.probe_layer().addCallback(write)

    publishing = task.LoopingCall(publish)
    publishing.start(WRITE_INTERVAL, now=True)
    return published, publishing


def attach_websocket(server: Server) -> None:
    try:
        from ..protocols.websocket import WebSocketSupport
    except ImportError:
        return
    server.websocket = WebSocketSupport(server)


def _describe(port: Any) -> str:
    """A URL to open (``http://127.0.0.1:8000/``), or a Unix socket's path as text."""
    host = port.getHost()
    scheme = "https" if is_tls_port(port) else "http"
    if hasattr(host, "port"):
        address = host.host if ":" not in host.host else f"[{host.host}]"
        return f"{scheme}://{address}:{host.port}/"
    name = getattr(host, "name", host)
    path = name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else str(name)
    return f"{path} (Unix socket{', TLS' if scheme == 'https' else ''})"


def _tune_garbage_collector(threshold: int) -> None:
    """Keep full collections from stalling the reactor.

    The server makes almost no cyclic garbage (about 100 objects per 10,000
    requests, measured), yet with Python's defaults the objects alive in
    the middle of requests keep triggering full collections that re-walk the
    whole start-up heap: tens of milliseconds each. Freezing the start-up heap
    and raising the first threshold took p99 at 16 connections from ~90 ms to
    ~7 ms with the same memory (docs/server.md).
    """
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(threshold, max(second, 20), max(third, 20))


def _install_signal_handlers(server: Server, drain: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT: graceful shutdown. Second: exit at once (status 1).
    SIGHUP: re-read the TLS certificates. SIGUSR2: ``drain`` for a replacement.

    Registered on the asyncio loop, which wakes through its self-pipe: with
    plain ``signal.signal`` a signal delivered to a consumer thread would
    wait until the reactor next woke up for some other reason.
    """
    loop = asyncio.get_event_loop()
    stopping: list[int] = []

    def on_signal(signum: int) -> None:
        if stopping:
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        stopping.append(signum)
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        reactor.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, server.tls.reload)
    loop.add_signal_handler(signal.SIGUSR2, drain)


def _shutdown(server: Server, worker: Any, application: Any, settings: ServerSettings) -> defer.Deferred:
    notify_systemd(b"STOPPING=1")
    logger.info("shutting down: no new connections; %d in flight", server.in_flight())
    return defer.ensureDeferred(_drain(server, worker, application, settings))


async def _drain(server: Server, worker: Any, application: Any, settings: ServerSettings) -> None:
    await server.stop_listening()
    if server.websocket is not None:
        server.websocket.close_all(GOING_AWAY)
    deadline = reactor.seconds() + settings.graceful_timeout
    server.close_idle_connections()
    while server.in_flight() and reactor.seconds() < deadline:
        await server.connection_closed(deadline - reactor.seconds())
    if server.in_flight():
        logger.warning(
            "graceful timeout: closing %d connection(s) with unfinished responses", server.in_flight()
        )
    if worker is not None:
        await threads.deferToThread(worker.stop, settings.graceful_timeout)
    if application is not None:
        # Its sockets heard 1001 from close_all above; any it still holds get 1001 too.
        await _on_loop(application.stop_on_loop(settings.graceful_timeout, GOING_AWAY))
    server.stop()


async def _drain_for_replacement(server: Server, settings: ServerSettings) -> None:
    """Stop accepting (the shared sockets stay open for the other processes); keep
    the WebSockets until their clients leave or ``drain_timeout`` passes, closing
    idle keep-alive connections meanwhile; then the shutdown (1001 for the
    WebSockets left, in-flight HTTP responses get ``graceful_timeout``).

    A connection accepted just before has up to ``UNUSED_GRACE`` to send its
    request: closing it unanswered would look like a reset to its client."""
    websockets = server.websocket.connections if server.websocket is not None else set()
    logger.info(
        "received SIGUSR2: draining: no new connections; %d WebSocket(s) open get up to %g s to close",
        len(websockets),
        settings.drain_timeout,
    )
    await server.stop_listening()
    now = reactor.seconds()
    deadline = now + settings.drain_timeout
    unused_until = now + min(UNUSED_GRACE, settings.drain_timeout)
    while now < deadline:
        waiting_for_unused = now < unused_until
        server.close_idle_connections(keep_unused=waiting_for_unused)
        if not websockets and not (waiting_for_unused and server.unused_connections()):
            break
        await server.connection_closed(min(SWEEP_INTERVAL, deadline - now))
        # A closing connection is counted out of the WebSockets just after the wake-up.
        await task.deferLater(reactor, 0, lambda: None)
        now = reactor.seconds()
    if websockets:
        logger.info("drain timeout: closing %d WebSocket(s) with 1001", len(websockets))
    else:
        logger.info("drained: no WebSocket left open")
    try:
        reactor.stop()
    except ReactorNotRunning:  # a SIGTERM during the drain began the shutdown already
        pass
