"""WebSocket consumers with Channels 1.x's names: plain, JSON, and streams multiplexed over one socket.

Route a class with ``route_class(ChatConsumer, path=r"^/chat/$")``. Sends
made by its methods are held until the message's consumer returns, as any
send in a consumer is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from ...worker import channels as _channels
from ...worker import consumers as _consumers
from ..auth import channel_and_http_session_user_from_http, channel_session_user_from_http
from ..channel import Group
from ..exceptions import SendNotAvailableOnDemultiplexer
from ..sessions import enforce_ordering
from .base import BaseConsumer

__all__ = [
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
    "WebsocketDemultiplexer",
    "WebsocketMultiplexer",
]


def _frame(text: str | None, data: bytes | None, close: bool | int) -> dict[str, Any]:
    if text is not None:
        content: dict[str, Any] = {"text": text}
    elif data is not None:
        content = {"bytes": data}
    else:
        raise ValueError("send() needs text or bytes")
    if close:
        content["close"] = close
    return content


class WebsocketConsumer(BaseConsumer, _consumers.WebsocketConsumer):
    """``connect`` / ``receive`` / ``disconnect``, ``send`` and ``close``; joins ``connection_groups()``.

    Class attributes: ``http_user`` (the login of the HTTP session at connect,
    ``message.user`` from the channel session on every message),
    ``http_user_and_session`` (the same, plus ``message.http_session`` on
    every message), ``channel_session``, ``channel_session_user``,
    ``strict_ordering`` (messages in the order of the socket),
    ``slight_ordering`` (accepted; connect always runs before receive in Telex),
    ``groups``.
    """

    method_mapping = {
        "websocket.connect": "raw_connect",
        "websocket.receive": "raw_receive",
        "websocket.disconnect": "raw_disconnect",
    }
    http_user: bool = False
    http_user_and_session: bool = False
    strict_ordering: bool = False
    slight_ordering: bool = False
    groups: Iterable[str] | None = None  # type: ignore[assignment]

    def get_handler(self, message: Any, **kwargs: Any) -> Callable[..., Any]:
        if self.http_user or self.http_user_and_session:
            self.channel_session_user = True
        self.path = message.get("path")
        handler = super().get_handler(message, **kwargs)
        if self.http_user_and_session:
            handler = channel_and_http_session_user_from_http(handler)
        elif self.http_user:
            handler = channel_session_user_from_http(handler)
        if self.strict_ordering:
            return enforce_ordering(handler)
        if self.slight_ordering:
            return enforce_ordering(handler, slight=True)
        return handler

    def connection_groups(self, **kwargs: Any) -> Iterable[str]:
        """The groups a connection joins at connect and leaves at disconnect (a list, not a string)."""
        return self.groups or []

    def raw_receive(self, message: Any, **kwargs: Any) -> None:
        if "text" in message:
            self.receive(text=message["text"], **kwargs)
        else:
            self.receive(bytes=message["bytes"], **kwargs)

    def send(self, text: str | None = None, bytes: bytes | None = None, close: bool | int = False) -> None:
        """Send a frame down this socket (``close`` closes it after, with a code if an int)."""
        if self.kwargs.get("multiplexer") is not None:
            raise SendNotAvailableOnDemultiplexer(
                "this consumer runs inside a WebsocketDemultiplexer: use kwargs['multiplexer'].send(payload)"
            )
        self.message.reply_channel.send(_frame(text, bytes, close))

    def close(self, status: bool | int = True) -> None:  # type: ignore[override]
        """Close the socket from the server (``status`` is a close code, or True for 1000)."""
        self.message.reply_channel.send({"close": status})

    @classmethod
    def group_send(  # type: ignore[override]
        cls, name: str, text: str | None = None, bytes: bytes | None = None, close: bool | int = False
    ) -> None:
        Group(name).send(_frame(text, bytes, close))


class JsonWebsocketConsumer(WebsocketConsumer):
    """Frames are JSON text: ``receive(content)`` gets the decoded value, ``send(content)`` encodes it."""

    def raw_receive(self, message: Any, **kwargs: Any) -> None:
        if "text" not in message:
            raise ValueError("JsonWebsocketConsumer received a frame with no text (a binary frame?)")
        self.receive(self.decode_json(message["text"]), **kwargs)

    def receive(self, content: Any = None, **kwargs: Any) -> None:  # type: ignore[override]
        """Called with each frame's decoded JSON."""

    def send(self, content: Any = None, close: bool | int = False) -> None:  # type: ignore[override]
        super().send(text=self.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text: str) -> Any:
        return json.loads(text)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)

    @classmethod
    def group_send(cls, name: str, content: Any = None, close: bool | int = False) -> None:  # type: ignore[override]
        WebsocketConsumer.group_send(name, cls.encode_json(content), close=close)


class WebsocketMultiplexer:
    """Sends on one stream of a multiplexed socket: frames ``{"stream": ..., "payload": ...}``.

    A demultiplexer passes one to each stream's consumer as ``kwargs["multiplexer"]``.
    """

    def __init__(self, stream: str, reply_channel: _channels.Channel) -> None:
        self.stream = stream
        self.reply_channel = reply_channel

    def send(self, payload: Any) -> None:
        self.reply_channel.send(self.encode(self.stream, payload))

    @classmethod
    def encode_json(cls, content: Any) -> str:
        # Django's encoder: payloads often carry dates, decimals and UUIDs from models.
        return json.dumps(content, cls=DjangoJSONEncoder)

    @classmethod
    def encode(cls, stream: str, payload: Any) -> dict[str, Any]:
        return {"text": cls.encode_json({"stream": stream, "payload": payload})}

    @classmethod
    def group_send(cls, name: str, stream: str, payload: Any, close: bool = False) -> None:
        message = cls.encode(stream, payload)
        if close:
            message["close"] = True
        Group(name).send(message)


class WebsocketDemultiplexer(JsonWebsocketConsumer):
    """Dispatch JSON frames ``{"stream": name, "payload": {...}}`` to ``consumers[name]``.

    The consumer gets the same message (reply channel, sessions, user) with
    the payload as its JSON text, and ``kwargs["multiplexer"]`` to answer on
    its stream; connect and disconnect go to every stream's consumer. The
    demultiplexer cannot ``send`` itself.
    """

    #: Stream name → consumer (a class-based consumer, or e.g. ``SomeBinding.consumer``).
    consumers: dict[str, Callable[..., Any]] = {}
    multiplexer_class: type[WebsocketMultiplexer] = WebsocketMultiplexer

    def receive(self, content: Any = None, **kwargs: Any) -> None:  # type: ignore[override]
        if not isinstance(content, dict) or "stream" not in content or "payload" not in content:
            raise ValueError("invalid multiplexed frame: expected a JSON object with 'stream' and 'payload'")
        stream = content["stream"]
        consumer = self.consumers.get(stream) if isinstance(stream, str) else None
        if consumer is None:
            raise ValueError(f"invalid multiplexed frame: no consumer for stream {stream!r}")
        payload = content["payload"]
        if not isinstance(payload, dict):
            raise ValueError(f"invalid multiplexed frame: the payload of stream {stream!r} is not an object")
        self.message.content["text"] = self.encode_json(payload)
        consumer(self.message, **self._with_multiplexer(stream, kwargs))

    def connect(self, message: Any, **kwargs: Any) -> None:
        self.message.reply_channel.send({"accept": True})
        self._to_every_stream(message, kwargs)

    def disconnect(self, message: Any, **kwargs: Any) -> None:
        self._to_every_stream(message, kwargs)

    def _to_every_stream(self, message: Any, kwargs: dict[str, Any]) -> None:
        for stream, consumer in self.consumers.items():
            consumer(message, **self._with_multiplexer(stream, kwargs))

    def _with_multiplexer(self, stream: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**kwargs, "multiplexer": self.multiplexer_class(stream, self.message.reply_channel)}

    def send(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        raise SendNotAvailableOnDemultiplexer("a demultiplexer cannot send: use kwargs['multiplexer'].send()")

    @classmethod
    def group_send(cls, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        raise SendNotAvailableOnDemultiplexer(
            "a demultiplexer cannot send: use WebsocketMultiplexer.group_send()"
        )
