"""The ``message`` a Django consumer receives, shaped as Channels 1.x's.

Unlike the toolkit's message, ``message.channel`` is a :class:`Channel`
(``message.channel.name`` is the name), as Channels 1.x code expects.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from .channel import Channel

__all__ = ["Message"]


class Message:
    """One received message: ``content``, ``channel``, ``reply_channel``, ``channel_layer``.

    Decorators add ``channel_session``, ``http_session`` and ``user``.
    """

    def __init__(self, content: dict, channel_name: str, channel_layer: Any) -> None:
        self.content = content
        self.channel_layer = channel_layer
        self.channel = Channel(channel_name, channel_layer=channel_layer)
        #: The name, as the toolkit's helpers (ordering, bodies) read it.
        self.channel_name = channel_name
        reply = content.get("reply_channel")
        self.reply_channel: Channel | None = Channel(reply, channel_layer=channel_layer) if reply else None
        self.channel_session: Any = None
        self.http_session: Any = None
        self.user: Any = None

    def __getitem__(self, key: str) -> Any:
        return self.content[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.content[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self.content

    def __iter__(self) -> Iterator[str]:
        return iter(self.content)

    def keys(self) -> Any:
        return self.content.keys()

    def values(self) -> Any:
        return self.content.values()

    def items(self) -> Any:
        return self.content.items()

    def get(self, key: str, default: Any = None) -> Any:
        return self.content.get(key, default)

    def copy(self) -> Message:
        """A copy whose content may be changed without touching this one."""
        return type(self)(copy.deepcopy(self.content), self.channel.name, self.channel_layer)

    def __repr__(self) -> str:
        return f"<Message on {self.channel.name!r} keys={sorted(self.content)}>"
