"""S2 Echo: every frame goes back to the socket it came from, on any path.

No websocket.connect route: the worker's default consumer accepts.
"""

from telex.routing import route


def ws_message(message):
    if message["text"] is not None:
        message.reply_channel.send({"text": message["text"]})
    else:
        message.reply_channel.send({"bytes": message["bytes"]})


channel_routing = [route("websocket.receive", ws_message)]
