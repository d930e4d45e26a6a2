"""The channel layer from an asyncio loop: its coroutines when it has them, threads when not."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Iterable
from typing import Any

from ...layers.base import ChannelFull
from ..metrics import WorkerMetrics

logger = logging.getLogger("telex.worker")

#: A send refused with ChannelFull is retried after these delays, doubling
#: from the first to the last, for up to SEND_RETRY_FOR seconds (the held
#: sends of consumers do the same: docs/worker.md).
SEND_RETRY_DELAYS = (0.005, 0.5)
SEND_RETRY_FOR = 30.0


def _coroutine(layer: Any, name: str) -> Any:
    method = getattr(layer, name, None)
    return method if inspect.iscoroutinefunction(method) else None


class LayerAccess:
    """Sends and receives for one loop.

    Telex's Redis layer offers ``send_async`` and ``receive_batch_async``;
    the memory layer is in-process, so its ``send`` is called directly; any
    other layer's blocking calls run in the loop's default thread pool.
    """

    def __init__(self, layer: Any, metrics: WorkerMetrics | None = None) -> None:
        self.layer = layer
        self.metrics = metrics
        self.channel_full: type[Exception] = getattr(layer, "ChannelFull", ChannelFull)
        self._send_async = _coroutine(layer, "send_async")
        self._receive_async = _coroutine(layer, "receive_async")
        self._receive_batch_async = _coroutine(layer, "receive_batch_async")
        self._in_process = bool(getattr(layer, "in_process", False))

    async def send(self, channel: str, message: dict) -> bool:
        """Send, retrying ChannelFull with backoff; False if it stayed full (logged, dropped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SEND_RETRY_FOR
        delay = SEND_RETRY_DELAYS[0]
        while True:
            try:
                await self._send_once(channel, message)
                return True
            except self.channel_full:
                if loop.time() + delay > deadline:
                    logger.error(
                        "dropping a message for %s: the channel stayed full for %gs", channel, SEND_RETRY_FOR
                    )
                    self._count("telex_worker_sends_dropped_total")
                    return False
                self._count("telex_worker_send_retries_total")
                await asyncio.sleep(delay)
                delay = min(delay * 2, SEND_RETRY_DELAYS[1])

    def _count(self, name: str) -> None:
        if self.metrics is not None:
            self.metrics.count(name)

    async def _send_once(self, channel: str, message: dict) -> None:
        if self._send_async is not None:
            await self._send_async(channel, message)
        elif self._in_process:
            self.layer.send(channel, message)
        else:
            await asyncio.get_running_loop().run_in_executor(None, self.layer.send, channel, message)

    async def receive(self, channels: Iterable[str]) -> tuple[Any, Any]:
        """One message, or ``(None, None)`` after the layer's blocking timeout."""
        if self._receive_async is not None:
            return await self._receive_async(list(channels))
        receive = functools.partial(self.layer.receive, list(channels), block=True)
        return await asyncio.get_running_loop().run_in_executor(None, receive)

    async def receive_batch(self, channels: Iterable[str], max_messages: int) -> list[tuple[str, Any]]:
        """Every message already waiting (up to ``max_messages``) in one round trip, or the next one."""
        if self._receive_batch_async is not None:
            return list(await self._receive_batch_async(list(channels), max_messages))
        found = await self.receive(channels)
        return [found] if found[0] is not None else []
