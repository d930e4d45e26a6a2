"""The worker for Django projects: the toolkit's worker, with Django around each consumer.

Per message, as Channels 1.x's worker did: ``consumer_started`` (which
resets the query log and closes stale database connections), the consumer,
its held sends, then ``consumer_finished`` (which closes stale connections
again) — so a worker thread that lives for weeks treats its database
connection as Django treats it around a request. ``DenyConnection``,
``ChannelSocketException`` and ``ConsumeLater`` are acted on; an
``http.request`` nobody routes is answered by Django's views.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections

from ..worker import Worker as ToolkitWorker
from ..worker.channels import current_context, send_with_retry
from ..worker.ordering import ORDERING_TIMEOUT
from .asgi import DEFAULT_CHANNEL_LAYER, ChannelLayerWrapper, channel_layers
from .exceptions import ChannelSocketException, ConsumeLater, DenyConnection
from .handler import http_disconnect
from .message import Message
from .signals import consumer_finished, consumer_started, worker_process_ready, worker_ready

__all__ = ["DjangoWorker", "Worker", "WorkerGroup"]

logger = logging.getLogger("telex.worker")

#: How often a message may be put back with ``ConsumeLater`` before it is dropped (Channels 1.x's default).
MESSAGE_RETRIES = 10
#: Seconds a ``ConsumeLater`` requeue retries a full channel.
REQUEUE_SECONDS = 0.5


def null_consumer(message: Message, **kwargs: Any) -> None:
    """Takes the unrouted ``websocket.receive``/``disconnect``, as Channels 1.x did."""


class DjangoWorker(ToolkitWorker):
    """Run a Django project's consumers.

    ``channel_layer`` is an alias of ``CHANNEL_LAYERS`` (default
    ``"default"``), its wrapper, or a layer; ``routing`` defaults to the
    alias's ``ROUTING``.
    """

    message_class = Message

    def __init__(
        self,
        channel_layer: Any = DEFAULT_CHANNEL_LAYER,
        routing: Any = None,
        threads: int = 1,
        only_channels: Sequence[str] | None = None,
        exclude_channels: Sequence[str] | None = None,
        *,
        ordering_timeout: float = ORDERING_TIMEOUT,
        message_retries: int = MESSAGE_RETRIES,
    ) -> None:
        if isinstance(channel_layer, str):
            channel_layer = channel_layers[channel_layer]
        if isinstance(channel_layer, ChannelLayerWrapper):
            if routing is None:
                routing = channel_layer.router
            channel_layer = channel_layer.channel_layer
        if routing is None:
            raise ValueError("DjangoWorker needs a routing when given a bare layer")
        self.message_retries = message_retries
        super().__init__(
            channel_layer,
            routing,
            threads,
            only_channels,
            exclude_channels,
            ordering_timeout=ordering_timeout,
        )

    def fallbacks(self) -> dict[str, Callable[..., Any]]:
        from .handler import ViewConsumer

        # Channels 1.x consumed every WebSocket channel, so unrouted frames
        # never fill the server's sends; Django's views answer every request.
        return {
            **super().fallbacks(),
            "http.request": ViewConsumer(),
            # Marks the reply channel gone, so ViewConsumer stops a streaming response.
            "http.disconnect": http_disconnect,
            "websocket.receive": null_consumer,
            "websocket.disconnect": null_consumer,
        }

    def start(self) -> None:
        worker_process_ready.send(sender=type(self))
        super().start()
        for _ in range(self.threads):
            worker_ready.send(sender=self)

    def _consume(self, wake_channel: str) -> None:
        try:
            super()._consume(wake_channel)
        finally:
            # Thread-local connections would otherwise stay open until the process exits.
            connections.close_all()

    def run_consumer(self, consumer: Callable[..., Any], message: Any, kwargs: dict[str, Any]) -> None:
        context = current_context()
        if message.channel_name == "http.disconnect" and consumer is not http_disconnect:
            http_disconnect(message)  # the project routes it: still stop that streaming response
        consumer_started.send(sender=type(self), environ={})
        if context is not None:
            # After the held sends, as Channels 1.x flushed them before closing connections.
            context.after_flush.append(lambda: consumer_finished.send(sender=type(self)))
        try:
            consumer(message, **kwargs)
        except DenyConnection:
            if message.channel.name != "websocket.connect":
                raise ValueError(
                    "DenyConnection can only be raised in a websocket.connect consumer"
                ) from None
            message.reply_channel.send({"close": True})
        except ChannelSocketException as exc:
            exc.run(message)
        except ConsumeLater:
            self._consume_later(message)
        except Exception:
            if message.channel.name != "http.request" or context is None or context.replied:
                raise
            self._django_500(message, context, sys.exc_info())
        finally:
            if context is None:
                consumer_finished.send(sender=type(self))

    def _consume_later(self, message: Message) -> None:
        content = dict(message.content)
        retries = content.get("__retries__", 0) + 1
        if retries > self.message_retries:
            logger.warning(
                "dropped a message on %s after %d ConsumeLater retries",
                message.channel.name,
                self.message_retries,
            )
            return
        content["__retries__"] = retries
        send_with_retry(self.channel_layer, message.channel.name, content, limit=REQUEUE_SECONDS)

    def _django_500(self, message: Message, context: Any, exc_info: Any) -> None:
        """A consumer raised on ``http.request``: Django's own 500 (the technical page with ``DEBUG``)."""
        from .handler import AsgiHandler

        context.outbox.clear()
        for response in AsgiHandler.exception_messages(message, exc_info):
            context.hold("channel", message.reply_channel.name, response)  # type: ignore[union-attr]


class Worker(DjangoWorker):
    """Channels 1.x's ``channels.worker.Worker``: ``run()`` consumes until SIGTERM or SIGINT.

    ``callback(channel_name, message)`` is called before each consumer.
    ``signal_handlers=False`` leaves the signals to the caller (stop it with
    :meth:`stop`). ``n_threads`` replaces ``WorkerGroup``'s sub-workers.
    """

    def __init__(  # noqa: PLR0917 (Channels 1.x's positional signature)
        self,
        channel_layer: Any = DEFAULT_CHANNEL_LAYER,
        callback: Callable[[str, Message], Any] | None = None,
        message_retries: int = MESSAGE_RETRIES,
        signal_handlers: bool = True,
        only_channels: Sequence[str] | None = None,
        exclude_channels: Sequence[str] | None = None,
        n_threads: int = 1,
    ) -> None:
        self.callback = callback
        self.signal_handlers = signal_handlers
        self._stopped = threading.Event()
        super().__init__(
            channel_layer,
            threads=n_threads,
            only_channels=only_channels,
            exclude_channels=exclude_channels,
            message_retries=message_retries,
        )

    def run_consumer(self, consumer: Callable[..., Any], message: Any, kwargs: dict[str, Any]) -> None:
        if self.callback is not None:
            self.callback(message.channel.name, message)
        super().run_consumer(consumer, message, kwargs)

    def run(self) -> None:
        if self.signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self._stopped.set())
        self.start()
        while not self._stopped.wait(3600):
            pass
        super().stop()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()  # run() returns too
        super().stop(timeout)


class WorkerGroup(Worker):
    """Channels 1.x's thread pool of workers: one worker with ``n_threads`` threads (default: the CPUs)."""

    def __init__(self, *args: Any, n_threads: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, n_threads=n_threads or os.cpu_count() or 1, **kwargs)  # type: ignore[misc]
