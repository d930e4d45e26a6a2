"""A spec-level test application: a layer plus a consumer thread, no toolkit.

Served as ``telex serve tests.apps.raw_http:channel_layer``: importing the
module creates the in-memory layer and starts one thread that consumes
``http.request`` and ``http.disconnect`` with the bare ASGI layer API and
answers by path. Tests read what the server sent from the responses.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading

from telex.layers import InMemoryChannelLayer
from tests.apps.jsonable import to_jsonable

channel_layer = InMemoryChannelLayer(
    capacity=int(os.environ.get("RAW_APP_CAPACITY", "100")),
    channel_capacity={"http.request.body?*": int(os.environ.get("RAW_APP_BODY_CAPACITY", "100"))},
)
disconnects: list[dict] = []
body_events: list[dict] = []
_parked: dict[str, dict] = {}  # long-poll requests, by reply channel


def _reply(message: dict, status: int = 200, body: bytes = b"", headers=None, **extra) -> None:
    response = {"status": status, "headers": headers or [[b"content-type", b"text/plain"]], "content": body}
    response.update(extra)
    _send(message["reply_channel"], response)


def _send(channel: str, message: dict) -> None:
    while True:
        try:
            channel_layer.send(channel, message)
            return
        except channel_layer.ChannelFull:
            threading.Event().wait(0.001)


def _read_body(message: dict) -> bytes:
    body = message["body"]
    channel = message.get("body_channel")
    hasher = hashlib.sha256(body)
    size = len(body)
    while channel:
        _, chunk = channel_layer.receive([channel], block=True)
        if chunk is None:
            continue
        if chunk.get("closed"):
            body_events.append({"closed": True, "size": size})
            return json.dumps({"closed": True, "size": size}).encode()
        hasher.update(chunk["content"])
        size += len(chunk["content"])
        if not chunk.get("more_content"):
            break
    return json.dumps({"size": size, "sha256": hasher.hexdigest(), "streamed": bool(channel)}).encode()


def handle(channel: str, message: dict) -> None:
    if channel == "http.disconnect":
        disconnects.append(message)
        return
    path = message["path"]
    if path.startswith("/message"):
        _reply(
            message,
            body=json.dumps(to_jsonable(message)).encode(),
            headers=[[b"content-type", b"application/json"]],
        )
    elif path == "/body":
        _reply(message, body=_read_body(message))
    elif path == "/stream":
        _reply(message, body=b"first;", more_content=True)
        for i in range(3):
            _send(message["reply_channel"], {"content": f"chunk{i};".encode(), "more_content": True})
        _send(message["reply_channel"], {"content": b"last", "more_content": False})
    elif path == "/stream-wait":
        # Head now; the rest only when /release is requested (proves no buffering).
        _reply(message, body=b"head;", more_content=True)
        _parked[path] = message
    elif path == "/release":
        parked = _parked.pop("/stream-wait")
        _send(parked["reply_channel"], {"content": b"tail", "more_content": False})
        _reply(message, body=b"released")
    elif path == "/hold":
        # Head now (naming the reply channel), the end on /release-held?KEY:
        # many of these on one HTTP/2 connection show the multiplexing.
        key = message["query_string"].decode()
        _reply(message, body=message["reply_channel"].encode() + b";", more_content=True)
        _parked["hold:" + key] = message
    elif path == "/release-held":
        key = message["query_string"].decode()
        _send(_parked.pop("hold:" + key)["reply_channel"], {"content": key.encode(), "more_content": False})
        _reply(message, body=b"released")
    elif path == "/body-held":
        _parked["body-held"] = message  # its body is not read until /release-body
    elif path == "/release-body":
        _reply(message, body=b"released")
        held = _parked.pop("body-held")
        _reply(held, body=_read_body(held))
    elif path == "/hop-headers":
        _reply(
            message,
            headers=[[b"connection", b"keep-alive"], [b"keep-alive", b"timeout=5"], [b"x-kept", b"1"]],
        )
    elif path == "/big":
        size = int(message["query_string"] or b"1048576")
        _reply(message, body=b"x" * size)
    elif path == "/headers":
        _reply(message, headers=[[b"set-cookie", b"a=1"], [b"set-cookie", b"b=2"], [b"x-custom", b"yes"]])
    elif path == "/status":
        _reply(message, status=int(message["query_string"] or b"200"), body=b"")
    elif path == "/never":
        pass  # no reply: the HTTP timeout answers
    elif path == "/longpoll":
        _parked[message["reply_channel"]] = message
    elif path == "/body-events":
        _reply(message, body=json.dumps(body_events).encode())
    elif path == "/stream-big":
        count = int(message["query_string"] or b"100")
        _reply(message, body=b"", more_content=True)
        for _ in range(count):
            _send(message["reply_channel"], {"content": b"y" * 512 * 1024, "more_content": True})
        _send(message["reply_channel"], {"content": b"", "more_content": False})
    elif path == "/disconnects":
        _reply(message, body=json.dumps([to_jsonable(d) for d in disconnects]).encode())
    elif path == "/malformed/no-status":
        _send(message["reply_channel"], {"content": b"chunk first"})
    elif path == "/malformed/bad-headers":
        _send(message["reply_channel"], {"status": 200, "headers": [["text", "not bytes"]]})
    elif path == "/malformed/second-response":
        _reply(message, body=b"one", more_content=True)
        _send(message["reply_channel"], {"status": 200, "content": b"two"})
    elif path == "/malformed/header-injection":
        _send(message["reply_channel"], {"status": 200, "headers": [[b"x-a", b"1\r\nset-cookie: evil=1"]]})
    elif path == "/push-then-response":
        _send(message["reply_channel"], {"request": {"path": "/style.css", "method": "GET"}})
        _reply(message, body=b"after push")
    else:
        _reply(message, body=f"Hello world! You asked for {path}".encode())


def _consume() -> None:
    while True:
        channel, message = channel_layer.receive(["http.request", "http.disconnect"], block=True)
        if channel is not None:
            try:
                handle(channel, message)
            except Exception as exc:  # keep serving; the test sees a timeout
                print("raw app error:", repr(exc), flush=True)


threading.Thread(target=_consume, name="raw-app", daemon=True).start()
