"""A spec-level WebSocket test application: a layer plus a consumer thread.

Served as ``telex serve tests.apps.raw_ws:channel_layer``. One thread
consumes ``websocket.connect``/``receive``/``disconnect`` (and
``http.request`` for ``/events``) with the bare ASGI layer API and behaves
by path. Every message it receives is recorded; ``GET /events`` returns
them as JSON so tests check exactly what the server sent.

Connect paths: ``/echo`` (accept; echo every message), ``/reject``
(``accept: False``), ``/close`` (``close: True`` while connecting),
``/text-first`` (non-empty text while connecting), ``/text-and-close``
(text plus ``close: 4000`` while connecting), ``/accept-with-empty-text``,
``/both-then-accept`` (a message with both bytes and text, then an accept),
``/unknown-key`` (accept with an extra key), ``/never`` (no answer),
``/slow-accept?SECONDS`` (accept after a delay), ``/stall`` (accept, then
stop consuming ``websocket.receive`` until ``GET /unstall``).

Text commands on an accepted socket: ``close`` (``close: True``),
``close:CODE``, ``whoami`` (the reply channel back), ``empty-text``,
``empty-bytes``, ``big:N`` (N bytes back), ``flood:N:SIZE`` (N binary messages of SIZE
bytes), ``send-then-close``.
Anything else is echoed with its type kept; on ``/autobahn`` everything is.
"""

from __future__ import annotations

import json
import os
import threading
import time

from telex.layers import InMemoryChannelLayer
from tests.apps.jsonable import to_jsonable

channel_layer = InMemoryChannelLayer(
    capacity=int(os.environ.get("RAW_WS_CAPACITY", "100")),
    channel_capacity={
        "websocket.receive": int(os.environ.get("RAW_WS_RECEIVE_CAPACITY", "100")),
        # Named, or the connect channel's default of 1000 would outweigh RAW_WS_CAPACITY.
        "websocket.connect": int(os.environ.get("RAW_WS_CAPACITY", "100")),
    },
    max_message_size=int(os.environ.get("RAW_WS_MAX_MESSAGE_SIZE", str(8 * 1024 * 1024))),
)
events: list[dict] = []
_paths: dict[str, str] = {}  # reply channel -> path
_accepted: set[str] = set()
_stalled = threading.Event()
_consume_connect = os.environ.get("RAW_WS_NO_CONNECT") != "1"


def _send(channel: str, message: dict) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            channel_layer.send(channel, message)
            return
        except channel_layer.ChannelFull:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


def _accept(reply_channel: str, **extra) -> None:
    _accepted.add(reply_channel)
    _send(reply_channel, {"accept": True, **extra})


def on_connect(message: dict) -> None:
    reply = message["reply_channel"]
    path = message["path"]
    _paths[reply] = path
    if path in ("/echo", "/message"):
        _accept(reply)
    elif path == "/reject":
        _send(reply, {"accept": False, "text": "must not arrive"})
    elif path == "/close":
        _send(reply, {"close": True})
    elif path == "/text-first":
        _accepted.add(reply)
        _send(reply, {"text": "hello"})
    elif path == "/text-and-close":
        _accepted.add(reply)
        _send(reply, {"text": "goodbye", "close": 4000})
    elif path == "/accept-with-empty-text":
        _accept(reply, text="")
    elif path == "/both-then-accept":
        _send(reply, {"bytes": b"x", "text": "y"})
        _accept(reply)
        _send(reply, {"text": "after"})
    elif path == "/unknown-key":
        _accept(reply, colour="red")
    elif path == "/never":
        pass
    elif path == "/slow-accept":
        delay = float(message["query_string"] or b"0.3")
        threading.Timer(delay, _accept, (reply,)).start()
    elif path == "/stall":
        _stalled.set()
        _accept(reply)
    else:
        _accept(reply)


def on_receive(message: dict) -> None:
    reply = message["reply_channel"]
    text = message["text"]
    if message["path"] == "/autobahn":  # a pure echo for the conformance suite
        _send(reply, {"text": text} if text is not None else {"bytes": message["bytes"]})
    elif text == "whoami":
        _send(reply, {"text": reply})
    elif text == "close":
        _send(reply, {"close": True})
    elif text is not None and text.startswith("close:"):
        _send(reply, {"close": int(text.split(":", 1)[1])})
    elif text == "empty-text":
        _send(reply, {"text": ""})
    elif text == "empty-bytes":
        _send(reply, {"bytes": b""})
    elif text is not None and text.startswith("big:"):
        _send(reply, {"bytes": b"b" * int(text[4:])})
    elif text is not None and text.startswith("flood:"):
        _, count, size = text.split(":")
        for _ in range(int(count)):
            _send(reply, {"bytes": b"f" * int(size)})
    elif text == "send-then-close":
        _send(reply, {"text": "last words", "close": 4001})
    elif text is not None:
        _send(reply, {"text": text})
    else:
        _send(reply, {"bytes": message["bytes"]})


def on_http(message: dict) -> None:
    path = message["path"]
    if path == "/events":
        body = json.dumps([to_jsonable(event) for event in events]).encode()
    elif path == "/unstall":
        _stalled.clear()
        body = b"ok"
    else:
        body = b"not found"
    _send(message["reply_channel"], {"status": 200, "content": body})


def _consume() -> None:
    while True:
        channels = ["http.request", "websocket.disconnect"]
        if _consume_connect:
            channels.append("websocket.connect")
        if not _stalled.is_set():
            channels.append("websocket.receive")
        channel, message = channel_layer.receive(channels, block=True)
        if channel is None:
            continue
        if channel.startswith("websocket."):
            event = {"channel": channel, **message}
            if channel == "websocket.receive":
                event["after_accept"] = message["reply_channel"] in _accepted
            events.append(event)
        try:
            if channel == "websocket.connect":
                on_connect(message)
            elif channel == "websocket.receive":
                on_receive(message)
            elif channel == "http.request":
                on_http(message)
        except Exception as exc:  # keep serving; the test sees the effect
            print("raw ws app error:", repr(exc), flush=True)


threading.Thread(target=_consume, name="raw-ws-app", daemon=True).start()
