"""One ``websocket`` scope: a connection that lives in this worker process.

The instance's ``websocket.accept`` names this process's channel for the
socket (``telex.receive_channel``), so the server sends its later frames
and its disconnect here, in order, and not to the shared channels.

When the worker stops, a resumable socket is *released* rather than closed:
the application hears ``websocket.disconnect`` 1012, and what it did not take
goes back to the server, which resumes the socket on another worker
(``telex/protocols/websocket_resume.py`` has the exchange; docs/asgi3.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .layer import LayerAccess
from .scopes import websocket_event
from .socket_channel import SocketChannel

logger = logging.getLogger("telex.worker")

#: The extension keys of the Accept reply (``telex/protocols/websocket_messages.py``).
RECEIVE_CHANNEL_KEY = "telex.receive_channel"
SUBPROTOCOL_KEY = "telex.subprotocol"
DENIAL_KEY = "telex.denial"
RESUMABLE_KEY = "telex.resumable"
#: The steps of a move, the key of a resuming connect, a message for the
#: socket's own channel (``telex/protocols/websocket_messages.py``).
MOVE_KEY = "telex.move"
RESUME_KEY = "telex.resume"
CHANNEL_MESSAGE_KEY = "telex.message"

#: Close code of a socket whose worker stops: service restart (RFC 6455 7.4.1).
RESTART_CLOSE_CODE = 1012

#: Seconds a released instance's application may take to return before its
#: socket is handed back anyway (the worker's --stop-timeout bounds it too).
GIVE_BACK_WAIT = 10.0


class WebSocketInstance:
    def __init__(
        self, access: LayerAccess, message: dict, local_channel: str, *, resume: bool = True
    ) -> None:
        self.access = access
        self.reply_channel: str = message["reply_channel"]
        self.local_channel = local_channel
        self.label = str(message.get("path"))
        self.resume = resume  # this worker resumes sockets (not --no-resume)
        self.resumed = message.get(RESUME_KEY) is True  # this connect resumes an open socket
        # What the server sent, with its arrival number (None: the connect event).
        self._events: asyncio.Queue[tuple[int, dict | None]] = asyncio.Queue()
        self._events.put_nowait((0, None))
        self._arrivals = 1
        self.socket_channel = SocketChannel(self.reply_channel)
        self.accepted = False
        self.resumable = False  # accepted, and the application did not say otherwise
        self.closed = False  # the application closed or refused it
        self.gone: dict[str, Any] | None = None  # the disconnect event, once it came
        self._denial: dict[str, Any] | None = None  # a denial response being collected
        self.releasing = False  # handed over to the server for another worker
        self._leftovers: list[tuple[int, dict]] = []  # what the application did not take
        self._hand_back: asyncio.Task[None] | None = None
        self.handed_back = asyncio.Event()
        self.finished = asyncio.Event()  # the application returned

    async def run(self, app: Any, scope: dict) -> bool:
        """Run the application for this socket; False if it raised (logged; the socket closes 1011)."""
        if self.resume:
            scope["extensions"]["telex.resume"] = {"resumed": self.resumed}
        self.socket_channel.open()
        try:
            return await self._run(app, scope)
        finally:
            self.finished.set()

    async def _run(self, app: Any, scope: dict) -> bool:
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
        """A message from the server for this socket: a frame, its disconnect, a channel message."""
        if MOVE_KEY in message:
            # The server sends nothing more here: hand back what the application did not take.
            if not self.releasing:  # the server took this worker for dead
                self._release()
            if self._hand_back is None:
                self._hand_back = asyncio.ensure_future(self._give_back())
            return
        arrival = self._arrivals
        self._arrivals += 1
        if self.releasing:
            self._leftovers.append((arrival, message))
        elif CHANNEL_MESSAGE_KEY in message:
            self.socket_channel.put(arrival, message[CHANNEL_MESSAGE_KEY])
        elif self.gone is None:
            if "code" in message:
                self.gone = websocket_event(message)
            self._events.put_nowait((arrival, message))

    def disconnect(self, code: int) -> None:
        """End the socket from this side (the worker is stopping): the application hears ``code``."""
        self.deliver({"code": code})

    async def release(self) -> None:
        """The worker is stopping: the server is to resume this socket elsewhere (``resumable``)."""
        self._release()
        await self._reply({MOVE_KEY: "release"})

    def _release(self) -> None:
        """Take back what the application did not take; it hears ``websocket.disconnect`` 1012."""
        self.releasing = True
        leftovers = [(number, {CHANNEL_MESSAGE_KEY: m}) for number, m in self.socket_channel.drain()]
        while not self._events.empty():
            number, message = self._events.get_nowait()
            if message is not None:
                leftovers.append((number, message))
        self._leftovers = sorted(leftovers, key=lambda item: item[0])
        self.gone = websocket_event({"code": RESTART_CLOSE_CODE})
        self._events.put_nowait((self._arrivals, {"code": RESTART_CLOSE_CODE}))

    async def _give_back(self) -> None:
        try:
            # What the application sends until it returns reaches the client before the resumed
            # instance starts, and what it is busy with is not done twice or out of order.
            await _wait(self.finished, GIVE_BACK_WAIT)
            unhandled = self.socket_channel.in_hand
            if self.finished.is_set() and unhandled is not None:
                # Taken by the consumer's loop as it stopped, never handled (socket_channel.py).
                self._leftovers.append((unhandled[0], {CHANNEL_MESSAGE_KEY: unhandled[1]}))
                self._leftovers.sort(key=lambda item: item[0])
            for _, message in self._leftovers:
                await self.access.send(self.reply_channel, {MOVE_KEY: "return", "message": message})
            await self.access.send(self.reply_channel, {MOVE_KEY: "returned"})
        finally:
            self.handed_back.set()

    def finish(self) -> None:
        """The instance is forgotten: its own channel is no longer this process's."""
        self.socket_channel.close()

    @property
    def can_release(self) -> bool:
        """Open, accepted as resumable, and not released yet."""
        return self.resumable and not self.closed and self.gone is None and not self.releasing

    async def shut(self, code: int) -> None:
        """The worker is stopping: close the socket with ``code``, and tell the application."""
        if not self.closed and self.gone is None:
            self.closed = True
            await self._reply({"close": code if self.accepted else True})
        self.disconnect(code)

    async def receive(self) -> dict[str, Any]:
        if self.gone is not None and self._events.empty():
            return self.gone  # asked again after the disconnect
        _, message = await self._events.get()
        return {"type": "websocket.connect"} if message is None else websocket_event(message)

    async def send(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "websocket.accept":
            if self.accepted or self.closed:
                raise RuntimeError("websocket.accept on a socket already accepted or closed")
            reply: dict[str, Any] = {"accept": True, RECEIVE_CHANNEL_KEY: self.local_channel}
            if event.get("subprotocol") is not None:
                reply[SUBPROTOCOL_KEY] = str(event["subprotocol"])
            # An application that keeps what a resumed instance could not have says so.
            self.resumable = self.resume and event.get(RESUMABLE_KEY) is not False
            if self.resumable:
                reply[RESUMABLE_KEY] = True
            self.accepted = True
            await self._reply(reply)
        elif kind == "websocket.send":
            if not self.accepted:
                raise RuntimeError("websocket.send before websocket.accept")
            if self.closed or (self.gone is not None and not self.releasing):
                return  # ASGI 2.3: sends after a disconnect are ignored (a release is no disconnect)
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


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        pass
