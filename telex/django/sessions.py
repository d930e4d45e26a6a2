"""Django sessions for consumers: per connection (``channel_session``) and the HTTP one (``http_session``).

A channel session is a Django ``SessionStore`` of ``SESSION_ENGINE`` (or
``CHANNEL_SESSION_ENGINE``) whose key is derived from the reply channel, so
every worker process reading the same session backend sees it: the
database, cache (not ``locmem``: it is per process) and file engines work;
signed cookies cannot (there is no cookie). It is saved when the consumer
returns — before its held sends go out — deleted after
``websocket.disconnect``, and a consumer that raises has its changes
discarded, as its sends are.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from ..worker import ordering as _ordering
from ..worker.sessions import http_session_key
from .message import Message

__all__ = [
    "channel_and_http_session",
    "channel_session",
    "enforce_ordering",
    "http_session",
    "session_for_reply_channel",
]

Consumer = Callable[..., Any]

#: Set on a message once ``http_session`` looked for its session (which may be None).
_HTTP_LOADED = "_telex_http_session_loaded"


def _channel_session_key(reply_channel: str) -> str:
    # Session keys are at most 40 characters; a digest of the whole name fits
    # and keeps keys of different connections apart.
    return "chn" + hashlib.sha1(reply_channel.encode("utf-8")).hexdigest()[:29]


def _import_engine(path: str, setting: str) -> Any:
    try:
        return import_module(path)
    except ImportError as exc:
        raise ValueError(f"{setting}: cannot import the session engine {path!r}: {exc}") from None


def _channel_engine() -> Any:
    from django.contrib.sessions.backends import signed_cookies

    if getattr(settings, "CHANNEL_SESSION_ENGINE", None):
        engine = _import_engine(settings.CHANNEL_SESSION_ENGINE, "CHANNEL_SESSION_ENGINE")
    else:
        engine = _import_engine(settings.SESSION_ENGINE, "SESSION_ENGINE")
    if engine is signed_cookies:
        raise ValueError(
            "channel sessions cannot use signed cookie sessions: set CHANNEL_SESSION_ENGINE "
            "(or SESSION_ENGINE) to a server-side engine such as 'django.contrib.sessions.backends.db'"
        )
    return engine


def session_for_reply_channel(reply_channel: str) -> SessionBase:
    """The session of one connection, loaded now; its key is derived from ``reply_channel``."""
    key = _channel_session_key(reply_channel)
    session = _channel_engine().SessionStore(session_key=key)
    # Loading a session that does not exist yet forgets its key; it keeps
    # ours, so the first save creates it under the connection's key.
    session._get_session()
    session._session_key = key
    return session


def _save(session: SessionBase) -> None:
    """Update the session, or create it on its first save (engines refuse one for the other)."""
    try:
        session.save()
    except UpdateError:
        try:
            session.save(must_create=True)
        except CreateError:  # another worker created it meanwhile: ours is the later write
            session.save()


def _finish(session: SessionBase, key: str, *, delete: bool) -> None:
    current = session.session_key
    if current != key:
        # flush() or cycle_key() (Django's auth rotating a password hash) gave
        # the session another key: the connection keeps its own.
        if current is not None:
            session.delete(current)
        session._session_key = key
        session.modified = True
    if delete:
        session.delete()
    elif session.modified:
        _save(session)


def channel_session(func: Consumer) -> Consumer:
    """Give the consumer ``message.channel_session``, kept across the messages of one connection.

    Saved after the consumer returns (before its held sends go out), only if
    changed; deleted after ``websocket.disconnect``; left unchanged when the
    consumer raises. Nested uses share the outer session.
    """

    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        # The message is the first argument, or the second of a method (after self).
        message = next((arg for arg in args[:2] if isinstance(arg, Message)), None)
        if message is None:
            name = getattr(func, "__qualname__", repr(func))
            raise ValueError(f"@channel_session on {name}: called without a message")
        if message.channel_session is not None:
            return func(*args, **kwargs)
        if message.reply_channel is None:
            raise ValueError(
                f"@channel_session needs a message with a reply_channel; "
                f"the message on {message.channel.name!r} has none"
            )
        reply_channel = message.reply_channel.name
        session = session_for_reply_channel(reply_channel)
        message.channel_session = session
        disconnect = message.channel.name == "websocket.disconnect"
        try:
            result = func(*args, **kwargs)
        except BaseException:
            if disconnect:  # the connection is gone either way
                _finish(session, _channel_session_key(reply_channel), delete=True)
            raise
        _finish(session, _channel_session_key(reply_channel), delete=disconnect)
        return result

    return inner


def _http_session_key(message: Any) -> str | None:
    """The session key of a request or handshake: the ``session_key`` query parameter, else the cookie."""
    return http_session_key(message, settings.SESSION_COOKIE_NAME)


def _http_session_for_key(session_key: str | None) -> SessionBase | None:
    if not session_key:
        return None
    return _import_engine(settings.SESSION_ENGINE, "SESSION_ENGINE").SessionStore(session_key=session_key)


def http_session(func: Consumer) -> Consumer:
    """Give the consumer ``message.http_session``: the Django session of the request or handshake.

    Found from the ``session_key`` query parameter or the session cookie
    (``SESSION_COOKIE_NAME``); ``None`` when there is neither. It never
    creates a session (that is the views' job); changes are saved after
    the consumer returns, and discarded if it raised.
    """

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(message, _HTTP_LOADED, False):
            return func(message, *args, **kwargs)
        session = _http_session_for_key(_http_session_key(message))
        message.http_session = session
        setattr(message, _HTTP_LOADED, True)
        result = func(message, *args, **kwargs)
        if session is not None and session.modified:
            session.save()
        return result

    return inner


def channel_and_http_session(func: Consumer) -> Consumer:
    """Both sessions; the HTTP session's key is kept in the channel session at connect.

    Later messages of the connection (which carry no cookie) get
    ``message.http_session`` back from that key.
    """

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        name = settings.SESSION_COOKIE_NAME
        if message.http_session is not None and name not in message.channel_session:
            message.channel_session[name] = message.http_session.session_key
        elif message.http_session is None and name in message.channel_session:
            message.http_session = _http_session_for_key(message.channel_session[name])
        return func(message, *args, **kwargs)

    return http_session(channel_session(inner))


def enforce_ordering(func: Consumer | None = None, slight: bool = False) -> Any:
    """Run the messages of one WebSocket in the order the server numbered them; implies ``channel_session``.

    Put it on the connect, receive and disconnect consumers of the socket.
    ``slight=True`` only adds the channel session: "connect before receive"
    always holds in Telex (see ``telex.worker.ordering``).
    """
    if func is None:
        return lambda inner: enforce_ordering(inner, slight=slight)
    with_session = channel_session(func)
    return with_session if slight else _ordering.enforce_ordering(with_session)
