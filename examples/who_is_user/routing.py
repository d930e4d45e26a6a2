"""S6 Who is the user: the HTTP session identifies the WebSocket's user.

``/login?name=ann`` sets the ``sessionid`` cookie. Session ids are signed
(``name.signature``), so every worker process can check one without a shared
session store. A WebSocket handshake carries the cookie (or
``?session_key=...``); ``channel_session_user_from_http`` loads the user at
connect and keeps it in the channel session for later messages.
"""

import hashlib
import hmac
import os
import re

from telex import Group
from telex.routing import route
from telex.sessions import (
    channel_session_user,
    channel_session_user_from_http,
    http_session_user,
    set_user_loader,
)
from telex.worker.http import send_response

SECRET = os.environ.get("TELEX_EXAMPLE_SECRET", "change-me").encode()


def signature(name):
    return hmac.new(SECRET, name.encode(), hashlib.sha256).hexdigest()[:32]


def load_user(session_key):
    name, _, given = session_key.rpartition(".")
    if name and hmac.compare_digest(given, signature(name)):
        return {"name": name}
    return None


set_user_loader(load_user)


@http_session_user
def http_consumer(message):
    if message["path"] == "/login":
        query = message.get("query_string", b"").decode("latin-1")
        name = re.sub(r"[^A-Za-z0-9_-]", "", query.partition("name=")[2].partition("&")[0])
        if not name:
            send_response(message, "usage: /login?name=NAME\n", status=400)
            return
        session_key = f"{name}.{signature(name)}"
        cookie = f"sessionid={session_key}; Path=/; HttpOnly; SameSite=Lax"
        send_response(message, f"logged in as {name}\n", headers=[("Set-Cookie", cookie)])
        return
    who = message.user["name"] if message.user else "anonymous"
    send_response(message, f"Hello, {who}!\n")


@channel_session_user_from_http
def ws_connect(message):
    if message.user is None:
        message.reply_channel.send({"close": True})  # rejected: 403
        return
    Group("users").add(message.reply_channel)
    message.reply_channel.send({"accept": True})


@channel_session_user
def ws_message(message):
    Group("users").send({"text": f"[{message.user['name']}] {message['text']}"})


@channel_session_user
def ws_disconnect(message):
    Group("users").discard(message.reply_channel)


channel_routing = [
    route("http.request", http_consumer),
    route("websocket.connect", ws_connect),
    route("websocket.receive", ws_message),
    route("websocket.disconnect", ws_disconnect),
]
