"""S9 Ordering: each reply is "<n> <text>", n counting the frames this socket's
consumers have run. With strict ordering, n always equals the frame's order."""

from telex.routing import route
from telex.sessions import channel_session, enforce_ordering


@enforce_ordering
@channel_session
def ws_connect(message):
    message.channel_session["seen"] = 0
    message.reply_channel.send({"accept": True})


@enforce_ordering
@channel_session
def ws_message(message):
    seen = message.channel_session["seen"] + 1
    message.channel_session["seen"] = seen
    message.reply_channel.send({"text": f"{seen} {message['text']}"})


@enforce_ordering
@channel_session
def ws_disconnect(message):
    pass


# Slight ordering: connect always runs before receive (frames may interleave).
@enforce_ordering(slight=True)
@channel_session
def ws_connect_slight(message):
    message.channel_session["seen"] = 0
    message.reply_channel.send({"accept": True})


@enforce_ordering(slight=True)
@channel_session
def ws_message_slight(message):
    # A KeyError here would mean a receive ran before its connect saved the session.
    message.channel_session["seen"] += 1
    message.reply_channel.send({"text": f"connected {message['text']}"})


channel_routing = [
    route("websocket.connect", ws_connect),
    route("websocket.receive", ws_message),
    route("websocket.disconnect", ws_disconnect),
]

slight_routing = [
    route("websocket.connect", ws_connect_slight),
    route("websocket.receive", ws_message_slight),
]
