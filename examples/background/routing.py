"""S8 Background channel: the socket consumer hands the work to "chat-messages";
a consumer there stores the message in sqlite, then broadcasts it to the room."""

import contextlib
import os
import re
import sqlite3

from telex import Channel, Group
from telex.routing import route
from telex.sessions import channel_session


def database_path():
    return os.environ.get("TELEX_EXAMPLE_DB", "chat.sqlite3")


SCHEMA = "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, room TEXT, message TEXT)"


def store_message(room, text):
    # One connection per call: consumers run on many threads and processes.
    with contextlib.closing(sqlite3.connect(database_path(), timeout=10)) as database, database:
        database.execute(SCHEMA)
        database.execute("INSERT INTO messages (room, message) VALUES (?, ?)", (room, text))


@channel_session
def ws_connect(message):
    room = re.sub(r"[^A-Za-z0-9_.-]", "", message["path"].strip("/")) or "lobby"
    message.channel_session["room"] = room
    Group(f"chat-{room}").add(message.reply_channel)
    message.reply_channel.send({"accept": True})


@channel_session
def ws_message(message):
    # No work here: the socket's consumer returns at once.
    Channel("chat-messages").send({"room": message.channel_session["room"], "message": message["text"]})


@channel_session
def ws_disconnect(message):
    Group(f"chat-{message.channel_session['room']}").discard(message.reply_channel)


def msg_consumer(message):
    store_message(message["room"], message["message"])
    Group(f"chat-{message['room']}").send({"text": message["message"]})


channel_routing = [
    route("websocket.connect", ws_connect),
    route("websocket.receive", ws_message),
    route("websocket.disconnect", ws_disconnect),
    route("chat-messages", msg_consumer),
]
