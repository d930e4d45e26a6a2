"""Run an ASGI 3 application as the consumer of Telex's channels (``telex worker --asgi``).

Each ``http.request`` becomes one ``http`` scope, each ``websocket.connect``
one ``websocket`` scope living in this process, all on one asyncio loop; the
application's events are mapped to ASGI 1 replies. Like the rest of
``telex.worker`` it imports ``telex.layers`` only, and nothing of asgiref.
See ``docs/asgi3.md``.
"""

from __future__ import annotations

from .app import ApplicationError, load_application
from .lifespan import LifespanFailed
from .runner import Asgi3Worker

__all__ = ["ApplicationError", "Asgi3Worker", "LifespanFailed", "load_application"]
