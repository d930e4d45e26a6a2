"""The ASGI 3 application every system of ``asgi3-servers`` serves, unchanged.

``/`` (any path) answers ``Hello, world!``; the WebSocket ``/echo`` sends
every message back. It supports the lifespan scope (doing nothing), so no
server logs its absence. Plain ASGI 3: no framework, nothing to import.
"""

from __future__ import annotations

HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
}
HELLO_BODY = {"type": "http.response.body", "body": b"Hello, world!"}


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        while (await receive()).get("more_body"):
            pass
        await send(HELLO_START)
        await send(HELLO_BODY)
    elif kind == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"]})
    elif kind == "lifespan":
        while True:
            event = await receive()
            await send({"type": event["type"] + ".complete"})
            if event["type"] == "lifespan.shutdown":
                return
