"""WebSockets that outlive their worker: the move of a socket, and the workers' heartbeats.

A worker running an ASGI 3 application (``telex worker --asgi``) names its own
channel for each socket it accepts (``telex.receive_channel``). When that
worker stops it *releases* its resumable sockets instead of closing them; when
it dies, its heartbeats stop. Either way the socket *moves*: the server holds
the client's frames and the connection's channel messages, asks for a fresh
instance with a ``websocket.connect`` that says it resumes, absorbs the
accept, and hands over what it held, in order. The messages (docs/asgi3.md)::

    old worker ── {"telex.move": "release"} ──► server        (reply channel)
    server ── {"telex.move": "released"} ──► old worker        (after every frame sent to it)
    old worker ── {"telex.move": "return", "message": m} … ──► server  (what it did not process)
    old worker ── {"telex.move": "returned"} ──► server
    server ── websocket.connect + "telex.resume": true ──► any worker
    new worker ── {"accept": true, "telex.receive_channel": …} ──► server (absorbed)
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor, task

from . import websocket_messages as msgs

if TYPE_CHECKING:
    from .websocket import AsgiWebSocketProtocol

logger = logging.getLogger("telex.websocket")

#: Phases of a move: waiting for the old worker's hand-back, then for an accept.
RELEASING = "releasing"
CONNECTING = "connecting"


class Move:
    """One socket on its way to another worker: what arrived meanwhile, in order."""

    __slots__ = ("dropped", "held", "held_bytes", "phase", "returned", "timer")

    def __init__(self, phase: str) -> None:
        self.phase = phase
        #: What the old worker handed back (it goes first), then what arrived here.
        self.returned: list[dict] = []
        self.held: list[dict] = []
        self.held_bytes = 0
        self.dropped = 0  # channel messages beyond the buffer
        self.timer: Any = None

    def hold(self, item: dict, size: int) -> None:
        self.held.append(item)
        self.held_bytes += size

    def items(self) -> list[dict]:
        return self.returned + self.held


def item_size(item: dict) -> int:
    """Bytes of a held frame's payload (0 for anything else), for the inbound pause thresholds."""
    data = item.get("bytes")
    if data is None:
        data = item.get("text")
    return len(data) if isinstance(data, (bytes, str)) else 0


def worker_of(channel: str) -> str:
    """The process prefix (``telex.asgi3.<random>!``) of a worker's channel for a socket."""
    return channel[: channel.index("!") + 1]


class WorkerWatch:
    """The workers holding this server's WebSockets, and when each was last heard from.

    A worker sends a heartbeat (``{"worker": PREFIX, "at": UNIX TIME}`` on the server's
    ``telex.heartbeat`` channel) about every second while it holds one of the
    server's sockets; one silent for ``timeout`` seconds is taken for dead and
    its sockets move (or close 1012 when they cannot resume).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.sockets: dict[str, set[AsgiWebSocketProtocol]] = {}
        self.heard: dict[str, float] = {}
        #: How late the last heartbeats were read (their ``at`` against the wall clock): a
        #: reply reader that far behind delays every heartbeat, and the timeout grows by it.
        self.lag = 0.0
        #: Workers heard from since the last check: a set add per reply, the clock read once per check.
        self._alive: set[str] = set()
        self._check = task.LoopingCall(self.check)
        self._check.clock = reactor

    def add(self, worker: str, socket: AsgiWebSocketProtocol) -> None:
        if worker not in self.sockets:
            self.sockets[worker] = set()
            self.heard[worker] = reactor.seconds()
        self.sockets[worker].add(socket)
        if not self._check.running and self.timeout > 0:
            self._check.start(min(1.0, self.timeout / 2), now=False)

    def remove(self, worker: str, socket: AsgiWebSocketProtocol) -> None:
        held = self.sockets.get(worker)
        if held is None:
            return
        held.discard(socket)
        if not held:
            del self.sockets[worker]
            self.heard.pop(worker, None)
            if not self.sockets and self._check.running:
                self._check.stop()

    def heartbeat(self, message: dict) -> None:
        worker, at = message.get("worker"), message.get("at")
        if isinstance(at, (int, float)):
            self.lag = max(0.0, time.time() - at)
        if isinstance(worker, str):
            self.heard_from(worker)

    def heard_from(self, worker: str) -> None:
        """A heartbeat, or any reply from one of the worker's sockets: it lives (on the hot path)."""
        self._alive.add(worker)

    def check(self) -> None:
        now = reactor.seconds()
        alive, self._alive = self._alive, set()
        for worker in alive:
            if worker in self.heard:
                self.heard[worker] = now
        for worker, heard in list(self.heard.items()):
            if now - heard <= self.timeout + self.lag:
                continue
            sockets = list(self.sockets.get(worker, ()))
            logger.warning(
                "worker %s sent no heartbeat for %.1fs: moving its %d WebSocket(s) to another worker",
                worker,
                now - heard,
                len(sockets),
            )
            for socket in sockets:
                socket.worker_lost()
            self.sockets.pop(worker, None)
            self.heard.pop(worker, None)
        if not self.sockets and self._check.running:
            self._check.stop()

    def stop(self) -> None:
        if self._check.running:
            self._check.stop()


#: Pauses before sending again to a full ``websocket.connect``: doubling from the first to the last.
RESUME_RETRY = (0.05, 1.0)


class ResumeQueue:
    """The resuming ``websocket.connect`` of every moving socket, sent one at a time, in order.

    One sender for the whole server: when a worker holding thousands of
    sockets stops, their connects would otherwise each retry a full channel
    every few milliseconds. One whose socket closed or stopped waiting
    meanwhile is skipped.
    """

    def __init__(self, sender: Any, channel_full: type[Exception]) -> None:
        self._sender = sender
        self._channel_full = channel_full
        self._waiting: deque[tuple[AsgiWebSocketProtocol, dict]] = deque()
        self._busy = False
        self._delay = RESUME_RETRY[0]

    def push(self, socket: AsgiWebSocketProtocol, message: dict) -> None:
        self._waiting.append((socket, message))
        self._pump()

    def _pump(self) -> None:
        while self._waiting and not self._waiting[0][0].awaiting_resume:
            self._waiting.popleft()
        if self._busy or not self._waiting:
            return
        self._busy = True
        self._sender.send("websocket.connect", self._waiting[0][1]).addCallbacks(self._sent, self._refused)

    def _sent(self, _: object) -> None:
        self._busy = False
        self._delay = RESUME_RETRY[0]
        if self._waiting:
            self._waiting.popleft()
        self._pump()

    def _refused(self, failure: Any) -> None:
        self._busy = False
        if failure.check(self._channel_full):
            reactor.callLater(self._delay, self._pump)
            self._delay = min(self._delay * 2, RESUME_RETRY[1])
            return
        # An outage (logged once by the bridge): this socket closes at its resume timeout.
        logger.debug("could not send a resuming websocket.connect: %s", failure.getErrorMessage())
        if self._waiting:
            self._waiting.popleft()
        self._pump()


def heartbeat_channel(reply_prefix: str) -> str:
    """The channel under a server's reply prefix that takes the workers' heartbeats."""
    return reply_prefix + msgs.HEARTBEAT_CHANNEL
