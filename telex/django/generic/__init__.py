"""Class-based consumers with Channels 1.x's names: route them with ``route_class``."""

from .base import BaseConsumer

__all__ = ["BaseConsumer"]
