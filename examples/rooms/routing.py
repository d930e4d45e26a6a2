"""S5 Rooms: the room comes from the path at connect and lives in the channel session."""

import re

from telex import Group
from telex.routing import route
from telex.sessions import channel_session


def room_from_path(path):
    # "/lobby/" -> "lobby"; group names allow only [A-Za-z0-9_.-].
    return re.sub(r"[^A-Za-z0-9_.-]", "", path.strip("/")) or "lobby"


@channel_session
def ws_connect(message):
    room = room_from_path(message["path"])
    message.channel_session["room"] = room
    Group(f"chat-{room}").add(message.reply_channel)
    message.reply_channel.send({"accept": True})


@channel_session
def ws_message(message):
    Group(f"chat-{message.channel_session['room']}").send({"text": message["text"]})


@channel_session
def ws_disconnect(message):
    Group(f"chat-{message.channel_session['room']}").discard(message.reply_channel)


channel_routing = [
    route("websocket.connect", ws_connect),
    route("websocket.receive", ws_message),
    route("websocket.disconnect", ws_disconnect),
]
