"""Flow control, both ways, for every connection (docs/flow-control.md).

Client → layer: an ``InOrderSender`` sends a connection's messages (HTTP
body chunks, ``websocket.receive``) one at a time and in order, tries a
message the layer refuses with ``ChannelFull`` again on ``RETRY_DELAYS``,
and pauses reading from the socket while too much waits.

Layer → client: a ``HeldOutput`` is the transport's push producer. While the
transport's buffer is full it holds replies, in order, and counts them; a
client that stops reading is closed by the slow-client rule.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from twisted.internet import reactor, tcp
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from zope.interface import implementer

if TYPE_CHECKING:
    from .context import Sender

#: Seconds between attempts at a message refused with ChannelFull (spec: wait
#: and try again): quick at first, then the last delay for as long as it takes.
RETRY_DELAYS = (0.002, 0.005, 0.01, 0.02, 0.05)
#: After a second of refusals, the delay between attempts: a consumer busy that long is
#: not back within milliseconds, and thousands of connections retrying every 50 ms
#: would keep the layer and the server busy with refusals.
SLOW_RETRY_AFTER, SLOW_RETRY_DELAY = 1.0, 0.25

Item = TypeVar("Item")


class Clock(Protocol):
    """The part of the reactor the senders use; tests pass ``twisted.internet.task.Clock``.

    (Declared here because Twisted's ``IReactorTime`` is a zope interface whose
    methods type checkers see without ``self``.)
    """

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> IDelayedCall: ...


class InOrderSender:
    """One connection's messages to the layer: one in flight, in order.

    ``give_up_after`` seconds of ChannelFull on one message (None: never)
    make it a failure. Reading pauses while more than ``pause_messages``
    messages or ``pause_bytes`` bytes wait (the one in flight included) and
    resumes at half. ``on_failure`` gets a failure that ends the sending
    (the queue is dropped first); ``on_drained`` runs whenever a send leaves
    nothing waiting.
    """

    __slots__ = (
        "_channel_full",
        "_clock",
        "_give_up_after",
        "_in_flight",
        "_on_drained",
        "_on_failure",
        "_pause",
        "_pause_bytes",
        "_pause_messages",
        "_paused",
        "_pumping",
        "_resume",
        "_retry",
        "_sender",
        "_stopped",
        "_waiting",
        "_waiting_bytes",
        "delivered",
    )

    def __init__(
        self,
        sender: Sender,
        channel_full: type[Exception],
        *,
        pause: Callable[[], None],
        resume: Callable[[], None],
        on_failure: Callable[[Any], None],
        on_drained: Callable[[], None] = lambda: None,
        pause_messages: int,
        pause_bytes: int,
        give_up_after: float | None,
        clock: Clock = reactor,
    ) -> None:
        self._sender = sender
        self._channel_full = channel_full
        self._pause, self._resume = pause, resume
        self._on_failure, self._on_drained = on_failure, on_drained
        self._pause_messages, self._pause_bytes = pause_messages, pause_bytes
        self._give_up_after = give_up_after
        self._clock = clock
        self._waiting: deque[tuple[str, dict, int]] = deque()
        self._waiting_bytes = 0
        self._in_flight = False
        self._paused = False
        self._stopped = False
        self._pumping = False
        self._retry: Any = None
        #: Messages the layer accepted.
        self.delivered = 0

    @property
    def stopped(self) -> bool:
        """Sending ended (a failure, or the owner stopped it)."""
        return self._stopped

    def give_up_after(self, seconds: float | None) -> None:
        """Change how long one message may stay refused with ChannelFull (None: for ever)."""
        self._give_up_after = seconds

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing in flight."""
        return not self._in_flight and not self._waiting

    def push(self, channel: str, message: dict, size: int) -> None:
        if self._stopped:
            return
        self._waiting.append((channel, message, size))
        self._waiting_bytes += size
        if not self._paused and (
            len(self._waiting) > self._pause_messages or self._waiting_bytes > self._pause_bytes
        ):
            self._paused = True
            self._pause()
        self._pump()

    def stop(self) -> None:
        """Drop what waits and send nothing more. The owner's callbacks are
        forgotten too, so no reference cycle outlives it."""
        self._stopped = True
        self._waiting.clear()
        self._waiting_bytes = 0
        self._in_flight = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._pause = self._resume = self._on_drained = nothing
        self._on_failure = nothing

    def _pump(self) -> None:
        # A loop, not recursion: an in-process layer completes sends
        # synchronously, and thousands of small messages may be waiting.
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._waiting and not (self._in_flight or self._stopped or self._retry is not None):
                self._send_first(0, None)
        finally:
            self._pumping = False

    def _send_first(self, attempt: int, first_refused: float | None) -> None:
        self._retry = None
        self._in_flight = True
        channel, message, _ = self._waiting[0]
        self._sender.send(channel, message).addCallbacks(
            self._sent, self._refused, errbackArgs=(attempt, first_refused)
        )

    def _sent(self, _: object) -> None:
        if self._stopped:
            return
        _, _, size = self._waiting.popleft()
        self._waiting_bytes -= size
        self._in_flight = False
        self.delivered += 1
        if (
            self._paused
            and len(self._waiting) <= self._pause_messages // 2
            and self._waiting_bytes <= self._pause_bytes // 2
        ):
            self._paused = False
            self._resume()
        if self._waiting:
            self._pump()
        else:
            self._on_drained()

    def _refused(self, failure: Any, attempt: int, first_refused: float | None) -> None:
        if self._stopped:
            return
        if failure.check(self._channel_full):
            now = self._clock.seconds()
            first_refused = now if first_refused is None else first_refused
            if self._give_up_after is None or now - first_refused < self._give_up_after:
                if now - first_refused >= SLOW_RETRY_AFTER:
                    delay = SLOW_RETRY_DELAY
                else:
                    delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                self._retry = self._clock.callLater(delay, self._send_first, attempt + 1, first_refused)
                return
        on_failure = self._on_failure
        self.stop()
        on_failure(failure)


@implementer(IPushProducer)
class HeldOutput(Generic[Item]):
    """Output to one client, in order, held while its transport is full.

    Registered as the transport's push producer: ``pauseProducing`` means its
    buffer is full, so items are held here (counted with ``size``) until
    ``resumeProducing``. Past ``limit`` held bytes the client is slow:
    ``on_slow`` ends it at once, or with a ``grace`` after that many seconds
    unless it catches up (``on_warn`` says so), and at once at four times
    the limit. Held items are dropped before ``on_slow`` runs.
    """

    __slots__ = (
        "_clock",
        "_grace",
        "_held",
        "_limit",
        "_on_slow",
        "_on_warn",
        "_size",
        "_slow_call",
        "_write",
        "held_bytes",
        "paused",
    )

    def __init__(
        self,
        write: Callable[[Item], None],
        size: Callable[[Item], int],
        *,
        limit: int,
        on_slow: Callable[[int], None],
        grace: float | None = None,
        on_warn: Callable[[int], None] = lambda held: None,
        clock: Clock = reactor,
    ) -> None:
        self._write, self._size = write, size
        self._limit, self._grace = limit, grace
        self._on_slow, self._on_warn = on_slow, on_warn
        self._clock = clock
        self._held: deque[Item] = deque()
        self.held_bytes = 0
        self.paused = False
        self._slow_call: Any = None

    def offer(self, item: Item) -> None:
        """Write ``item`` now, or hold it behind what is already held."""
        if self.paused or self._held:
            self._held.append(item)
            self.held_bytes += self._size(item)
            self._check()
            return
        self._write(item)

    def clear(self) -> None:
        """Drop what is held and forget the slow-client timer."""
        self._held.clear()
        self.held_bytes = 0
        if self._slow_call is not None and self._slow_call.active():
            self._slow_call.cancel()

    def close(self) -> None:
        """The output has ended: clear it and forget the owner's callbacks, so
        that no reference cycle keeps the owner alive until the next garbage
        collection (the server makes almost none; docs/server.md)."""
        self.clear()
        self._write = self._on_slow = self._on_warn = nothing

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while self._held and not self.paused:
            item = self._held.popleft()
            self.held_bytes -= self._size(item)
            self._write(item)
        self._check()

    def stopProducing(self) -> None:
        self.paused = True
        self.clear()

    def _check(self) -> None:
        waiting = self._slow_call is not None and self._slow_call.active()
        if self.held_bytes <= self._limit:
            if waiting:
                self._slow_call.cancel()
            return
        if self._grace is None or self.held_bytes > 4 * self._limit:
            self._slow()
        elif not waiting:
            self._on_warn(self.held_bytes)
            self._slow_call = self._clock.callLater(self._grace, self._slow)

    def _slow(self) -> None:
        held = self.held_bytes
        self.clear()
        self._on_slow(held)


def nothing(*_: object) -> None:
    """What a finished sender or output calls instead of its owner."""


def write_through(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sent at once when nothing is waiting before it.

    Twisted's TCP transport only buffers a write and sends it on the
    reactor's next pass, registering for writability and dropping it again
    each time: two ``epoll_ctl`` calls and a dispatch per message, for a
    socket that is almost always writable. On a plain TCP connection with
    an empty buffer the bytes go to ``send()`` now; what the kernel does not
    take (and every write on TLS, or behind buffered data) takes Twisted's
    usual path, so order, back pressure and error handling stay Twisted's.
    """
    if (
        type(transport) is tcp.Server
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:
            sent = 0  # EAGAIN, or an error Twisted's write meets again and closes on
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)
