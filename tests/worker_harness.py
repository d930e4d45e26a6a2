"""Drive a real Worker the way an interface server would, without one.

Messages are shaped exactly as ``spec/www.rst`` says; each fake client has
its own process-specific reply channel prefix, so it reads only its replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from typing import Any

from telex.layers import InMemoryChannelLayer
from telex.worker import Worker

_ids = itertools.count()

REPLY_TIMEOUT = 5.0


@contextlib.contextmanager
def running_worker(routing: Any, layer: Any = None, threads: int = 2, **options: Any) -> Iterator[Worker]:
    """A started Worker on ``layer`` (a fresh in-memory layer by default), stopped after."""
    layer = layer if layer is not None else InMemoryChannelLayer()
    worker = Worker(layer, routing, threads=threads, **options)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(timeout=10)
        assert not worker.running


def receive_reply(layer: Any, reply_channel: str, timeout: float = REPLY_TIMEOUT) -> dict | None:
    """The next message on ``reply_channel``, or None after ``timeout`` seconds."""
    prefix = reply_channel[: reply_channel.index("!") + 1]

    async def wait() -> tuple[Any, Any]:
        # receive_async is cancellation-safe, so the timeout loses no message.
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                channel, message = await asyncio.wait_for(layer.receive_async([prefix]), remaining)
            except TimeoutError:
                break
            if channel is not None:
                return channel, message
        return None, None

    channel, message = asyncio.run(wait())
    assert channel in (None, reply_channel)
    return message


def http_request(
    layer: Any,
    path: str = "/",
    method: str = "GET",
    *,
    body: bytes = b"",
    headers: list[list[bytes]] | None = None,
    query_string: bytes = b"",
) -> tuple[int, list[list[bytes]], bytes]:
    """Send one ``http.request`` and collect the Response and its Response Chunks."""
    reply_channel = f"http.response.t{next(_ids)}!r"
    layer.send(
        "http.request",
        {
            "reply_channel": reply_channel,
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "query_string": query_string,
            "root_path": "",
            "headers": headers or [[b"host", b"127.0.0.1:8000"]],
            "body": body,
            "client": ["127.0.0.1", 50000],
            "server": ["127.0.0.1", 8000],
        },
    )
    response = receive_reply(layer, reply_channel)
    assert response is not None, f"no response to {method} {path}"
    content = [response.get("content", b"")]
    more = response.get("more_content", False)
    for _ in range(100_000):
        if not more:
            break
        chunk = receive_reply(layer, reply_channel)
        assert chunk is not None, "response chunk missing"
        content.append(chunk.get("content", b""))
        more = chunk.get("more_content", False)
    return response["status"], response.get("headers", []), b"".join(content)


class FakeSocket:
    """One WebSocket client as the server would present it on the channels."""

    def __init__(
        self, layer: Any, path: str = "/", headers: list[list[bytes]] | None = None, query_string: bytes = b""
    ) -> None:
        self.layer = layer
        self.path = path
        self.headers = headers or [[b"host", b"127.0.0.1:8000"]]
        self.query_string = query_string
        self.reply_channel = f"websocket.send.t{next(_ids)}!s"
        self.order = 0

    def connect(self) -> dict | None:
        """Send ``websocket.connect`` and return the first reply (accept or close)."""
        self.send_connect()
        return self.receive()

    def send_connect(self) -> None:
        self.layer.send(
            "websocket.connect",
            {
                "reply_channel": self.reply_channel,
                "scheme": "ws",
                "path": self.path,
                "query_string": self.query_string,
                "root_path": "",
                "headers": self.headers,
                "client": ["127.0.0.1", 50001],
                "server": ["127.0.0.1", 8000],
                "order": 0,
            },
        )

    def receive_message(
        self, text: str | None = None, data: bytes | None = None, order: int | None = None
    ) -> dict:
        """The ``websocket.receive`` message of the next frame (not yet sent)."""
        if order is None:
            self.order += 1
            order = self.order
        return {
            "reply_channel": self.reply_channel,
            "path": self.path,
            "text": text,
            "bytes": data,
            "order": order,
        }

    def send_text(self, text: str) -> None:
        self.layer.send("websocket.receive", self.receive_message(text=text))

    def disconnect(self, code: int = 1000) -> None:
        self.order += 1
        self.layer.send(
            "websocket.disconnect",
            {"reply_channel": self.reply_channel, "path": self.path, "code": code, "order": self.order},
        )

    def receive(self, timeout: float = REPLY_TIMEOUT) -> dict | None:
        return receive_reply(self.layer, self.reply_channel, timeout)

    def receive_nothing(self, within: float = 0.2) -> bool:
        """True if nothing arrives for ``within`` seconds (time is what is tested)."""
        return self.receive(timeout=within) is None
