"""How the reactor talks to a channel layer without ever blocking on it.

Three bridges, chosen by what the layer offers (``make_bridge``, which
resolves the layer's capabilities once: ``capabilities.py``):

* ``InlineBridge`` — an in-process layer (``layer.in_process`` is true, as for
  Telex's memory layer): calls take a lock for microseconds and never wait on
  I/O, so they run on the reactor thread; the reader awaits ``receive_async``.
* ``AsyncioBridge`` — a layer with ``send_async``/``receive_async`` (Telex's
  Redis layer): coroutines run on the asyncio loop under Twisted's asyncio
  reactor, no thread per call; replies are read in batches when the layer
  also offers ``receive_batch_async``.
* ``ThreadedBridge`` — any other ASGI 1 layer (asgi_redis from a Channels 1.x
  install): one reader thread blocks in ``receive(block=True)`` and hands
  messages to the reactor; one FIFO sender thread performs every send, which
  keeps each connection's messages in order, and reports the outcome back.

Every bridge returns a Deferred from ``send`` that fails with the layer's own
``ChannelFull``/``MessageTooLarge``; the protocols decide what that means.
Reader errors are logged and retried with backoff; they never stop the process.
``LayerBridge.errors`` counts reader errors and failed sends (other than those
two), which every send reports through ``OrderedSender``: the server serves it
as ``telex_layer_errors_total``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor
from twisted.python.failure import Failure

from .._metrics import Histogram
from .._outage import OutageLog
from .capabilities import LayerCapabilities

logger = logging.getLogger("telex.server")

Dispatch = Callable[[str, dict], None]

#: Reader back-off after a layer error: doubles from the first to the last.
ERROR_BACKOFF = (0.1, 5.0)
#: A foreign layer whose blocking receive returns at once with nothing (the
#: spec allows it) is asked again after this pause, so it is never spun on.
EMPTY_RECEIVE_PAUSE = 0.01
#: Messages handled back to back before the reader yields to the reactor.
READER_BATCH = 64


class LayerBridge:
    """The server's view of a channel layer."""

    kind = "base"

    def __init__(self, layer: Any, capabilities: LayerCapabilities | None = None) -> None:
        self.layer = layer
        #: What the layer offers, resolved once; the server asks this, never the layer.
        self.capabilities = capabilities or LayerCapabilities.of(layer)
        self.running = False
        self.errors = 0  # reader errors and failed sends: telex_layer_errors_total
        self.send_seconds = Histogram()  # telex_layer_send_duration_seconds
        #: Logs an outage once, with summaries, instead of a line per failure.
        self.outage = OutageLog(logger)
        # Refusals the spec gives the protocols to answer (503, 413, 1013...), not errors.
        self._refusals = (self.capabilities.channel_full, self.capabilities.message_too_large)

    def send(self, channel: str, message: dict) -> defer.Deferred:
        raise NotImplementedError

    def start_reading(self, channels: list[str], dispatch: Dispatch) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.running = False

    def send_failed(self, failure: Failure) -> None:
        if not failure.check(*self._refusals):
            self.errors += 1
            self.outage.failed("sends failed (answered 503 or closed)", failure.value)

    def probe(self) -> None:
        """A non-blocking receive on a channel nobody uses: a round trip with
        no side effects that raises if the layer is unreachable. It may block
        (a network layer): call it off the reactor thread."""
        self.layer.receive(["telex.health"], block=False)

    def _reader_failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.outage.failed("reply reads failed (retried with backoff)", exc)


class AsyncioBridge(LayerBridge):
    kind = "asyncio"

    def send(self, channel: str, message: dict) -> defer.Deferred:
        soon = self.capabilities.send_soon
        if soon is None:
            return defer.Deferred.fromFuture(asyncio.ensure_future(self.layer.send_async(channel, message)))
        # A future without a task and a coroutine per message (Telex's Redis layer).
        try:
            return defer.Deferred.fromFuture(soon(channel, message))
        except Exception as exc:  # an invalid or oversized message, refused before any I/O
            return defer.fail(exc)

    def start_reading(self, channels: list[str], dispatch: Dispatch) -> None:
        self.running = True
        self._reader = asyncio.ensure_future(self._read(channels, dispatch))

    async def _read(self, channels: list[str], dispatch: Dispatch) -> None:
        # A layer offering receive_batch_async hands over every reply already
        # waiting in one round trip (READER_BATCH at most), so a busy server
        # pays one take per batch instead of one per reply.
        many = self.capabilities.receive_batch_async
        backoff = ERROR_BACKOFF[0]
        handled = 0
        while self.running:
            try:
                if many is not None:
                    received = await many(channels, READER_BATCH)
                else:
                    received = [await self.layer.receive_async(channels)]
                backoff = ERROR_BACKOFF[0]
            except asyncio.CancelledError:
                return
            except Exception as exc:
                self._reader_failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, ERROR_BACKOFF[1])
                continue
            for channel, message in received:
                if channel is not None:
                    _dispatch_safely(dispatch, channel, message)
                    handled += 1
            if self.outage.active and any(channel is not None for channel, _ in received):
                # A reply came: the layer is back. (An empty read proves nothing: a layer
                # may wait out an outage inside its receive, then return nothing.)
                self.outage.recovered()
            if handled >= READER_BATCH:
                # An in-process receive with messages waiting returns without
                # suspending; let the reactor run other work between batches.
                handled = 0
                await asyncio.sleep(0)

    def stop(self) -> None:
        super().stop()
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.cancel()


class InlineBridge(AsyncioBridge):
    """An in-process layer: sends are plain calls; replies are awaited like
    any asyncio layer's, on the reactor's own loop."""

    kind = "inline"

    def send(self, channel: str, message: dict) -> defer.Deferred:
        try:
            self.layer.send(channel, message)
        except Exception as exc:
            return defer.fail(exc)
        return defer.succeed(None)


class ThreadedBridge(LayerBridge):
    kind = "threaded"

    def __init__(self, layer: Any, capabilities: LayerCapabilities | None = None) -> None:
        super().__init__(layer, capabilities)
        self._outbox: queue.SimpleQueue[tuple[str, dict, defer.Deferred] | None] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_loop, name="telex-layer-sender", daemon=True)
        self._sender.start()

    def send(self, channel: str, message: dict) -> defer.Deferred:
        deferred: defer.Deferred = defer.Deferred()
        self._outbox.put((channel, message, deferred))
        return deferred

    def _send_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            channel, message, deferred = item
            try:
                self.layer.send(channel, message)
            except Exception as exc:
                reactor.callFromThread(deferred.errback, exc)
            else:
                reactor.callFromThread(deferred.callback, None)

    def start_reading(self, channels: list[str], dispatch: Dispatch) -> None:
        self.running = True
        self._reader = threading.Thread(
            target=self._read_loop, args=(channels, dispatch), name="telex-layer-reader", daemon=True
        )
        self._reader.start()

    def _read_loop(self, channels: list[str], dispatch: Dispatch) -> None:
        backoff = ERROR_BACKOFF[0]
        while self.running:
            started = time.monotonic()
            try:
                channel, message = self.layer.receive(channels, block=True)
                backoff = ERROR_BACKOFF[0]
            except Exception as exc:
                self._reader_failed(exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, ERROR_BACKOFF[1])
                continue
            if channel is not None:
                reactor.callFromThread(_dispatch_safely, dispatch, channel, message)
                if self.outage.active:
                    reactor.callFromThread(self.outage.recovered)
            elif time.monotonic() - started < EMPTY_RECEIVE_PAUSE:
                time.sleep(EMPTY_RECEIVE_PAUSE)

    def stop(self) -> None:
        super().stop()
        self._outbox.put(None)


def _dispatch_safely(dispatch: Dispatch, channel: str, message: dict) -> None:
    try:
        dispatch(channel, message)
    except Exception:
        logger.exception("error handling a message on %s", channel)


def make_bridge(layer: Any, threaded: bool = False) -> LayerBridge:
    """The bridge for ``layer``: inline, asyncio or threaded (see module doc);
    ``threaded`` picks the threaded one whatever the layer offers (``--force-sync``)."""
    capabilities = LayerCapabilities.of(layer)
    if threaded:
        return ThreadedBridge(layer, capabilities)
    if capabilities.in_process and capabilities.receive_async is not None:
        return InlineBridge(layer, capabilities)
    if capabilities.send_async is not None and capabilities.receive_async is not None:
        return AsyncioBridge(layer, capabilities)
    return ThreadedBridge(layer, capabilities)


class OrderedSender:
    """Sends one connection's messages one after another, in order.

    A bridge may run sends concurrently (several Redis connections); a
    connection's own messages must still reach the layer in the order it
    made them, so each starts only when the previous one has finished.
    """

    __slots__ = ("_bridge", "_tail")

    def __init__(self, bridge: LayerBridge) -> None:
        self._bridge = bridge
        self._tail: defer.Deferred | None = None

    def send(self, channel: str, message: dict) -> defer.Deferred:
        result: defer.Deferred = defer.Deferred()
        done: defer.Deferred = defer.Deferred()  # internal: never given to callers

        def run(_: object = None) -> None:
            started = time.monotonic()
            self._bridge.send(channel, message).addBoth(_finish, result, done, self._bridge, started)

        previous, self._tail = self._tail, done
        if previous is None or previous.called:
            run()
        else:
            previous.addCallback(run)
        return result


def _finish(
    outcome: object, result: defer.Deferred, done: defer.Deferred, bridge: LayerBridge, started: float
) -> None:
    bridge.send_seconds.observe(time.monotonic() - started)
    done.callback(None)  # starts the next send before the caller's callbacks run
    if isinstance(outcome, Failure):
        bridge.send_failed(outcome)
        result.errback(outcome)
    else:
        if bridge.outage.active:
            bridge.outage.recovered()
        result.callback(outcome)
