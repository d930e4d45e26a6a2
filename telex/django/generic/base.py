"""``BaseConsumer``: a class routed on the channels of its ``method_mapping``.

The worker calls the class with the message and the route's keyword
arguments; the instance dispatches at once to the method named for the
message's channel, wrapped in the session decorators its attributes ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...worker import consumers as _consumers
from ..auth import channel_session_user
from ..routing import RouteClass, route_class
from ..sessions import channel_session

__all__ = ["BaseConsumer"]


class BaseConsumer(_consumers.BaseConsumer):
    """Dispatch on ``message.channel.name`` through ``method_mapping`` (channel name → method name).

    ``channel_session = True`` gives the methods ``message.channel_session``;
    ``channel_session_user = True`` also ``message.user``.
    """

    method_mapping: dict[str, str] = {}
    channel_session: bool = False
    channel_session_user: bool = False
    #: A ``telex.django.message.Message`` (its ``reply_channel`` is set on WebSocket channels).
    message: Any

    def __init__(self, message: Any, **kwargs: Any) -> None:
        self.message = message
        self.kwargs = kwargs
        self.dispatch(message, **kwargs)

    @classmethod
    def as_route(cls, attrs: dict[str, Any] | None = None, **kwargs: Any) -> RouteClass:
        """``route_class`` of this class (or of a subclass with the class attributes ``attrs``)."""
        consumer: type = cls
        if attrs:
            if not isinstance(attrs, dict):
                raise TypeError(f"{cls.__name__}.as_route(attrs=...) must be a dict of class attributes")
            consumer = type(cls.__name__, (cls,), attrs)
        return route_class(consumer, **kwargs)

    def get_handler(self, message: Any, **kwargs: Any) -> Callable[..., Any]:
        """The method for the message's channel, with the session decorators asked for."""
        try:
            handler: Callable[..., Any] = getattr(self, self.method_mapping[message.channel.name])
        except KeyError:
            raise ValueError(
                f"{type(self).__name__} has no method for channel {message.channel.name!r}"
            ) from None
        if self.channel_session_user:
            return channel_session_user(handler)
        if self.channel_session:
            return channel_session(handler)
        return handler

    def dispatch(self, message: Any, **kwargs: Any) -> Any:
        return self.get_handler(message, **kwargs)(message, **kwargs)
