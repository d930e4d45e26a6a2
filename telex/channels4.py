"""Channels 4's channel layer API on Telex's layers, for Channels (≥ 2) consumers.

Channels 2 and later talk to a layer through a small asyncio API (``send``,
``receive`` of one channel, ``new_channel``, ``group_add``,
``group_discard``, ``group_send``, ``flush``); Telex's layers speak ASGI 1.
This adapter maps one onto the other, so a Channels 4 project selects
``telex.channels4.RedisChannelLayer`` in ``CHANNEL_LAYERS`` (its ``CONFIG``
takes channels_redis's keys) and shares Telex's Redis layer: one entry per
receiving process for a group send, no cross-slot scripts on a cluster,
nothing dropped silently.

Every channel ``new_channel`` makes is process-specific (``PREFIX!ID``), so
its messages reach only the process that made it, on that process's one
queue: one reader per process takes them in batches and hands each to the
``receive`` waiting for its channel. A consumer instance's ``channel_name``
is therefore received by the process holding the instance — except the
``channel_name`` of a WebSocket consumer under ``telex worker --asgi``: that
is the socket's own channel, which the interface server forwards to whichever
worker holds the socket, so it survives the socket moving to another worker
(``telex/worker/asgi3/socket_channel.py``), and so do its groups.

Channels must be installed (it brings asgiref 3 and Django); Telex's core
does not need either.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from typing import Any

from channels.exceptions import ChannelFull as ChannelsChannelFull
from channels.layers import BaseChannelLayer

from .layers.base import BaseChannelLayer as AsgiOneLayer
from .layers.base import ChannelFull
from .layers.memory import InMemoryChannelLayer
from .worker.asgi3 import socket_channel

__all__ = ["RedisChannelLayer", "TelexChannelLayer"]

#: Messages one read of the process's queue hands over at most.
READ_BATCH = 100


class _Inbox:
    """Messages for one process-specific channel, waiting for its ``receive``."""

    __slots__ = ("messages", "waiters")

    def __init__(self) -> None:
        self.messages: deque[tuple[float, dict]] = deque()  # (expires at, message)
        self.waiters = 0


class _Receiving:
    """One event loop's side of this process's channels: inboxes, readers, a wake-up.

    Per loop because asyncio objects belong to one loop, and Channels runs a
    layer's calls on several (``async_to_sync`` makes a loop per call).
    """

    def __init__(self) -> None:
        self.inboxes: dict[str, _Inbox] = {}
        self.readers: dict[str, asyncio.Task[None]] = {}
        self.arrived = asyncio.Condition()


class TelexChannelLayer(BaseChannelLayer):
    """Channels' layer API over a Telex layer (``InMemoryChannelLayer`` or ``RedisChannelLayer``).

    Groups, sends and receives keep the wrapped layer's rules (capacity,
    expiry, sizes, at-most-once). Blocking calls of a network layer (group
    membership, group sends, flush) run in a worker thread, so the event
    loop never waits on Redis.
    """

    extensions = ["groups", "flush"]

    def __init__(self, layer: Any) -> None:
        super().__init__(expiry=layer.expiry, capacity=layer.capacity)
        self.layer = layer
        self.group_expiry = layer.group_expiry
        self.client_prefix = AsgiOneLayer.random_suffix()
        self._in_process = isinstance(layer, InMemoryChannelLayer)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Receiving] = (
            weakref.WeakKeyDictionary()
        )

    # -- sending ------------------------------------------------------------------

    async def send(self, channel: str, message: dict) -> None:
        self.require_valid_channel_name(channel)
        try:
            if self._in_process:
                self.layer.send(channel, message)
            elif asyncio.get_running_loop() in self._loops:
                await self.layer.send_async(channel, message)
            else:
                # A loop that never received is most likely async_to_sync's
                # loop of one call: connections of its own would be opened
                # and dropped per call, where the thread pool's are kept.
                await asyncio.to_thread(self.layer.send, channel, message)
        except ChannelFull as exc:
            raise ChannelsChannelFull(str(exc) or channel) from exc

    async def group_send(self, group: str, message: dict) -> None:
        self.require_valid_group_name(group)
        await self._call(self.layer.send_group, group, message)

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self._call(self.layer.group_add, group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if socket_channel.keeps_groups(channel):
            return  # a consumer leaving because its socket moves: the resumed one keeps them
        await self._call(self.layer.group_discard, group, channel)

    async def flush(self) -> None:
        await self._call(self.layer.flush)
        for receiving in self._loops.values():
            for inbox in receiving.inboxes.values():
                inbox.messages.clear()

    async def close(self) -> None:
        """Stop this loop's readers (Channels calls it when a test or server ends)."""
        receiving = self._loops.get(asyncio.get_running_loop())
        if receiving is None:
            return
        readers, receiving.readers = receiving.readers, {}
        for reader in readers.values():
            reader.cancel()
        await asyncio.gather(*readers.values(), return_exceptions=True)

    async def _call(self, function: Any, *args: Any) -> Any:
        if self._in_process:
            return function(*args)
        return await asyncio.to_thread(function, *args)

    # -- receiving ----------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A process-specific name (``PREFIX<process>!<id>``): only this process receives it.

        A WebSocket instance's first call gets the socket's own channel instead.
        """
        own = socket_channel.claim(self.layer)
        if own is not None:
            return own
        return f"{prefix}{self.client_prefix}!{AsgiOneLayer.random_suffix()}"

    async def receive(self, channel: str) -> dict:
        """The next message on ``channel``; waits as long as it takes.

        A normal channel is read directly (any process may take its
        messages). A process-specific one must be this process's: its
        messages arrive on the process's queue, read by one task per loop
        that hands each to the channel it names.
        """
        self.require_valid_channel_name(channel)
        own = socket_channel.find(channel)
        if own is not None:
            return await own.get()
        bang = channel.find("!")
        loop = asyncio.get_running_loop()
        receiving = self._loops.get(loop)
        if receiving is None:
            receiving = self._loops[loop] = _Receiving()
        if bang < 0:
            while True:
                name, message = await self.layer.receive_async([channel])
                if name is not None:
                    return message
        queue = channel[: bang + 1]
        if not queue.endswith(f"{self.client_prefix}!"):
            raise ValueError(f"{channel!r} was not made by this process's layer (new_channel)")
        inbox = receiving.inboxes.setdefault(channel, _Inbox())
        inbox.waiters += 1
        try:
            async with receiving.arrived:
                while True:
                    message = _take(inbox)
                    if message is not None:
                        return message
                    reader = receiving.readers.get(queue)
                    if reader is None or reader.done():
                        receiving.readers[queue] = loop.create_task(self._read(queue, receiving))
                    await receiving.arrived.wait()
        finally:
            inbox.waiters -= 1
            if not inbox.waiters and not inbox.messages:
                receiving.inboxes.pop(channel, None)

    async def _read(self, queue: str, receiving: _Receiving) -> None:
        """Take the process queue's messages while anyone waits for one; then stop.

        A message for a channel nobody is reading is kept for the layer's
        expiry (its consumer may be between two receives), then dropped.
        """
        while any(inbox.waiters for inbox in receiving.inboxes.values()):
            if self._in_process:
                name, message = await self.layer.receive_async([queue])
                found = [(name, message)] if name is not None else []
            else:
                found = await self.layer.receive_batch_async([queue], READ_BATCH)
            if not found:
                continue
            expires = time.monotonic() + self.expiry
            for channel, message in found:
                receiving.inboxes.setdefault(channel, _Inbox()).messages.append((expires, message))
            _drop_expired(receiving.inboxes)
            async with receiving.arrived:
                receiving.arrived.notify_all()


def _take(inbox: _Inbox) -> dict | None:
    now = time.monotonic()
    while inbox.messages:
        expires, message = inbox.messages.popleft()
        if expires > now:
            return message
    return None


def _drop_expired(inboxes: dict[str, _Inbox]) -> None:
    now = time.monotonic()
    for channel, inbox in list(inboxes.items()):
        while inbox.messages and inbox.messages[0][0] <= now:
            inbox.messages.popleft()
        if not inbox.messages and not inbox.waiters:
            del inboxes[channel]


class RedisChannelLayer(TelexChannelLayer):
    """``CHANNEL_LAYERS`` backend for Channels 4 on Redis, configured like channels_redis.

    ``CONFIG`` takes channels_redis's keys (``hosts``, ``prefix``, ``expiry``,
    ``group_expiry``, ``capacity``, ``channel_capacity``,
    ``symmetric_encryption_keys``) and the rest of Telex's Redis layer
    options; a ``hosts`` entry may be channels_redis's ``{"address": URL}``.
    """

    def __init__(self, hosts: Any = None, **options: Any) -> None:
        from .layers.redis import RedisChannelLayer as TelexRedisLayer

        if isinstance(hosts, list):
            hosts = [_host(entry) for entry in hosts]
        super().__init__(TelexRedisLayer(hosts=hosts, **options))


def _host(entry: Any) -> Any:
    if isinstance(entry, dict) and set(entry) == {"address"}:
        return entry["address"]
    return entry
