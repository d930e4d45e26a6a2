"""Data binding: model changes broadcast to groups, and model changes received from sockets."""

from .base import Binding

__all__ = ["Binding"]
