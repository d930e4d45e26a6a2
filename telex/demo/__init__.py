"""The demo README's first command starts: a chat page and group chat (S3).

``telex serve --routing telex.demo:routing`` serves the page at ``/`` and
the chat over WebSocket at ``/chat/``, all in one process on ``memory://``.
"""

from __future__ import annotations

from importlib import resources

from telex import Group
from telex.routing import route
from telex.worker.http import send_response

PAGE = resources.files(__package__).joinpath("chat.html").read_bytes()


def page(message) -> None:
    if message["path"] in ("/", "/index.html"):
        send_response(message, PAGE, content_type="text/html; charset=utf-8")
    else:
        send_response(message, b"Not found\n", status=404)


def connect(message) -> None:
    message.reply_channel.send({"accept": True})
    Group("demo-chat").add(message.reply_channel)


def receive(message) -> None:
    text = message["text"] if message["text"] is not None else "(binary message)"
    Group("demo-chat").send({"text": text[:2000]})


def disconnect(message) -> None:
    Group("demo-chat").discard(message.reply_channel)


routing = [
    route("http.request", page),
    route("websocket.connect", connect),
    route("websocket.receive", receive),
    route("websocket.disconnect", disconnect),
]
