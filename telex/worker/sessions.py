"""Per-connection sessions and the HTTP-session hook (S5, S6).

``channel_session`` keeps a dict per connection, keyed by its reply channel,
in the channel layer's ``telex.store`` extension — process memory for
``memory://``, Redis for the Redis layer — so every worker sees it. It is
saved when the consumer returns, before its held sends go out.

The HTTP-session helpers read a session id from the handshake (query
parameter ``session_key``, else cookie ``sessionid``) and turn it into a
user through a loader the project registers with :func:`set_user_loader`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from .message import Message

__all__ = [
    "SESSION_COOKIE_NAME",
    "SESSION_QUERY_PARAMETER",
    "ChannelSession",
    "channel_session",
    "channel_session_user",
    "channel_session_user_from_http",
    "http_session",
    "http_session_key",
    "http_session_user",
    "set_user_loader",
]

SESSION_COOKIE_NAME = "sessionid"
SESSION_QUERY_PARAMETER = "session_key"
#: Store keys are namespaced so sessions never collide with other store users.
STORE_PREFIX = "telex.session:"
#: The channel-session key that holds the user found at connect.
USER_SESSION_KEY = "_telex_user"

Consumer = Callable[..., Any]

_user_loader: Callable[[str], Any] | None = None


class ChannelSession(dict):
    """The session dict of one connection; ``key`` is its store key."""

    key: str = ""


def _store_of(message: Message) -> Any:
    layer = message.channel_layer
    if "telex.store" not in getattr(layer, "extensions", ()):
        raise RuntimeError(
            f"channel_session needs a channel layer with the 'telex.store' extension; "
            f"{type(layer).__name__} does not offer it"
        )
    return layer


def channel_session(func: Consumer) -> Consumer:
    """Give the consumer ``message.channel_session``, saved after it returns.

    Only a changed session is written. After ``websocket.disconnect`` the
    session is deleted: the connection is gone. A consumer that raises has
    its changes discarded, as its held sends are.
    """

    @functools.wraps(func)
    def inner(message: Message, *args: Any, **kwargs: Any) -> Any:
        if message.channel_session is not None:  # an outer decorator loaded it
            return func(message, *args, **kwargs)
        reply_channel = message.content.get("reply_channel")
        if not isinstance(reply_channel, str):
            raise ValueError(
                f"@channel_session needs a message with a reply_channel; {message.channel_name!r} has none"
            )
        store = _store_of(message)
        key = STORE_PREFIX + reply_channel
        saved = store.store_get(key) or {}
        session = ChannelSession(copy.deepcopy(saved))
        session.key = key
        message.channel_session = session
        try:
            result = func(message, *args, **kwargs)
        except BaseException:
            if message.channel_name == "websocket.disconnect":
                store.store_delete(key)
            raise
        if message.channel_name == "websocket.disconnect":
            store.store_delete(key)
        elif session != saved:
            store.store_set(key, dict(session))
        return result

    return inner


def set_user_loader(loader: Callable[[str], Any] | None) -> None:
    """Register how a session id becomes a user (``None`` for anonymous).

    The user is kept in the channel session, so it must be message-typed:
    a ``str``, an ``int`` or a ``dict`` such as ``{"id": 7, "name": "ann"}``.
    """
    global _user_loader
    _user_loader = loader


def http_session_key(message: Any, cookie_name: str = SESSION_COOKIE_NAME) -> str | None:
    """The session id of the request or handshake: query parameter, then cookie ``cookie_name``."""
    query = message.content.get("query_string") or b""
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    values = parse_qs(query).get(SESSION_QUERY_PARAMETER)
    if values and values[0]:
        return values[0]
    for name, value in message.content.get("headers") or ():
        if name.lower() in (b"cookie", "cookie"):
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            # Parsed by hand: http.cookies rejects whole headers over one odd cookie.
            for pair in text.split(";"):
                name_here, _, cookie_value = pair.strip().partition("=")
                if name_here == cookie_name and cookie_value:
                    return cookie_value.strip('"')
    return None


def _load_user(session_key: str | None) -> Any:
    if session_key is None:
        return None
    if _user_loader is None:
        raise RuntimeError("no user loader: call telex.sessions.set_user_loader(loader) at import")
    return _user_loader(session_key)


def http_session(func: Consumer) -> Consumer:
    """Set ``message.http_session_key`` from the query string or cookie."""

    @functools.wraps(func)
    def inner(message: Message, *args: Any, **kwargs: Any) -> Any:
        message.http_session_key = http_session_key(message)
        return func(message, *args, **kwargs)

    return inner


def http_session_user(func: Consumer) -> Consumer:
    """Set ``message.http_session_key`` and ``message.user`` (for ``http.request``)."""

    @functools.wraps(func)
    def inner(message: Message, *args: Any, **kwargs: Any) -> Any:
        message.http_session_key = http_session_key(message)
        message.user = _load_user(message.http_session_key)
        return func(message, *args, **kwargs)

    return inner


def channel_session_user_from_http(func: Consumer) -> Consumer:
    """On connect: find the user from the HTTP session and keep it in the channel session."""

    @functools.wraps(func)
    def inner(message: Message, *args: Any, **kwargs: Any) -> Any:
        message.http_session_key = http_session_key(message)
        message.user = _load_user(message.http_session_key)
        message.channel_session[USER_SESSION_KEY] = message.user
        return func(message, *args, **kwargs)

    return channel_session(inner)


def channel_session_user(func: Consumer) -> Consumer:
    """On later messages: ``message.user`` from the channel session (None if anonymous)."""

    @functools.wraps(func)
    def inner(message: Message, *args: Any, **kwargs: Any) -> Any:
        message.user = message.channel_session.get(USER_SESSION_KEY)
        return func(message, *args, **kwargs)

    return channel_session(inner)
