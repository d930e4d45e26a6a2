"""Channels 1.x consumers: the ASGI messages Telex produces, as Channels sees them."""

import hashlib

from channels import Group

CHAT = "chat"


def hello(message):
    """A raw ASGI response, no Django view involved: the smallest HTTP round trip."""
    body = "Hello from Channels 1.x! You asked for {}".format(message.content["path"])
    message.reply_channel.send(
        {"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": body.encode()}
    )


def reply_through_group(message):
    """Answer through a one-member group, so group_add/send_group/group_discard
    must work on the layer for the request to succeed."""
    # Group names allow no '!' or '?', which reply channel names contain.
    group = Group("reply-" + hashlib.sha256(message.reply_channel.name.encode()).hexdigest()[:20])
    group.add(message.reply_channel)
    group.send({"status": 200, "content": b"answered through a group"}, immediately=True)
    group.discard(message.reply_channel)


def ws_connect(message):
    if message.content["path"] == "/chat/":
        Group(CHAT).add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def ws_receive(message):
    """``/chat/`` broadcasts text to everyone connected there; any other path echoes."""
    if message.content["path"] == "/chat/":
        Group(CHAT).send({"text": message.content["text"]})
    elif message.content.get("bytes") is not None:
        message.reply_channel.send({"bytes": message.content["bytes"]})
    else:
        message.reply_channel.send({"text": message.content["text"]})


def ws_disconnect(message):
    Group(CHAT).discard(message.reply_channel)
