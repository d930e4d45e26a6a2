"""``HttpClient``: Channels 1.1.8 had already made it another name of ``WSClient``; it still is."""

from __future__ import annotations

from .websocket import WSClient

__all__ = ["HttpClient"]

HttpClient = WSClient
