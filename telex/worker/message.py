"""The ``message`` a consumer receives, with the attributes Channels 1.x users know."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .channels import Channel

__all__ = ["Message"]


class Message:
    """One received message: ``content``, ``channel`` (its name), ``reply_channel``.

    ``message[key]`` and ``message.get(key)`` read the content. Decorators
    add ``channel_session``, ``http_session_key`` and ``user``.
    """

    def __init__(self, content: dict, channel: str, channel_layer: Any) -> None:
        self.content = content
        self.channel = channel
        #: The same name; ``telex.django``'s message has a Channel in ``channel``.
        self.channel_name = channel
        self.channel_layer = channel_layer
        reply = content.get("reply_channel")
        self.reply_channel: Channel | None = (
            Channel(reply, channel_layer=channel_layer) if isinstance(reply, str) else None
        )
        self.channel_session: Any = None
        self.http_session_key: str | None = None
        self.user: Any = None

    def __getitem__(self, key: str) -> Any:
        return self.content[key]

    def __contains__(self, key: object) -> bool:
        return key in self.content

    def __iter__(self) -> Iterator[str]:
        return iter(self.content)

    def get(self, key: str, default: Any = None) -> Any:
        return self.content.get(key, default)

    def keys(self) -> Any:
        return self.content.keys()

    def items(self) -> Any:
        return self.content.items()

    def __repr__(self) -> str:
        return f"<Message on {self.channel!r} keys={sorted(self.content)}>"
