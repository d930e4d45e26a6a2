"""Routing lists with Channels 1.x's names, on the toolkit's router.

``route``, ``route_class`` and ``include`` are the toolkit's (same
semantics: filters are ``re.match`` regular expressions on message keys,
named groups become keyword arguments, ``include`` strips the part of
``path`` it matched). ``Router.match`` also takes a message, as Channels 1.x's did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..worker import routing as _routing
from ..worker.routing import Include, Match, Route, RouteClass, RoutingError, include, route, route_class

__all__ = ["Include", "Route", "RouteClass", "Router", "RoutingError", "include", "route", "route_class"]


class Router(_routing.Router):
    """A compiled routing list; ``match(message)`` or ``match(channel, content)``."""

    def match(self, message_or_channel: Any, content: Mapping[str, Any] | None = None) -> Match | None:  # type: ignore[override]
        if content is None:
            # A Channels 1.x message: .channel is a Channel object, .content the dict.
            channel = message_or_channel.channel
            return super().match(getattr(channel, "name", channel), message_or_channel.content)
        return super().match(message_or_channel, content)
