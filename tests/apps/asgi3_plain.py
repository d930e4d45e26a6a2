"""A plain ASGI 3 application for ``telex worker --asgi`` tests: no framework.

``/echo-body`` streams the request body back as it arrives; ``/stream``
sends its body in several ``more_body`` parts; ``/state`` answers what the
lifespan put in ``state`` (its shutdown prints a line); ``/wait-disconnect?ID`` starts a response, then prints
the ``http.disconnect`` it receives; ``/long-poll?ID`` waits for it without
responding at all; ``/raise`` raises; the
WebSocket ``/ws`` echoes text and bytes and accepts the first offered subprotocol;
``/ws-refuse`` refuses; ``/ws-deny`` refuses with its own 401 response;
``/ws-pid`` says ``hello PID`` once (not again when resumed on another
worker) and echoes each text as ``PID: text``.
"""

from __future__ import annotations

import json
import os


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hello from lifespan"
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                print("app lifespan shutdown", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)


async def respond(send, body: bytes, status: int = 200, content_type: bytes = b"text/plain") -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": body})


async def http(scope, receive, send):
    path = scope["path"]
    if path == "/echo-body":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-parts", b"streamed")]})
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            await send({"type": "http.response.body", "body": event["body"], "more_body": True})
            if not event["more_body"]:
                break
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in range(5):
            await send({"type": "http.response.body", "body": b"part %d\n" % part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/big":
        await respond(send, b"x" * (3 * 1024 * 1024 + 7))
    elif path == "/state":
        await respond(send, scope["state"]["greeting"].encode())
    elif path == "/scope":
        keys = {
            key: scope[key].decode() if isinstance(scope[key], bytes) else scope[key]
            for key in (
                "http_version",
                "method",
                "scheme",
                "path",
                "raw_path",
                "query_string",
                "root_path",
                "asgi",
            )
        }
        keys["client"] = list(scope["client"])
        keys["server"] = list(scope["server"])
        keys["headers"] = {name.decode(): value.decode() for name, value in scope["headers"]}
        await respond(send, json.dumps(keys).encode(), content_type=b"application/json")
    elif path == "/wait-disconnect":
        await receive()  # the (empty) body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waiting", "more_body": True})
        event = await receive()  # the client hangs up mid-response
        print(f"app heard {event['type']} for {scope['query_string'].decode()}", flush=True)
    elif path == "/long-poll":
        await receive()  # the (empty) body
        print(f"app polling for {scope['query_string'].decode()}", flush=True)
        event = await receive()  # no response yet: only the client leaving ends this
        print(f"app heard {event['type']} for {scope['query_string'].decode()}", flush=True)
    elif path == "/raise":
        raise RuntimeError("boom in the ASGI application")
    else:
        await respond(send, b"not found", status=404)


async def websocket(scope, receive, send):
    event = await receive()
    assert event["type"] == "websocket.connect"
    if scope["path"] == "/ws-refuse":
        await send({"type": "websocket.close"})
        return
    if scope["path"] == "/ws-deny":
        assert "websocket.http.response" in scope["extensions"]
        headers = [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"log in ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"first"})
        return
    if scope["path"] == "/ws-pid":
        await echo_with_pid(scope, receive, send)
        return
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            print(f"app heard websocket.disconnect {event['code']}", flush=True)
            return
        if event.get("text") == "close":
            await send({"type": "websocket.close", "code": 4001})
            continue
        if event.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + event["text"]})
        else:
            await send({"type": "websocket.send", "bytes": event["bytes"][::-1]})


async def echo_with_pid(scope, receive, send):
    """The socket may move between workers: only a new connection is greeted.

    ``?no-resume`` accepts saying it cannot resume; ``?refuse-resume`` refuses a resume.
    """
    resumed = scope["extensions"].get("telex.resume", {}).get("resumed")
    if resumed and scope["query_string"] == b"refuse-resume":
        await send({"type": "websocket.close"})
        return
    accept = {"type": "websocket.accept"}
    if scope["query_string"] == b"no-resume":
        accept["telex.resumable"] = False
    await send(accept)
    pid = os.getpid()
    if not resumed:
        await send({"type": "websocket.send", "text": f"hello {pid}"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            print(f"app heard websocket.disconnect {event['code']}", flush=True)
            return
        await send({"type": "websocket.send", "text": f"{pid}: {event['text']}"})
