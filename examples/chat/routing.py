"""S3 Group chat: every socket is in group "chat" and gets every message."""

from telex import Group
from telex.routing import route


def ws_connect(message):
    message.reply_channel.send({"accept": True})
    Group("chat").add(message.reply_channel)


def ws_message(message):
    Group("chat").send({"text": f"[user] {message['text']}"})


def ws_disconnect(message):
    Group("chat").discard(message.reply_channel)


channel_routing = [
    route("websocket.connect", ws_connect),
    route("websocket.receive", ws_message),
    route("websocket.disconnect", ws_disconnect),
]
