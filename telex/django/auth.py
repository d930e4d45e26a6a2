"""``message.user`` for consumers, from Django's auth on the HTTP or the channel session.

At ``websocket.connect`` the login of the HTTP session (its cookie or
``session_key`` query parameter) is copied into the channel session
(``channel_session_user_from_http``); later messages of the connection,
which carry no cookie, find the user there (``channel_session_user``).
Users are found by ``django.contrib.auth.get_user``, so backends and the
session hash check (a password change logs a socket out) apply as in views.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import auth

from .sessions import channel_and_http_session, channel_session, http_session

__all__ = [
    "channel_and_http_session_user_from_http",
    "channel_session_user",
    "channel_session_user_from_http",
    "http_session_user",
    "transfer_user",
]

Consumer = Callable[..., Any]


class _SessionRequest:
    """What ``auth.get_user`` reads of a request: its session."""

    def __init__(self, session: Any) -> None:
        self.session = session


def _user(session: Any) -> Any:
    if session is None:
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return auth.get_user(_SessionRequest(session))


def transfer_user(from_session: Any, to_session: Any) -> None:
    """Copy the login (user id, backend, session hash) from one session to another, if there is one."""
    keys = (auth.SESSION_KEY, auth.BACKEND_SESSION_KEY, auth.HASH_SESSION_KEY)
    if all(key in from_session for key in keys):
        for key in keys:
            to_session[key] = from_session[key]


def http_session_user(func: Consumer) -> Consumer:
    """``message.http_session`` and ``message.user`` (``AnonymousUser`` without a login), as in a view."""

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        message.user = _user(message.http_session)
        return func(message, *args, **kwargs)

    return http_session(inner)


def channel_session_user(func: Consumer) -> Consumer:
    """``message.channel_session`` and ``message.user`` from the login kept in it."""

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        message.user = _user(message.channel_session)
        return func(message, *args, **kwargs)

    return channel_session(inner)


def channel_session_user_from_http(func: Consumer) -> Consumer:
    """For ``websocket.connect``: the HTTP session's login copied into the channel session."""

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        if message.http_session is not None:
            transfer_user(message.http_session, message.channel_session)
        return func(message, *args, **kwargs)

    return http_session_user(channel_session(inner))


def channel_and_http_session_user_from_http(func: Consumer) -> Consumer:
    """As ``channel_session_user_from_http``, and ``message.http_session`` on every later message too."""

    @functools.wraps(func)
    def inner(message: Any, *args: Any, **kwargs: Any) -> Any:
        if message.http_session is not None:
            transfer_user(message.http_session, message.channel_session)
        return func(message, *args, **kwargs)

    return http_session_user(channel_and_http_session(inner))
