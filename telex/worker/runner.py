"""The worker: threads that receive from the layer and run the routed consumers.

Per message: build the :class:`Message`, find the route, run the consumer
with its held-send context, then flush the held sends in order and run the
post-flush steps (ordering advance). A consumer that raises is logged with
its channel and traceback; its held sends are discarded, an ``http.request``
gets a 500 and a ``websocket.connect`` is rejected, if nothing was sent to
the reply channel already. The worker goes on.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._outage import SUMMARY_INTERVAL, OutageLog
from ..layers import get_channel_layer
from ..layers.base import loss_metrics
from .channels import ConsumerContext, enter_context, get_default_channel_layer, set_default_channel_layer
from .http import response_messages
from .message import Message
from .metrics import WorkerMetrics
from .ordering import ORDERING_TIMEOUT, skip_stalled
from .routing import Router, RoutingError

__all__ = ["Worker"]

logger = logging.getLogger("telex.worker")


def accept_connection(message: Message) -> None:
    """The default ``websocket.connect`` consumer: the spec asks that connect is always consumed."""
    if message.reply_channel is not None:
        message.reply_channel.send({"accept": True})


def not_found(message: Message) -> None:
    """The default ``http.request`` consumer: a 404 at once, not a 503 after the HTTP timeout.

    Channels 1.x workers always consumed ``http.request`` (Django answered);
    a WebSocket-only project must still answer the browser that loads a page.
    """
    if message.reply_channel is not None:
        for response in response_messages(f"Not Found: {message.get('path')}\n", status=404):
            message.reply_channel.send(response)


class Worker:
    """Run the consumers of ``routing`` on ``threads`` threads.

    ``routing`` is a routing list or a ``"module:attribute"`` string; it is
    checked and compiled here, so errors raise :class:`RoutingError` before
    anything runs. ``only_channels`` / ``exclude_channels`` are globs that
    narrow the channels this worker listens on.

    Integrations (``telex.django``) subclass it: ``message_class`` builds
    the message, ``run_consumer`` wraps every call, and ``fallbacks``
    answers what no route claims.
    """

    message_class: type = Message

    def __init__(
        self,
        channel_layer: Any,
        routing: Any,
        threads: int = 1,
        only_channels: Sequence[str] | None = None,
        exclude_channels: Sequence[str] | None = None,
        *,
        ordering_timeout: float = ORDERING_TIMEOUT,
        outage_summary_interval: float = SUMMARY_INTERVAL,
    ) -> None:
        if type(threads) is not int or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if ordering_timeout <= 0:
            raise ValueError(f"ordering_timeout must be positive, got {ordering_timeout!r}")
        self.channel_layer = get_channel_layer(channel_layer)
        self.router = Router(routing)
        # Channels 1.x does the same: last-resort routes, so connect and
        # requests are always consumed.
        for fallback_channel, fallback in self.fallbacks().items():
            self.router.add_fallback(fallback_channel, fallback)
        channels = self.router.channels
        if only_channels:
            channels = [c for c in channels if any(fnmatch.fnmatchcase(c, g) for g in only_channels)]
        if exclude_channels:
            channels = [c for c in channels if not any(fnmatch.fnmatchcase(c, g) for g in exclude_channels)]
        if not channels:
            raise RoutingError(
                f"no channels to listen on: the routing names {', '.join(self.router.channels)}, "
                "and --only-channels/--exclude-channels left none of them"
            )
        check = getattr(self.channel_layer, "check_channel_name", None)
        for channel in channels:
            if check is not None:
                try:
                    check(channel, receive=True)
                except (TypeError, ValueError) as exc:
                    raise RoutingError(f"routing names an invalid channel: {exc}") from None
        self.channels: list[str] = channels
        self.threads = threads
        self.ordering_timeout = ordering_timeout
        self._stopping = threading.Event()
        # stop() may come from another thread while start() is still starting threads.
        self._lifecycle = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._wake_channels: list[str] = []
        self._owns_default_layer = False
        self.metrics = WorkerMetrics()
        self.metrics.registry.gauges.update(loss_metrics(self.channel_layer))
        self.outage = OutageLog(logger, outage_summary_interval)

    def fallbacks(self) -> dict[str, Callable[..., Any]]:
        """The consumers of messages no route claims, by channel."""
        return {"websocket.connect": accept_connection, "http.request": not_found}

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start the consumer threads (and the ordering sweep); return at once."""
        with self._lifecycle:
            self._start()
        logger.info("worker listening on %s with %d thread(s)", ", ".join(self.channels), self.threads)

    def _start(self) -> None:
        if self._threads:
            raise RuntimeError("this worker has already been started")
        for index in range(self.threads):
            # A private channel per thread, so stop() can wake a blocked
            # receive at once instead of waiting out the layer's timeout.
            wake_channel = self.channel_layer.new_channel("telex.worker.wake?")
            self._wake_channels.append(wake_channel)
            thread = threading.Thread(
                target=self._consume, args=(wake_channel,), name=f"telex-worker-{index}", daemon=False
            )
            self._threads.append(thread)
        if "telex.ordering" in getattr(self.channel_layer, "extensions", ()):
            sweeper = threading.Thread(target=self._sweep, name="telex-worker-ordering", daemon=False)
            self._threads.append(sweeper)
        if get_default_channel_layer() is None:
            # Channel()/Group() in the project's own threads find this layer.
            set_default_channel_layer(self.channel_layer)
            self._owns_default_layer = True
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop receiving, let running consumers finish (up to ``timeout`` s), join."""
        self._stopping.set()
        with self._lifecycle:
            self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        for wake_channel in self._wake_channels:
            try:
                self.channel_layer.send(wake_channel, {"wake": True})
            except Exception:  # a thread still wakes at the layer's receive timeout
                logger.debug("could not wake %s", wake_channel, exc_info=True)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._owns_default_layer and get_default_channel_layer() is self.channel_layer:
            set_default_channel_layer(None)
        running = [thread.name for thread in self._threads if thread.is_alive()]
        if running:
            logger.warning("still running after %.1f s: %s", timeout, ", ".join(running))
        else:
            logger.info("worker stopped")

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def consumers_alive(self) -> bool:
        """Every thread started is still running (for the health check)."""
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    # -- the loop --------------------------------------------------------------

    def _consume(self, wake_channel: str) -> None:
        listen = [*self.channels, wake_channel]
        while not self._stopping.is_set():
            try:
                channel, content = self.channel_layer.receive(listen, block=True)
            except Exception as exc:
                # E.g. Redis restarting: keep the thread, back off a little.
                self.outage.failed("receive retries", exc)
                self._stopping.wait(1.0)
                continue
            if channel is None or channel == wake_channel:
                # Nothing received proves nothing: a layer may wait out an outage inside receive.
                continue
            if self.outage.active:
                self.outage.recovered()
            self.handle(channel, content)

    def _sweep(self) -> None:
        # A quarter of the timeout: a gap is skipped within 1.25 timeouts.
        interval = self.ordering_timeout / 4
        while not self._stopping.wait(interval):
            try:
                skipped = skip_stalled(self.channel_layer, self.ordering_timeout)
            except Exception as exc:
                self.outage.failed("ordering sweeps failed", exc)
            else:
                if skipped:
                    self.metrics.count("telex_worker_ordering_skips_total", len(skipped))
                if self.outage.active:
                    self.outage.recovered()

    def handle(self, channel: str, content: dict) -> None:
        """Run the consumer routed for one message, then flush its held sends."""
        reply_channel = content.get("reply_channel")
        if not isinstance(reply_channel, str):
            reply_channel = None
        context = ConsumerContext(self.channel_layer, reply_channel, self.metrics)
        previous = enter_context(context)
        name = "(no route)"
        started = time.monotonic()
        failed = False
        self.metrics.started()
        try:
            message = self.message_class(content, channel, self.channel_layer)
            found = self.router.match(channel, content)
            if found is None:
                self._no_route(channel, content)
            else:
                consumer, kwargs, name = found
                self.run_consumer(consumer, message, kwargs)
        except Exception:
            logger.exception(
                "consumer %s raised on channel %s (reply channel %s)", name, channel, context.reply_channel
            )
            context.outbox.clear()
            self._after_failure(channel, context)
            failed = True
        finally:
            enter_context(previous)
        try:
            context.flush()
        finally:
            self.metrics.consumed(channel, time.monotonic() - started, failed)

    def run_consumer(self, consumer: Callable[..., Any], message: Any, kwargs: dict[str, Any]) -> None:
        """Call one consumer; subclasses wrap it (signals, connections, exceptions)."""
        consumer(message, **kwargs)

    def _no_route(self, channel: str, content: dict) -> None:
        logger.warning("no route for a message on %s (path %r)", channel, content.get("path"))

    @staticmethod
    def _after_failure(channel: str, context: ConsumerContext) -> None:
        if context.reply_channel is None:
            return
        if context.replied:
            if channel == "http.request":
                # Part of a response went out with immediately=True: end it
                # rather than leave the client waiting on an open response.
                logger.error(
                    "ending the partial response on %s after the consumer raised", context.reply_channel
                )
                context.hold("channel", context.reply_channel, {"content": b"", "more_content": False})
            return
        if channel == "http.request":
            for response in response_messages("500 Internal Server Error\n", status=500):
                context.hold("channel", context.reply_channel, response)
        elif channel == "websocket.connect":
            context.hold("channel", context.reply_channel, {"close": True})
