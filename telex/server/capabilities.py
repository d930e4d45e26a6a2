"""What the server can use from a channel layer, declared once.

ASGI 1 asks every layer for ``send``, ``receive`` and ``new_channel`` and
its ``ChannelFull``/``MessageTooLarge``; the rest is optional. Each optional
capability the server uses is a ``typing.Protocol`` here. ``LayerCapabilities.of``
checks a layer against them once, when its bridge is made
(``bridge.make_bridge``); from then on the server asks the bridge, never
the layer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..layers.base import ChannelFull, MessageTooLarge

#: Spec (Persistence): the group expiry a layer that states none is assumed to have.
DEFAULT_GROUP_EXPIRY = 86400


@runtime_checkable
class AsyncSendLayer(Protocol):
    """Sends as a coroutine on the reactor's asyncio loop (Telex's network layers)."""

    async def send_async(self, channel: str, message: dict) -> None: ...


@runtime_checkable
class SoonSendLayer(Protocol):
    """Sends as a future, without a coroutine (Telex's Redis layer): cheaper per message."""

    def send_soon(self, channel: str, message: dict) -> asyncio.Future[None]: ...


@runtime_checkable
class AsyncReceiveLayer(Protocol):
    """Receives as a coroutine on the reactor's asyncio loop (Telex's layers)."""

    async def receive_async(self, channels: Iterable[str]) -> tuple[Any, Any]: ...


@runtime_checkable
class InProcessLayer(Protocol):
    """``in_process`` true: calls never wait on I/O, so they may run on the reactor thread."""

    in_process: bool


@runtime_checkable
class BatchReceiveLayer(Protocol):
    """Hands over every message already waiting, up to ``limit``, in one call."""

    async def receive_batch_async(self, channels: Iterable[str], limit: int) -> list[tuple[Any, Any]]: ...


@runtime_checkable
class StatisticsLayer(Protocol):
    """ASGI's ``statistics`` extension (the reply reader's lag is read from it)."""

    def channel_statistics(self, channel: str) -> dict[str, Any]: ...


@runtime_checkable
class DataLossLayer(Protocol):
    """Can tell that its data was lost (every group membership with it)."""

    async def check_data_lost_async(self) -> bool: ...


@runtime_checkable
class GroupsLayer(Protocol):
    """ASGI's ``groups`` extension: memberships expire after ``group_expiry`` seconds."""

    group_expiry: float


@dataclass(frozen=True)
class LayerCapabilities:
    """One layer's capabilities: each a bound method, or None when it lacks it."""

    channel_full: type[Exception]
    message_too_large: type[Exception]
    in_process: bool
    send_async: Callable[[str, dict], Awaitable[None]] | None
    send_soon: Callable[[str, dict], asyncio.Future[None]] | None
    receive_async: Callable[[Iterable[str]], Awaitable[tuple[Any, Any]]] | None
    receive_batch_async: Callable[[Iterable[str], int], Awaitable[list[tuple[Any, Any]]]] | None
    channel_statistics: Callable[[str], dict[str, Any]] | None
    check_data_lost_async: Callable[[], Awaitable[bool]] | None
    group_expiry: float

    @classmethod
    def of(cls, layer: Any) -> LayerCapabilities:
        return cls(
            # Layers of the Channels 1.x era carry their own exception types.
            channel_full=getattr(layer, "ChannelFull", ChannelFull),
            message_too_large=getattr(layer, "MessageTooLarge", MessageTooLarge),
            in_process=isinstance(layer, InProcessLayer) and bool(layer.in_process),
            send_async=layer.send_async if isinstance(layer, AsyncSendLayer) else None,
            send_soon=layer.send_soon if isinstance(layer, SoonSendLayer) else None,
            receive_async=layer.receive_async if isinstance(layer, AsyncReceiveLayer) else None,
            receive_batch_async=layer.receive_batch_async if isinstance(layer, BatchReceiveLayer) else None,
            channel_statistics=layer.channel_statistics if isinstance(layer, StatisticsLayer) else None,
            check_data_lost_async=layer.check_data_lost_async if isinstance(layer, DataLossLayer) else None,
            group_expiry=layer.group_expiry if isinstance(layer, GroupsLayer) else DEFAULT_GROUP_EXPIRY,
        )
