"""``Channel`` and ``Group``, and the held sends of a running consumer.

Sends made while a consumer runs are *held* in its outbox and sent, in
order, only after it returned (and after its channel session was saved), as
Channels 1.1 does: so the ``accept`` of a ``websocket.connect`` can never
reach the client before the session write a later ``websocket.receive``
depends on. ``send(..., immediately=True)`` skips the outbox.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..layers.base import ChannelFull, check_message, copy_message

__all__ = ["Channel", "Group", "get_default_channel_layer", "set_default_channel_layer"]

logger = logging.getLogger("telex.worker")

#: How long a held send retries on ``ChannelFull`` before it is dropped and
#: logged. The spec says "wait and try again"; a bound keeps a worker thread
#: from waiting forever on a reply channel nobody drains any more.
SEND_RETRY_SECONDS = 30.0

_default_layer: Any = None
_local = threading.local()


def set_default_channel_layer(layer: Any) -> None:
    """The layer ``Channel``/``Group`` use outside a consumer when given none."""
    global _default_layer
    _default_layer = layer


def get_default_channel_layer() -> Any:
    return _default_layer


def _resolve_layer(layer: Any) -> Any:
    if layer is not None:
        return layer
    context = current_context()
    if context is not None:
        return context.channel_layer
    if _default_layer is not None:
        return _default_layer
    raise RuntimeError(
        "no channel layer: pass channel_layer=..., use Channel/Group inside a consumer, "
        "or call telex.worker.channels.set_default_channel_layer()"
    )


def send_with_retry(
    layer: Any, channel: str, content: dict, limit: float = SEND_RETRY_SECONDS, metrics: Any = None
) -> bool:
    """Send, retrying on ``ChannelFull`` with backoff for up to ``limit`` seconds.

    Returns False (and logs) if the channel stayed full. ``metrics`` (a
    worker's ``WorkerMetrics``) counts the retries and the drop.
    """
    full = getattr(layer, "ChannelFull", ChannelFull)
    deadline = time.monotonic() + limit
    delay = 0.005
    while True:
        try:
            layer.send(channel, content)
            return True
        except full:
            if time.monotonic() + delay > deadline:
                logger.error("dropped a message for %s: channel still full after %.0f s", channel, limit)
                if metrics is not None:
                    metrics.count("telex_worker_sends_dropped_total")
                return False
            if metrics is not None:
                metrics.count("telex_worker_send_retries_total")
            # No event tells us when a channel drains (it may be drained by
            # another process), so this is the one place a worker backs off.
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class ConsumerContext:
    """What one consumer call holds: its outbox and post-flush steps."""

    def __init__(self, channel_layer: Any, reply_channel: str | None, metrics: Any = None) -> None:
        self.channel_layer = channel_layer
        self.reply_channel = reply_channel
        self.metrics = metrics  # the worker's WorkerMetrics, or None
        #: True once something went to the reply channel immediately, so the
        #: worker does not add a 500 or a close after it.
        self.replied = False
        self.outbox: list[tuple[str, str, dict]] = []  # (kind, name, content)
        self.after_flush: list[Callable[[], None]] = []

    def hold(self, kind: str, name: str, content: dict) -> None:
        # Checked now, so a bad message raises in the consumer that made it;
        # copied now, so changing the dict after send() changes nothing sent.
        check_message(content)
        self.outbox.append((kind, name, copy_message(content)))

    def flush(self) -> None:
        """Send the held messages in order, then run the post-flush steps."""
        try:
            for kind, name, content in self.outbox:
                try:
                    if kind == "group":
                        self.channel_layer.send_group(name, content)
                    else:
                        send_with_retry(self.channel_layer, name, content, metrics=self.metrics)
                except Exception:
                    logger.exception("sending a held message to %s %s failed", kind, name)
            self.outbox.clear()
        finally:
            for step in self.after_flush:
                try:
                    step()
                except Exception:
                    logger.exception("a post-consumer step failed")
            self.after_flush.clear()


def current_context() -> ConsumerContext | None:
    return getattr(_local, "context", None)


def enter_context(context: ConsumerContext | None) -> ConsumerContext | None:
    previous = current_context()
    _local.context = context
    return previous


class Channel:
    """A named channel to send to: ``Channel("chat-messages").send({...})``."""

    def __init__(self, name: str, channel_layer: Any = None) -> None:
        if not isinstance(name, str):
            raise TypeError(f"channel names are str, not {type(name).__name__}")
        self.name = name
        self.channel_layer = _resolve_layer(channel_layer)

    def send(self, content: dict, immediately: bool = False) -> None:
        """Send ``content``; held until the consumer returns unless ``immediately``."""
        context = current_context()
        if _held(
            context, "channel", self.name, content, immediately=immediately, channel_layer=self.channel_layer
        ):
            return
        send_with_retry(self.channel_layer, self.name, content)
        if context is not None and self.name == context.reply_channel:
            context.replied = True

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Channel)
            and other.name == self.name
            and (other.channel_layer is self.channel_layer)
        )

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Channel {self.name!r}>"


class Group:
    """A named group of channels: ``Group("chat").add(message.reply_channel)``.

    ``add`` and ``discard`` act at once; ``send`` is held like ``Channel.send``.
    A full member is skipped (the layer's ``send_group`` never raises
    ``ChannelFull``).
    """

    def __init__(self, name: str, channel_layer: Any = None) -> None:
        if not isinstance(name, str):
            raise TypeError(f"group names are str, not {type(name).__name__}")
        self.name = name
        self.channel_layer = _resolve_layer(channel_layer)

    def add(self, channel: Channel | str) -> None:
        self.channel_layer.group_add(self.name, _channel_name(channel))

    def discard(self, channel: Channel | str) -> None:
        self.channel_layer.group_discard(self.name, _channel_name(channel))

    def channel_names(self) -> list[str]:
        return list(self.channel_layer.group_channels(self.name))

    def send(self, content: dict, immediately: bool = False) -> None:
        if not _held(
            current_context(),
            "group",
            self.name,
            content,
            immediately=immediately,
            channel_layer=self.channel_layer,
        ):
            self.channel_layer.send_group(self.name, content)

    def __repr__(self) -> str:
        return f"<Group {self.name!r}>"


def _channel_name(channel: Channel | str) -> str:
    return channel.name if isinstance(channel, Channel) else channel


def _held(context: Any, kind: str, name: str, content: Any, *, immediately: bool, channel_layer: Any) -> bool:
    """Hold a send inside a consumer until it returns (True), or say to send now."""
    if not isinstance(content, dict):
        raise TypeError(f"you can only send dicts as content, not {type(content).__name__}")
    if context is not None and not immediately and context.channel_layer is channel_layer:
        context.hold(kind, name, content)
        return True
    return False
