"""The delay worker: store what arrives on ``asgi.delay``, send each message when it is due.

Two threads. The receiver blocks on ``asgi.delay`` and stores each valid
message as a :class:`DelayedMessage` row. The dispatcher sends the due rows,
then waits until the earliest stored row is due, or at most
``database_sleep_duration`` seconds: the receiver wakes it when it stores a
row, so a message is sent on time however long the interval, and the
interval only bounds how late a row another process stored is seen (a
database cannot tell this process that a row was added).

Unlike Channels 1.x, a malformed message is logged and dropped; the worker
goes on.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
from datetime import timedelta
from typing import Any

from django.db import close_old_connections, connections
from django.utils import timezone

from .. import DEFAULT_CHANNEL_LAYER
from ..asgi import channel_layers
from ..channel import raw_layer
from .models import DelayedMessage

__all__ = ["ASGI_DELAY", "DEFAULT_SLEEP", "Worker"]

logger = logging.getLogger("telex.delay")

#: The channel of the delay protocol: ``{"channel", "content", "delay"}`` (ms).
ASGI_DELAY = "asgi.delay"
#: Seconds between two looks at the database (``rundelay --sleep``), as in Channels 1.x.
DEFAULT_SLEEP = 1.0
#: Due rows sent per pass; the next pass follows at once when a pass was full.
BATCH = 500
#: Seconds the receiver pauses after the layer failed (Redis restarting).
RECEIVE_RETRY = 1.0


class InvalidDelayMessage(ValueError):
    """A message on ``asgi.delay`` that cannot be stored; the text says why."""


def delayed_message(content: Any, channel_layer: Any) -> DelayedMessage:
    """The row for one ``asgi.delay`` message, or :class:`InvalidDelayMessage`."""
    if not isinstance(content, dict):
        raise InvalidDelayMessage(f"the message is a {type(content).__name__}, not a dict")
    missing = [key for key in ("channel", "content", "delay") if key not in content]
    if missing:
        raise InvalidDelayMessage(f"missing key(s) {', '.join(missing)} (it needs channel, content, delay)")
    channel, inner, delay = content["channel"], content["content"], content["delay"]
    if not isinstance(channel, str) or not channel or len(channel) > 512:
        raise InvalidDelayMessage(f"'channel' must be a channel name, not {channel!r:.80}")
    check = getattr(channel_layer, "check_channel_name", None)
    if check is not None:
        try:
            check(channel)
        except (TypeError, ValueError) as exc:
            raise InvalidDelayMessage(f"'channel': {exc}") from None
    if not isinstance(inner, dict):
        raise InvalidDelayMessage(f"'content' must be a dict (a message), not {type(inner).__name__}")
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay):
        raise InvalidDelayMessage(f"'delay' must be a number of milliseconds, not {delay!r:.80}")
    try:
        text = json.dumps(inner)
    except (TypeError, ValueError) as exc:
        # Rows hold JSON, as Channels 1.x's did: byte strings cannot be stored.
        raise InvalidDelayMessage(f"'content' cannot be stored as JSON: {exc}") from None
    message = DelayedMessage(channel_name=channel, content=text)
    try:
        message.delay = delay
    except OverflowError:
        raise InvalidDelayMessage(f"'delay' {delay!r} is out of range") from None
    return message


class Worker:
    """Run the delay protocol on ``channel_layer`` (a layer, its wrapper or an alias).

    ``run()`` blocks until SIGTERM/SIGINT (with ``signal_handlers``) or
    :meth:`stop`; ``start()`` returns at once, for embedding.
    """

    def __init__(
        self,
        channel_layer: Any,
        signal_handlers: bool = True,
        database_sleep_duration: float = DEFAULT_SLEEP,
    ) -> None:
        if not database_sleep_duration > 0:
            raise ValueError(f"database_sleep_duration must be positive, got {database_sleep_duration!r}")
        if isinstance(channel_layer, str):
            channel_layer = channel_layers[channel_layer]
        self.channel_layer = raw_layer(channel_layer, DEFAULT_CHANNEL_LAYER)
        self.signal_handlers = signal_handlers
        self.database_sleep_duration = database_sleep_duration
        self._stopping = threading.Event()
        self._stored = threading.Event()
        self._threads: list[threading.Thread] = []
        self._wake_channel = ""

    # -- lifecycle -------------------------------------------------------------

    def run(self) -> None:
        if self.signal_handlers:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.start()
        # The main thread only waits, so a signal handler runs at once.
        while not self._stopping.wait(3600):
            pass
        self.stop()

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("this delay worker has already been started")
        # Private, so stop() wakes a blocked receive at once.
        self._wake_channel = self.channel_layer.new_channel("telex.delay.wake?")
        self._threads = [
            threading.Thread(target=self._receive_loop, name="telex-delay-receive"),
            threading.Thread(target=self._dispatch_loop, name="telex-delay-dispatch"),
        ]
        for thread in self._threads:
            thread.start()
        logger.info(
            "listening on %s; looking at the database every %g s", ASGI_DELAY, self.database_sleep_duration
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both threads; a message being stored or sent is finished first."""
        self._stopping.set()
        self._stored.set()
        try:
            self.channel_layer.send(self._wake_channel, {"wake": True})
        except Exception:  # the receiver still wakes at the layer's blocking timeout
            logger.debug("could not wake the receiver", exc_info=True)
        for thread in self._threads:
            thread.join(timeout)
        logger.info("delay worker stopped")

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _on_signal(self, signum: int, frame: object) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        self._stopping.set()

    # -- the two loops -----------------------------------------------------------

    def _receive_loop(self) -> None:
        listen = [ASGI_DELAY, self._wake_channel]
        try:
            while not self._stopping.is_set():
                try:
                    channel, content = self.channel_layer.receive(listen, block=True)
                except Exception:
                    logger.exception(
                        "receiving from the channel layer failed; retrying in %g s", RECEIVE_RETRY
                    )
                    self._stopping.wait(RECEIVE_RETRY)
                    continue
                if channel == ASGI_DELAY:
                    self.store(content)
        finally:
            connections.close_all()

    def store(self, content: Any) -> DelayedMessage | None:
        """Store one ``asgi.delay`` message; log and drop it if it is malformed."""
        try:
            message = delayed_message(content, self.channel_layer)
        except InvalidDelayMessage as exc:
            logger.error("dropped a message on %s: %s", ASGI_DELAY, exc)
            return None
        close_old_connections()
        try:
            message.save()
        except Exception:
            logger.exception("could not store a delayed message for %s; it is lost", message.channel_name)
            return None
        logger.debug("stored a message for %s, due in %s ms", message.channel_name, message.delay)
        self._stored.set()
        return message

    def _dispatch_loop(self) -> None:
        try:
            while not self._stopping.is_set():
                close_old_connections()
                try:
                    wait = 0.0 if self.send_due() == BATCH else self._until_next_due()
                except Exception:
                    logger.exception(
                        "the delay database failed; trying again in %g s", self.database_sleep_duration
                    )
                    wait = self.database_sleep_duration
                if wait > 0:
                    self._stored.wait(wait)
                self._stored.clear()
        finally:
            connections.close_all()

    def send_due(self) -> int:
        """Send the due messages (up to ``BATCH``, oldest first); the number looked at."""
        due = list(DelayedMessage.objects.is_due().order_by("due_date", "pk")[:BATCH])
        for message in due:
            if message.send(channel_layer=self.channel_layer):
                logger.debug("sent the delayed message for %s", message.channel_name)
            else:
                logger.debug(
                    "did not send the delayed message for %s (full, or sent elsewhere)", message.channel_name
                )
        return len(due)

    def _until_next_due(self) -> float:
        next_due = DelayedMessage.objects.order_by("due_date").values_list("due_date", flat=True).first()
        if next_due is None:
            return self.database_sleep_duration
        seconds = (next_due - timezone.now()) / timedelta(seconds=1)
        return min(self.database_sleep_duration, max(seconds, 0.0))
