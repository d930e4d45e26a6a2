"""The exceptions Channels 1.x consumers raise and catch, under their old names.

The worker (``telex.django.worker``) acts on ``DenyConnection``,
``ChannelSocketException`` and ``ConsumeLater``; the HTTP handler on
``ResponseLater`` and ``RequestAborted``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestAborted as _DjangoRequestAborted

from ..worker.http import RequestAborted as _ToolkitRequestAborted

__all__ = [
    "ChannelSocketException",
    "ConsumeLater",
    "DenyConnection",
    "RequestAborted",
    "RequestTimeout",
    "ResponseLater",
    "SendNotAvailableOnDemultiplexer",
    "WebsocketCloseException",
]


class ConsumeLater(Exception):
    """Put the message back on its channel to be consumed later (up to the worker's retry limit)."""


class ResponseLater(Exception):
    """Raised in a view that handed its reply channel to another consumer: send no response now."""


class RequestTimeout(Exception):
    """The request body did not arrive in time."""


class RequestAborted(_ToolkitRequestAborted, _DjangoRequestAborted):
    """The client left before the request body (or the response) was complete.

    A subclass of the toolkit's ``telex.worker.http.RequestAborted`` and of
    Django's own, so code catching any of the three sees it.
    """


class DenyConnection(Exception):
    """Raised in a ``websocket.connect`` consumer to reject the handshake (a 403)."""


class ChannelSocketException(Exception):
    """An exception that knows what to send when it escapes a consumer: override ``run``."""

    def run(self, message: Any) -> None:
        raise NotImplementedError


class WebsocketCloseException(ChannelSocketException):
    """Close the WebSocket, optionally with a code (1000 or 3000-4999), when raised in a consumer."""

    def __init__(self, code: int | None = None) -> None:
        if code is not None and (type(code) is not int or (code != 1000 and not 3000 <= code <= 4999)):
            raise ValueError(f"invalid close code {code!r} (must be 1000 or from 3000 to 4999)")
        super().__init__(code)
        self._code = code

    def run(self, message: Any) -> None:
        reply_channel = message.reply_channel
        if reply_channel is None or not message.channel.name.startswith("websocket."):
            raise ValueError("WebsocketCloseException can only be raised in a WebSocket consumer")
        reply_channel.send({"close": self._code or True})


class SendNotAvailableOnDemultiplexer(Exception):
    """A demultiplexer cannot send itself: send through the multiplexer of the stream."""
