"""Telex: a standalone ASGI 1 ("channel layer") interface server.

The consumer toolkit's ``Channel`` and ``Group`` are importable from here, as
in Channels 1.x, but load lazily so the server never imports worker code.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Channel", "Group", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Channel", "Group"):
        from .worker import channels

        return getattr(channels, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
