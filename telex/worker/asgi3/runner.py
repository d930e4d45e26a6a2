"""``Asgi3Worker``: one asyncio loop, on a thread of its own, running every instance
(or the loop of its caller: ``start_on_loop``, for ``telex serve --asgi``).

Two readers feed it: the *intake* takes ``http.request``, ``websocket.connect``
and the shared ``http.disconnect``/``websocket.disconnect`` (the latter for
sockets refused before an accept), and the *local reader* takes this
process's ``telex.asgi3.<random>!`` prefix, where the server sends the frames
and the disconnect of every socket accepted here, and the ``http.disconnect``
of every request whose response started here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ...layers import get_channel_layer
from ...layers.base import BaseChannelLayer, loss_metrics
from ..metrics import WorkerMetrics
from . import socket_channel
from .app import load_application
from .http import HttpInstance
from .layer import LayerAccess
from .lifespan import Lifespan
from .scopes import http_scope, websocket_scope
from .websocket import RESTART_CLOSE_CODE, WebSocketInstance

logger = logging.getLogger("telex.worker")

#: The shared channels the intake listens on.
INTAKE_CHANNELS = ["http.request", "websocket.connect", "http.disconnect", "websocket.disconnect"]

#: HTTP requests one process runs at once; at the limit it stops taking
#: messages, which stay on the layer for other workers.
MAX_REQUESTS = 1000

#: Messages taken from the local prefix per round trip.
LOCAL_BATCH = 64

#: Seconds to pause after a receive failed (a layer outage), before retrying.
RECEIVE_RETRY_PAUSE = 1.0

#: Seconds between heartbeats to each server whose sockets this process holds;
#: a server takes a worker silent for its --worker-heartbeat-timeout (5 s) for dead.
HEARTBEAT_INTERVAL = 1.0

#: The local part, under a server's reply prefix, of its heartbeat channel
#: (``telex/protocols/websocket_messages.py``).
HEARTBEAT_CHANNEL = "telex.heartbeat"


class Asgi3Worker:
    """Run ``application`` (an ASGI 3 app, or its ``module:attribute``) on ``channel_layer``.

    ``start()`` runs the lifespan startup and returns once the worker
    receives (raising :class:`LifespanFailed` if the application's startup
    failed); ``stop(timeout)`` stops receiving, closes this process's
    WebSockets with 1012, lets running requests finish, runs the shutdown.
    The attributes ``telex worker --metrics-port`` reads are the thread
    worker's: ``metrics``, ``channel_layer``, ``running``, ``stopping``.
    """

    def __init__(self, channel_layer: Any, application: Any, *, resume: bool = True) -> None:
        self.channel_layer = get_channel_layer(channel_layer)
        #: Stopping hands sockets back to the server for another worker, instead of closing them.
        self.resume = resume
        self.application = load_application(application)
        socket_channel.serve(self.channel_layer)
        self.prefix = f"telex.asgi3.{BaseChannelLayer.random_suffix()}!"
        self.channels = [*INTAKE_CHANNELS, self.prefix]
        self.metrics = WorkerMetrics()
        self.metrics.registry.gauges.update(loss_metrics(self.channel_layer))
        # Every instance by its reply channel, and by its channel under this process's prefix.
        self._by_reply: dict[str, HttpInstance | WebSocketInstance] = {}
        self._by_local: dict[str, HttpInstance | WebSocketInstance] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # The servers whose sockets live here, for the heartbeat thread (a tuple it reads whole).
        self._sockets_of: dict[str, int] = {}
        self._servers: tuple[str, ...] = ()
        self._beating_stopped = threading.Event()
        self._next_local = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._startup_error: BaseException | None = None
        self._stop_timeout = 10.0
        self._readers: list[asyncio.Task[None]] = []

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Run the lifespan startup, start receiving, return."""
        self._thread = threading.Thread(target=self._run_loop, name="telex-asgi3", daemon=False)
        self._thread.start()
        self._started.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error
        logger.info("worker listening on %s with one asyncio loop", ", ".join(self.channels))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop receiving; close sockets (1012); wait up to ``timeout`` s for requests; shut down."""
        self._stopping.set()
        self._stop_timeout = timeout
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop just closed
                pass
        if self._thread is not None:
            self._thread.join(timeout + 5.0)
        if self.running:
            logger.warning("still running after %.1f s: the asyncio loop", timeout)
        else:
            logger.info("worker stopped")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def consumers_alive(self) -> bool:
        return self.running

    def _run_loop(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # a startup failure is reported by start()
            if not self._started.is_set():
                self._startup_error = exc
            else:
                logger.exception("the asyncio loop of the worker failed")
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._stop = stop = asyncio.Event()
        await self.start_on_loop()
        self._started.set()
        if self._stopping.is_set():
            stop.set()
        await stop.wait()
        await self._finish(RESTART_CLOSE_CODE)

    async def start_on_loop(self) -> None:
        """Start on the running loop, which the caller owns and keeps running (``telex serve
        --asgi`` runs the application on its reactor's loop, with no thread): the lifespan
        startup (:class:`LifespanFailed` if it failed), then the readers, as tasks; returns
        once receiving. :meth:`stop_on_loop` ends it."""
        self._loop = asyncio.get_running_loop()
        self.access = LayerAccess(self.channel_layer, self.metrics)
        self.lifespan = Lifespan(self.application)
        await self.lifespan.startup()
        self._limit = asyncio.Semaphore(MAX_REQUESTS)
        self._readers = [
            asyncio.ensure_future(self._intake()),
            asyncio.ensure_future(self._local_reader()),
        ]
        # Heartbeats even in-process: the server watches every worker naming a receive channel.
        threading.Thread(target=self._heartbeat, name="telex-heartbeat", daemon=True).start()

    async def stop_on_loop(self, timeout: float, close_code: int = RESTART_CLOSE_CODE) -> None:
        """What :meth:`stop` does, awaited on the loop :meth:`start_on_loop` ran on; sockets
        still open close with ``close_code`` (1001 when the whole server is going away)."""
        self._stopping.set()
        self._stop_timeout = timeout
        await self._finish(close_code)

    async def _finish(self, close_code: int) -> None:
        intake, *readers = self._readers
        intake.cancel()
        await self._release_sockets(close_code)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self._stop_timeout)
        for task in self._tasks:
            task.cancel()
        for reader in readers:
            reader.cancel()
        self._beating_stopped.set()
        await asyncio.gather(*self._readers, *self._tasks, return_exceptions=True)
        await self.lifespan.shutdown(self._stop_timeout)

    async def _release_sockets(self, close_code: int) -> None:
        """Hand resumable sockets back to their servers (waiting for the hand-back); close the
        rest with ``close_code`` (1012; 1001 when the whole server is going away)."""
        sockets = [item for item in self._by_local.values() if isinstance(item, WebSocketInstance)]
        moving = [socket for socket in sockets if socket.can_release]  # before any release runs
        await asyncio.gather(
            *[socket.release() if socket.can_release else socket.shut(close_code) for socket in sockets]
        )
        if moving:
            logger.info("handing %d WebSocket(s) back to the server to resume on another worker", len(moving))
            waited = await asyncio.gather(
                *[_wait_event(socket.handed_back, self._stop_timeout) for socket in moving]
            )
            if not all(waited):
                logger.warning(
                    "%d WebSocket(s) not handed back within %gs; their servers resume or close them",
                    waited.count(False),
                    self._stop_timeout,
                )

    def _heartbeat(self) -> None:
        """Tell every server holding one of this process's sockets that the process lives.

        A thread of its own with the layer's blocking send, not a task: a loop
        slowed by a burst of work must not look like a dead process to the
        server, which would then move live sockets.
        """
        while not self._beating_stopped.wait(HEARTBEAT_INTERVAL):
            for server in self._servers:
                try:
                    beat = {"worker": self.prefix, "at": time.time()}
                    self.channel_layer.send(server + HEARTBEAT_CHANNEL, beat)
                except Exception as exc:  # sent again in a second
                    logger.debug("heartbeat to %s failed: %s", server, exc)

    # -- readers -------------------------------------------------------------------------

    async def _intake(self) -> None:
        while True:
            await self._limit.acquire()
            try:
                channel, message = await self.access.receive(INTAKE_CHANNELS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._limit.release()
                logger.warning("receive failed (%s: %s); retrying", type(exc).__name__, exc)
                await asyncio.sleep(RECEIVE_RETRY_PAUSE)
                continue
            if channel == "http.request" and isinstance(message.get("reply_channel"), str):
                self._spawn(self._serve_http(message))  # releases the slot when done
                continue
            self._limit.release()
            if channel == "websocket.connect" and isinstance(message.get("reply_channel"), str):
                self._spawn(self._serve_websocket(message))
            elif channel in ("http.disconnect", "websocket.disconnect"):
                instance = self._by_reply.get(message.get("reply_channel"))  # type: ignore[arg-type]
                if instance is not None:
                    instance.deliver(message)

    async def _local_reader(self) -> None:
        while True:
            try:
                received = await self.access.receive_batch([self.prefix], LOCAL_BATCH)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "receive on %s failed (%s: %s); retrying", self.prefix, type(exc).__name__, exc
                )
                await asyncio.sleep(RECEIVE_RETRY_PAUSE)
                continue
            for channel, message in received:
                instance = self._by_local.get(channel)
                if instance is not None:
                    instance.deliver(message)
                else:
                    logger.debug("dropping a message for the finished instance of %s", channel)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- instances -----------------------------------------------------------------------

    def _new_local(self) -> str:
        local = f"{self.prefix}{self._next_local:x}"
        self._next_local += 1
        return local

    def _register(self, instance: HttpInstance | WebSocketInstance) -> None:
        server = _server_of(instance)
        if server is not None:
            self._sockets_of[server] = self._sockets_of.get(server, 0) + 1
            if self._sockets_of[server] == 1:
                self._servers = tuple(self._sockets_of)
        self._by_reply[instance.reply_channel] = instance
        self._by_local[instance.local_channel] = instance

    def _forget(self, instance: HttpInstance | WebSocketInstance) -> None:
        server = _server_of(instance)
        if server is not None:
            self._sockets_of[server] -= 1
            if not self._sockets_of[server]:
                del self._sockets_of[server]
                self._servers = tuple(self._sockets_of)
        self._by_reply.pop(instance.reply_channel, None)
        self._by_local.pop(instance.local_channel, None)

    async def _serve_http(self, message: dict) -> None:
        try:
            request = HttpInstance(self.access, message, self._new_local())
            await self._serve("http.request", request, http_scope, message)
        finally:
            self._limit.release()

    async def _serve_websocket(self, message: dict) -> None:
        socket = WebSocketInstance(self.access, message, self._new_local(), resume=self.resume)
        try:
            await self._serve("websocket.connect", socket, websocket_scope, message)
        finally:
            socket.finish()

    async def _serve(
        self,
        channel: str,
        instance: HttpInstance | WebSocketInstance,
        scope_of: Callable[[dict, dict[str, Any]], dict],
        message: dict,
    ) -> None:
        """Run one application instance, reachable by its channels while it lives, and measured."""
        self._register(instance)
        started = time.monotonic()
        self.metrics.started()
        ok = False
        try:
            ok = await instance.run(self.application, scope_of(message, self.lifespan.state))
        finally:
            try:
                if isinstance(instance, WebSocketInstance) and instance.releasing:
                    # Its channel stays this process's until the server took back what it held.
                    await _wait_event(instance.handed_back, self._stop_timeout)
            finally:
                self._forget(instance)
                self.metrics.consumed(channel, time.monotonic() - started, not ok)


async def _wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Whether ``event`` was set within ``timeout`` seconds."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


def _server_of(instance: HttpInstance | WebSocketInstance) -> str | None:
    """The reply prefix of the server holding a WebSocket (its heartbeats go there); None for HTTP."""
    bang = instance.reply_channel.find("!")
    if not isinstance(instance, WebSocketInstance) or bang < 0:
        return None
    return instance.reply_channel[: bang + 1]
