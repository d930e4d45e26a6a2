"""Hello world, echo, group chat and upload, as Channels 1.x consumers.

The same behaviour as ``benchmarks/telex_app.py``, written in the Channels
1.x idiom so each stack runs its natural code.
"""

from channels import Group
from channels.routing import route

HELLO = {"status": 200, "headers": [(b"content-type", b"text/plain")], "content": b"Hello world"}


def http_request(message):
    if message.content["path"] != "/upload":
        message.reply_channel.send(HELLO)
        return
    # Daphne 1.4.2 puts the whole body in this message; a body_channel only
    # appears with interface servers that stream bodies.
    size = len(message.content.get("body", b""))
    body_channel = message.content.get("body_channel")
    while body_channel:
        _, chunk = message.channel_layer.receive([body_channel], block=True)
        if chunk is None:
            continue
        size += len(chunk.get("content", b""))
        if not chunk.get("more_content"):
            break
    message.reply_channel.send(
        {"status": 200, "headers": [(b"content-type", b"text/plain")], "content": str(size).encode()}
    )


def ws_connect(message):
    # Join before accepting: a client that sees the handshake complete is
    # already a member, so the harness can wait for handshakes alone.
    if message.content["path"] == "/chat":
        Group("chat").add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def ws_receive(message):
    if message.content["path"] == "/chat":
        Group("chat").send({"text": message.content["text"]})
    else:
        message.reply_channel.send({"text": message.content["text"]})


def ws_disconnect(message):
    if message.content["path"] == "/chat":
        Group("chat").discard(message.reply_channel)


channel_routing = [
    route("http.request", http_request),
    route("websocket.connect", ws_connect),
    route("websocket.receive", ws_receive),
    route("websocket.disconnect", ws_disconnect),
]
