"""The worker and the consumer toolkit (Django-free, Channels 1.x names).

A worker speaks only channel-layer messages: this package imports
``telex.layers`` and never the server or the wire protocols, so a worker
process loads no server code. See ``docs/worker.md``.
"""

from __future__ import annotations

from .channels import Channel, Group
from .consumers import BaseConsumer, JsonWebsocketConsumer, WebsocketConsumer
from .http import response_messages, send_response
from .message import Message
from .ordering import ORDERING_TIMEOUT, enforce_ordering
from .routing import Router, RoutingError, include, route, route_class
from .runner import Worker

__all__ = [
    "ORDERING_TIMEOUT",
    "BaseConsumer",
    "Channel",
    "Group",
    "JsonWebsocketConsumer",
    "Message",
    "Router",
    "RoutingError",
    "WebsocketConsumer",
    "Worker",
    "enforce_ordering",
    "include",
    "response_messages",
    "route",
    "route_class",
    "send_response",
]
