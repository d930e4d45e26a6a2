"""The consumers of the Channels 1.x tutorial ("Getting Started"), section by section.

Written as for Channels 1.1; only the imports say ``telex.django`` instead of ``channels``.
"""

import json

from django.http import HttpResponse

from telex.django import Channel, Group
from telex.django.auth import channel_session_user, channel_session_user_from_http
from telex.django.exceptions import DenyConnection
from telex.django.handler import AsgiHandler
from telex.django.sessions import channel_session, enforce_ordering

from .models import ChatMessage

# -- First consumers: HTTP without a view -------------------------------------
# Routed for /hello/ only; every other request still goes to Django's views.


def http_consumer(message):
    response = HttpResponse(f"Hello world! You asked for {message.content['path']}")
    # Encode the response into ASGI messages: the response, then any chunks.
    for chunk in AsgiHandler.encode_response(response):
        message.reply_channel.send(chunk)


# -- Echo: each frame straight back --------------------------------------------
# No websocket.connect consumer: the default one accepts the socket.


def ws_echo(message):
    message.reply_channel.send({"text": message.content["text"]})


# -- Groups: one chat for every socket ----------------------------------------


def ws_add(message):
    message.reply_channel.send({"accept": True})
    Group("chat").add(message.reply_channel)


def ws_message(message):
    Group("chat").send({"text": f"[user] {message.content['text']}"})


def ws_disconnect(message):
    Group("chat").discard(message.reply_channel)


# -- Rooms, users, models and ordering: the chat page ---------------------------
# The room comes from the path (a named group in chat/routing.py) and is kept
# in the channel session for the socket's later messages; the user comes from
# the login's session cookie. Saving is slow, so the socket's consumer hands
# each message to the "chat-messages" channel, whose consumer saves it and
# broadcasts it to the room. @enforce_ordering runs one socket's messages in
# the order they were sent, however many workers there are.


def group_name(room):
    return f"chat-{room}"


@enforce_ordering
@channel_session_user_from_http
def chat_connect(message, room):
    message.channel_session["room"] = room
    Group(group_name(room)).add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def chat_deny(message):
    """Any other path under /chat is not a room."""
    raise DenyConnection


@enforce_ordering
@channel_session_user
def chat_receive(message):
    Channel("chat-messages").send(
        {
            "room": message.channel_session["room"],
            "username": message.user.username or "anonymous",
            "message": message.content["text"],
        }
    )


@channel_session_user
def chat_disconnect(message):
    room = message.channel_session.get("room")
    if room is not None:
        Group(group_name(room)).discard(message.reply_channel)


def msg_consumer(message):
    """Runs on "chat-messages": save the message, then tell the room."""
    chat_message = ChatMessage.objects.create(
        room=message.content["room"],
        username=message.content["username"],
        message=message.content["message"],
    )
    Group(group_name(chat_message.room)).send({"text": json.dumps(chat_message.as_dict())})


# -- Ordering on its own: a counter kept in the channel session ------------------
# Each reply is "<n> <text>", n counting this socket's frames. Without
# @enforce_ordering, two worker threads could run frames 2 and 3 at once and
# both read n = 1.


@enforce_ordering
@channel_session
def count_connect(message):
    message.channel_session["count"] = 0
    message.reply_channel.send({"accept": True})


@enforce_ordering
@channel_session
def count_receive(message):
    message.channel_session["count"] += 1
    message.reply_channel.send({"text": f"{message.channel_session['count']} {message.content['text']}"})
