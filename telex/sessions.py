"""Consumer decorators: ``from telex.sessions import channel_session, enforce_ordering``."""

from .worker.ordering import enforce_ordering
from .worker.sessions import (
    channel_session,
    channel_session_user,
    channel_session_user_from_http,
    http_session,
    http_session_key,
    http_session_user,
    set_user_loader,
)

__all__ = [
    "channel_session",
    "channel_session_user",
    "channel_session_user_from_http",
    "enforce_ordering",
    "http_session",
    "http_session_key",
    "http_session_user",
    "set_user_loader",
]
