"""Telex's side of each scenario: hello world, echo, group chat, upload.

Written against the consumer toolkit (``telex.routing.route``, ``telex.Group``)
and served by ``telex serve --routing benchmarks.telex_app:routing`` or
``telex worker benchmarks.telex_app:routing``. The same behaviour as
``benchmarks/peers/benchpeer/consumers.py``.
"""

from __future__ import annotations

from typing import Any

from telex import Group
from telex.routing import route
from telex.worker.http import iter_body

HELLO = {"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": b"Hello world"}


def http_request(message: Any) -> None:
    if message.content["path"] != "/upload":
        message.reply_channel.send(HELLO)
        return
    size = sum(len(piece) for piece in iter_body(message))
    message.reply_channel.send(
        {"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": str(size).encode()}
    )


def ws_connect(message: Any) -> None:
    # Join before accepting, so a completed handshake means "in the group".
    if message.content["path"] == "/chat":
        Group("chat").add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def ws_receive(message: Any) -> None:
    if message.content["path"] == "/chat":
        Group("chat").send({"text": message.content["text"]})
    else:
        message.reply_channel.send({"text": message.content["text"]})


def ws_disconnect(message: Any) -> None:
    if message.content["path"] == "/chat":
        Group("chat").discard(message.reply_channel)


routing = [
    route("http.request", http_request),
    route("websocket.connect", ws_connect),
    route("websocket.receive", ws_receive),
    route("websocket.disconnect", ws_disconnect),
]
