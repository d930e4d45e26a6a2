"""A WebSocket's own channel: one name for the socket's whole life, whichever worker holds it.

A Channels consumer's ``channel_name`` (what ``new_channel`` gives it) is
how the rest of the application reaches it, and the name its groups hold. For
the socket to move to another worker with its memberships intact, that name
must not belong to a worker process: it is the socket's reply channel plus
``.app``, which the interface server receives and forwards to whichever
worker holds the socket (``telex.message`` on that worker's channel for the
socket), holding it while the socket moves. ``telex.channels4`` asks this
module for the name and reads the forwarded messages from here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextvars import ContextVar
from typing import Any

logger = logging.getLogger("telex.worker")

#: The suffix the server gives a socket's own channel (``telex/protocols/websocket_messages.py``).
SUFFIX = ".app"

_current: ContextVar[SocketChannel | None] = ContextVar("telex_socket_channel", default=None)
_open: dict[str, SocketChannel] = {}


class _Serving:
    """The layer this process's worker reads (``serve``): a socket's channel works on that one only."""

    identity: Any = None
    warned = False


_serving = _Serving()


class SocketChannel:
    """The messages forwarded to one socket's own channel, in arrival order, until taken."""

    __slots__ = ("_wake", "claimed", "in_hand", "messages", "name", "releasing")

    def __init__(self, reply_channel: str) -> None:
        self.name = reply_channel + SUFFIX
        self.messages: deque[tuple[int, dict]] = deque()  # (arrival number, message)
        self.claimed = False  # new_channel gave the name out
        self.releasing = False  # the socket is moving to another worker
        #: The message the last ``get`` returned, until the next ``get``: Channels'
        #: consumer loop asks again right after handling one, so one still in hand
        #: when the consumer has returned was taken but never handled.
        self.in_hand: tuple[int, dict] | None = None
        self._wake: asyncio.Event | None = None

    def open(self) -> None:
        """Reachable by name, and the name ``new_channel`` gives in this task's context."""
        _open[self.name] = self
        _current.set(self)

    def close(self) -> None:
        if _open.get(self.name) is self:
            del _open[self.name]

    def put(self, arrival: int, message: dict) -> None:
        self.messages.append((arrival, message))
        if self._wake is not None:
            self._wake.set()

    async def get(self) -> dict:
        """The next message; waits as long as it takes (the consumer's task is cancelled at its end)."""
        self.in_hand = None
        while not self.messages or self.releasing:
            self._wake = asyncio.Event()
            await self._wake.wait()
        self.in_hand = self.messages.popleft()
        return self.in_hand[1]

    def drain(self) -> list[tuple[int, dict]]:
        """Every message not taken, for the hand-back: nothing is taken from here on."""
        self.releasing = True
        taken, self.messages = list(self.messages), deque()
        return taken


def layer_identity(layer: Any) -> Any:
    """What makes two layer objects the same layer: Redis hosts and prefix, else the object."""
    hosts = getattr(layer, "hosts", None)
    return (tuple(hosts), getattr(layer, "prefix", None)) if hosts is not None else id(layer)


def serve(layer: Any) -> None:
    """This process's worker reads ``layer`` (the one ``telex serve`` and ``--layer`` name)."""
    _serving.identity = layer_identity(layer)


def claim(layer: Any) -> str | None:
    """The socket's own channel name, the first time an instance asks (``new_channel``); else None.

    None too when ``layer`` is not the worker's: the server would never see
    what is sent to that name there (logged once).
    """
    channel = _current.get()
    if channel is None or channel.claimed or _serving.identity is None:
        return None
    if layer_identity(layer) != _serving.identity:
        if not _serving.warned:
            _serving.warned = True
            logger.warning(
                "the application's channel layer (%s) is not the one the worker reads (--layer): "
                "consumers' channel names will not survive a resume; give CHANNEL_LAYERS the same "
                "hosts and prefix",
                layer,
            )
        return None
    channel.claimed = True
    return channel.name


def find(name: str) -> SocketChannel | None:
    return _open.get(name)


def keeps_groups(name: str) -> bool:
    """True while the socket named moves: its group memberships stay for the resumed instance."""
    channel = _open.get(name)
    return channel is not None and channel.releasing
