"""Consumers of tests/test_django_sessions.py: sessions, auth and ordering, each reporting its process."""

import json
import os
from urllib.parse import parse_qs

from telex.django.auth import (
    channel_and_http_session_user_from_http,
    channel_session_user,
    channel_session_user_from_http,
    http_session_user,
    transfer_user,
)
from telex.django.sessions import channel_and_http_session, channel_session, enforce_ordering, http_session


def _reply(message, **values):
    message.reply_channel.send({"text": json.dumps({"pid": os.getpid(), **values})})


def _username(user):
    return user.username if user.is_authenticated else "anonymous"


# -- /chan/: a value kept across processes; a failing consumer changes nothing ------------------


@channel_session
def chan_connect(message):
    query = parse_qs(message["query_string"].decode())
    message.channel_session["name"] = query["name"][0]
    message.channel_session["connect_pid"] = os.getpid()
    message.reply_channel.send({"accept": True})


@channel_session
def chan_receive(message):
    session = message.channel_session
    if message["text"] == "boom":
        session["name"] = "changed by a consumer that raised"
        message.reply_channel.send({"text": "never sent"})
        raise RuntimeError("boom (expected by the test)")
    _reply(
        message,
        name=session.get("name"),
        connect_pid=session.get("connect_pid"),
        session_key=session.session_key,
    )


@channel_session
def chan_disconnect(message):
    """The session is deleted after this returns."""


# -- /user/, /transfer/, /both/: the login of the HTTP session ---------------------------------


@channel_session_user_from_http
def user_connect(message):
    message.reply_channel.send({"accept": True})
    _reply(message, user=_username(message.user), http_session=message.http_session is not None)


@channel_session_user
def user_receive(message):
    _reply(message, user=_username(message.user))


@http_session
@channel_session
def transfer_connect(message):
    if message.http_session is not None:
        transfer_user(message.http_session, message.channel_session)
    message.reply_channel.send({"accept": True})


@channel_and_http_session_user_from_http
def both_connect(message):
    message.reply_channel.send({"accept": True})


@channel_session_user
@channel_and_http_session
def both_receive(message):
    session = message.http_session
    _reply(message, user=_username(message.user), count=None if session is None else session.get("count"))


@http_session_user
def whoami(message):
    """An http.request consumer: the user of the request's session."""
    body = json.dumps({"user": _username(message.user), "pid": os.getpid()}).encode()
    message.reply_channel.send(
        {"status": 200, "headers": [[b"content-type", b"application/json"]], "content": body}
    )


# -- /order/: frames appended to the session in the order they were sent --------------------


@enforce_ordering
def order_connect(message):
    message.channel_session["seen"] = []
    message.reply_channel.send({"accept": True})


@enforce_ordering
def order_receive(message):
    seen = [*message.channel_session["seen"], message["text"]]
    message.channel_session["seen"] = seen
    _reply(message, seen=seen)


@enforce_ordering
def order_disconnect(message):
    pass
