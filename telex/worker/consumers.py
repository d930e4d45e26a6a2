"""Class-based consumers, in the shape Channels 1.x users know.

A class is routed with ``route_class(Consumer, path=...)`` on every channel
its ``method_mapping`` names. The worker calls the class with the message
and the route's keyword arguments; the instance dispatches at once. Class
attributes switch on the decorators: ``channel_session``, ``http_user``
(WebSocket: user from the HTTP session at connect, from the channel session
afterwards), ``strict_ordering``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from .channels import Group
from .message import Message
from .ordering import enforce_ordering
from .sessions import channel_session, channel_session_user, channel_session_user_from_http

__all__ = ["BaseConsumer", "JsonWebsocketConsumer", "WebsocketConsumer"]


class BaseConsumer:
    """Dispatch a message to the method ``method_mapping`` names for its channel."""

    method_mapping: dict[str, str] = {}
    channel_session: bool = False
    strict_ordering: bool = False

    def __init__(self, message: Message, **kwargs: Any) -> None:
        self.message = message
        self.kwargs = kwargs
        self.get_handler(message)(message, **kwargs)

    @classmethod
    def channel_names(cls) -> set[str]:
        return set(cls.method_mapping)

    def get_handler(self, message: Message) -> Callable[..., Any]:
        """The bound method for the message's channel, wrapped in the decorators asked for."""
        try:
            handler: Callable[..., Any] = getattr(self, self.method_mapping[message.channel_name])
        except KeyError:
            raise ValueError(
                f"{type(self).__name__} has no method for channel {message.channel_name!r}"
            ) from None
        if self.channel_session:
            handler = channel_session(handler)
        if self.strict_ordering:
            handler = enforce_ordering(handler)
        return handler


class WebsocketConsumer(BaseConsumer):
    """``connect`` / ``receive`` / ``disconnect`` and ``self.send``; joins ``groups``."""

    method_mapping = {
        "websocket.connect": "raw_connect",
        "websocket.receive": "raw_receive",
        "websocket.disconnect": "raw_disconnect",
    }
    #: Groups every connection joins at connect and leaves at disconnect.
    groups: Iterable[str] = ()
    #: Find the user from the HTTP session at connect; keep it in the channel session.
    http_user: bool = False

    def get_handler(self, message: Message) -> Callable[..., Any]:
        if not self.http_user:
            return super().get_handler(message)
        handler: Callable[..., Any] = getattr(self, self.method_mapping[message.channel_name])
        if message.channel_name == "websocket.connect":
            handler = channel_session_user_from_http(handler)
        else:
            handler = channel_session_user(handler)
        if self.strict_ordering:
            handler = enforce_ordering(handler)
        return handler

    def connection_groups(self, **kwargs: Any) -> Iterable[str]:
        """The groups of this connection; override to derive them from route kwargs."""
        return self.groups

    def raw_connect(self, message: Message, **kwargs: Any) -> None:
        for group in self.connection_groups(**kwargs):
            Group(group, channel_layer=message.channel_layer).add(message["reply_channel"])
        self.connect(message, **kwargs)

    def raw_receive(self, message: Message, **kwargs: Any) -> None:
        if message.get("text") is not None:
            self.receive(text=message["text"], **kwargs)
        else:
            self.receive(bytes=message.get("bytes"), **kwargs)

    def raw_disconnect(self, message: Message, **kwargs: Any) -> None:
        for group in self.connection_groups(**kwargs):
            Group(group, channel_layer=message.channel_layer).discard(message["reply_channel"])
        self.disconnect(message, **kwargs)

    def connect(self, message: Message, **kwargs: Any) -> None:
        """Accept by default; send ``{"close": True}`` (``self.close()``) to reject."""
        self.message.reply_channel.send({"accept": True})  # type: ignore[union-attr]

    def receive(self, text: str | None = None, bytes: bytes | None = None, **kwargs: Any) -> None:
        """Called for each frame, with ``text`` or ``bytes``."""

    def disconnect(self, message: Message, **kwargs: Any) -> None:
        """Called when the socket closed; its groups are already left."""

    def send(self, text: str | None = None, bytes: bytes | None = None, close: bool | int = False) -> None:
        self.message.reply_channel.send(_frame(text, bytes, close))  # type: ignore[union-attr]

    def close(self, code: bool | int = True) -> None:
        self.message.reply_channel.send({"close": code})  # type: ignore[union-attr]

    @classmethod
    def group_send(
        cls, name: str, text: str | None = None, bytes: bytes | None = None, close: bool | int = False
    ) -> None:
        Group(name).send(_frame(text, bytes, close))


class JsonWebsocketConsumer(WebsocketConsumer):
    """Frames are JSON text: ``receive(content)`` gets the decoded value, ``send(content)`` encodes."""

    def raw_receive(self, message: Message, **kwargs: Any) -> None:
        if message.get("text") is None:
            raise ValueError("JsonWebsocketConsumer received a binary frame; it expects JSON text")
        self.receive(json.loads(message["text"]), **kwargs)

    def receive(self, content: Any = None, **kwargs: Any) -> None:  # type: ignore[override]
        """Called for each frame with its decoded JSON value."""

    def send(self, content: Any = None, close: bool | int = False) -> None:  # type: ignore[override]
        super().send(text=json.dumps(content), close=close)

    @classmethod
    def group_send(cls, name: str, content: Any = None, close: bool | int = False) -> None:  # type: ignore[override]
        Group(name).send(_frame(json.dumps(content), None, close))


def _frame(text: str | None, data: bytes | None, close: bool | int) -> dict[str, Any]:
    if text is not None and data is not None:
        raise ValueError("send either text or bytes, not both")
    content: dict[str, Any] = {}
    if text is not None:
        content["text"] = text
    elif data is not None:
        content["bytes"] = data
    if close:
        content["close"] = close
    return content
