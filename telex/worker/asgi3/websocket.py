"""One ``websocket`` scope: a connection that lives in this worker process.

The instance's ``websocket.accept`` names this process's channel for the
socket (``telex.receive_channel``), so the server sends its later frames
and its disconnect here, in order, and not to the shared channels.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .layer import LayerAccess
from .scopes import websocket_event

logger = logging.getLogger("telex.worker")

#: The extension keys of the Accept reply (``telex/protocols/websocket_messages.py``).
RECEIVE_CHANNEL_KEY = "telex.receive_channel"
SUBPROTOCOL_KEY = "telex.subprotocol"
DENIAL_KEY = "telex.denial"


class WebSocketInstance:
    def __init__(self, access: LayerAccess, message: dict, local_channel: str) -> None:
        self.access = access
        self.reply_channel: str = message["reply_channel"]
        self.local_channel = local_channel
        self.label = str(message.get("path"))
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._events.put_nowait({"type": "websocket.connect"})
        self.accepted = False
        self.closed = False  # the application closed or refused it
        self.gone: dict[str, Any] | None = None  # the disconnect event, once it came
        self._denial: dict[str, Any] | None = None  # a denial response being collected

    async def run(self, app: Any, scope: dict) -> bool:
        """Run the application for this socket; False if it raised (logged; the socket closes 1011)."""
        try:
            await app(scope, self.receive, self.send)
        except Exception:
            logger.exception(
                "the ASGI application raised on WebSocket %s (reply channel %s)",
                self.label,
                self.reply_channel,
            )
            await self._end(1011)
            return False
        await self._end(1000)
        return True

    def deliver(self, message: dict) -> None:
        """A message from the server for this socket: a frame, or its disconnect."""
        if self.gone is not None:
            return
        event = websocket_event(message)
        if event["type"] == "websocket.disconnect":
            self.gone = event
        self._events.put_nowait(event)

    def disconnect(self, code: int) -> None:
        """End the socket from this side (the worker is stopping): the application hears ``code``."""
        self.deliver({"code": code})

    async def shut(self, code: int) -> None:
        """The worker is stopping: close the socket with ``code``, and tell the application."""
        if not self.closed and self.gone is None:
            self.closed = True
            await self._reply({"close": code if self.accepted else True})
        self.disconnect(code)

    async def receive(self) -> dict[str, Any]:
        if self.gone is not None and self._events.empty():
            return self.gone  # asked again after the disconnect
        return await self._events.get()

    async def send(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "websocket.accept":
            if self.accepted or self.closed:
                raise RuntimeError("websocket.accept on a socket already accepted or closed")
            reply: dict[str, Any] = {"accept": True, RECEIVE_CHANNEL_KEY: self.local_channel}
            if event.get("subprotocol") is not None:
                reply[SUBPROTOCOL_KEY] = str(event["subprotocol"])
            self.accepted = True
            await self._reply(reply)
        elif kind == "websocket.send":
            if not self.accepted:
                raise RuntimeError("websocket.send before websocket.accept")
            if self.closed or self.gone is not None:
                return  # ASGI 2.3: sends after a disconnect are ignored
            if event.get("bytes") is not None:
                await self._reply({"bytes": bytes(event["bytes"])})
            else:
                await self._reply({"text": str(event.get("text") or "")})
        elif kind == "websocket.http.response.start":
            if self.accepted or self.closed or self._denial is not None:
                raise RuntimeError("websocket.http.response.start after an accept, a close or another start")
            self._denial = {
                "status": int(event["status"]),
                "headers": [[bytes(name), bytes(value)] for name, value in event.get("headers") or ()],
                "content": b"",
            }
        elif kind == "websocket.http.response.body":
            if self._denial is None or self.closed:
                raise RuntimeError("websocket.http.response.body without websocket.http.response.start")
            self._denial["content"] += bytes(event.get("body") or b"")
            if not event.get("more_body", False):
                # The whole response goes in one refusal: it must fit in one layer message.
                self.closed = True
                await self._reply({"close": True, DENIAL_KEY: self._denial})
        elif kind == "websocket.close":
            if self.closed or self.gone is not None or self._denial is not None:
                return
            self.closed = True
            # Before the accept, a close is a refusal: the server answers 403.
            code = int(event.get("code") or 1000)
            await self._reply({"close": code if self.accepted else True})
        else:
            raise ValueError(f"unknown or unsupported event type {kind!r} for a websocket scope")

    async def _end(self, code: int) -> None:
        """The application returned: refuse, or close, a socket it left open."""
        if self.closed or self.gone is not None:
            return
        self.closed = True
        await self._reply({"close": code if self.accepted else True})

    async def _reply(self, message: dict[str, Any]) -> None:
        if not await self.access.send(self.reply_channel, message):
            self.disconnect(1011)
