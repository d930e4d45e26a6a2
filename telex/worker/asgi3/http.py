"""One ``http`` scope: an ``http.request`` message in, Response / Response Chunks out."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .layer import LayerAccess

logger = logging.getLogger("telex.worker")

#: The largest ``content`` of one Response (Chunk): a big ``http.response.body``
#: is split, as the layer refuses messages over about 1 MiB.
CHUNK_SIZE = 256 * 1024

#: Seconds to wait for the next request body chunk before giving the
#: application ``http.disconnect`` (the server's HTTP timeout ends it sooner).
BODY_CHUNK_TIMEOUT = 120.0

#: The Response key naming this process's channel for the request's
#: http.disconnect (``telex/protocols/http_messages.py``, docs/asgi3.md).
DISCONNECT_CHANNEL_KEY = "telex.disconnect_channel"

#: Seconds an application waits for ``http.disconnect`` with no response
#: started before this process claims the request's disconnect (sends the key
#: alone): Django's handler waits for it during every view, and most views
#: answer sooner, so most requests never pay for a claim.
DISCONNECT_CLAIM_DELAY = 0.25

INTERNAL_ERROR = {
    "status": 500,
    "headers": [[b"content-type", b"text/plain; charset=utf-8"]],
    "content": b"500 Internal Server Error\n",
    "more_content": False,
}


class HttpInstance:
    """The ``receive``/``send`` pair of one request and its reply channel.

    ``http.response.start`` is held until the first body event, so that one
    Response message carries status, headers and the first content, as ASGI 1
    expects. ``receive`` gives the body (``body``, then each chunk of
    ``body_channel``) and then ``http.disconnect``, which comes when the
    server's ``http.disconnect`` arrives or the response is complete. The
    Response names ``local_channel`` for the server's ``http.disconnect``, so
    once the response has started that reaches this process whichever
    worker took it before; an application that waits for the disconnect
    with no response started names it sooner, in a claim of its own.
    """

    def __init__(self, access: LayerAccess, message: dict, local_channel: str) -> None:
        self.access = access
        self.reply_channel: str = message["reply_channel"]
        self.local_channel = local_channel
        self.label = f"{message.get('method')} {message.get('path')}"
        self._body: bytes = message.get("body") or b""
        self._body_channel: str | None = message.get("body_channel")
        self._body_given = False  # the first http.request event went out
        self._body_complete = False
        self.gone = asyncio.Event()  # disconnected, or the response is complete
        self._start: dict[str, Any] | None = None
        self.started = False  # the Response went out
        self.complete = False
        self._claim_scheduled = False
        self._claiming: asyncio.Future[None] | None = None

    async def run(self, app: Any, scope: dict) -> bool:
        """Run the application for this request; False if it failed (logged, answered)."""
        try:
            await app(scope, self.receive, self.send)
        except Exception:
            logger.exception(
                "the ASGI application raised on %s (reply channel %s)", self.label, self.reply_channel
            )
            await self._after_failure()
            return False
        if not self.complete and not self.gone.is_set():
            logger.error(
                "the ASGI application returned without completing the response to %s (reply channel %s)",
                self.label,
                self.reply_channel,
            )
            await self._after_failure()
            return False
        return True

    def deliver(self, message: dict) -> None:
        """The server's ``http.disconnect`` for this request arrived."""
        self.gone.set()

    # -- receive ------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        if not self._body_given:
            self._body_given = True
            self._body_complete = self._body_channel is None
            return {"type": "http.request", "body": self._body, "more_body": not self._body_complete}
        if not self._body_complete and not self.gone.is_set():
            chunk = await self._next_chunk()
            if chunk is not None and not chunk.get("closed"):
                more = bool(chunk.get("more_content"))
                self._body_complete = not more
                return {"type": "http.request", "body": chunk.get("content") or b"", "more_body": more}
            self.gone.set()  # the client went away mid-body (a chunk with closed: True)
        if not self.started and not self.gone.is_set() and not self._claim_scheduled:
            self._claim_scheduled = True
            asyncio.get_running_loop().call_later(DISCONNECT_CLAIM_DELAY, self._send_claim)
        await self.gone.wait()
        return {"type": "http.disconnect"}

    def _send_claim(self) -> None:
        """Have the server send this request's ``http.disconnect`` here, not to the shared channel.

        A disconnect already sent there is sent here too (docs/http.md).
        """
        if not self.started and not self.gone.is_set():
            self._claiming = asyncio.ensure_future(self._claim_now())

    async def _claim_now(self) -> None:
        try:
            await self.access.send(self.reply_channel, {DISCONNECT_CHANNEL_KEY: self.local_channel})
        except Exception as exc:  # the disconnect may then go unheard, as without a claim
            logger.debug("claiming the disconnect of %s failed: %s", self.reply_channel, exc)

    async def _next_chunk(self) -> dict | None:
        """The next body chunk, or None if the request is gone first or none came in time."""
        assert self._body_channel is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BODY_CHUNK_TIMEOUT
        gone = asyncio.ensure_future(self.gone.wait())
        try:
            while loop.time() < deadline:
                reading = asyncio.ensure_future(self.access.receive([self._body_channel]))
                await asyncio.wait({reading, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()  # Telex's layers lose nothing to a cancelled receive
                    return None
                channel, chunk = reading.result()
                if channel is not None:
                    return chunk
            logger.warning(
                "no request body chunk for %s within %gs; disconnecting", self.label, BODY_CHUNK_TIMEOUT
            )
            return None
        finally:
            gone.cancel()

    # -- send ---------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "http.response.start":
            if self._start is not None:
                raise RuntimeError("http.response.start was already sent")
            self._start = {
                "status": int(event["status"]),
                "headers": [
                    [bytes(name).lower(), bytes(value)] for name, value in event.get("headers") or ()
                ],
            }
        elif kind == "http.response.body":
            if self._start is None:
                raise RuntimeError("http.response.body before http.response.start")
            if self.complete or self.gone.is_set():
                return  # ASGI 2.3: sends after a disconnect are ignored
            await self._send_body(bytes(event.get("body") or b""), bool(event.get("more_body", False)))
        else:
            raise ValueError(f"unknown event type {kind!r} for an http scope")

    async def _send_body(self, body: bytes, more: bool) -> None:
        pieces = [body[at : at + CHUNK_SIZE] for at in range(0, len(body), CHUNK_SIZE)] or [b""]
        for index, piece in enumerate(pieces):
            message: dict[str, Any] = {"content": piece, "more_content": more or index + 1 < len(pieces)}
            if not self.started:
                assert self._start is not None
                message = {**self._start, **message, DISCONNECT_CHANNEL_KEY: self.local_channel}
                self.started = True
            if not await self.access.send(self.reply_channel, message):
                self.gone.set()  # the server is not reading: the response cannot complete
                return
        if not more:
            self.complete = True
            self.gone.set()

    async def _after_failure(self) -> None:
        if self.complete or self.gone.is_set():
            return
        if not self.started:
            await self.access.send(self.reply_channel, INTERNAL_ERROR)
        else:
            logger.error("ending the partial response on %s after the application failed", self.reply_channel)
            await self.access.send(self.reply_channel, {"content": b"", "more_content": False})
        self.gone.set()
