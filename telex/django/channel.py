"""``Channel`` and ``Group`` with Channels 1.x's signature (``alias=`` names a layer of ``CHANNEL_LAYERS``).

They are the toolkit's classes, so a send made inside a consumer is held
until it returns, and ``immediately=True`` sends at once, as in Channels 1.1.
"""

from __future__ import annotations

from typing import Any

from ..worker import channels as _channels
from .asgi import DEFAULT_CHANNEL_LAYER, ChannelLayerWrapper, channel_layers

__all__ = ["Channel", "Group"]


def raw_layer(channel_layer: Any, alias: str) -> Any:
    """The Telex layer behind a ``ChannelLayerWrapper`` (or the layer itself), else the alias's."""
    if channel_layer is None:
        channel_layer = channel_layers[alias]
    return channel_layer.channel_layer if isinstance(channel_layer, ChannelLayerWrapper) else channel_layer


def _name(name: str | bytes) -> str:
    return name.decode("ascii") if isinstance(name, bytes) else name


class Channel(_channels.Channel):
    """A named channel: ``Channel("chat-messages").send({...})``."""

    def __init__(
        self, name: str | bytes, alias: str = DEFAULT_CHANNEL_LAYER, channel_layer: Any = None
    ) -> None:
        super().__init__(_name(name), channel_layer=raw_layer(channel_layer, alias))


class Group(_channels.Group):
    """A named group: ``Group("chat").add(message.reply_channel)``; ``send`` is held like a channel's."""

    def __init__(
        self, name: str | bytes, alias: str = DEFAULT_CHANNEL_LAYER, channel_layer: Any = None
    ) -> None:
        super().__init__(_name(name), channel_layer=raw_layer(channel_layer, alias))
