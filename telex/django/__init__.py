"""Django on Telex: Channels 1.1.8's public API on Telex's layers and worker.

Migrating a Channels 1.x project means ``"telex.django"`` in
``INSTALLED_APPS`` instead of ``"channels"``, and ``channels`` →
``telex.django`` in imports (``python -m telex.django.migrate PATH`` does
both). See ``docs/django.md``. Importable without Django configured, so
``DEFAULT_CHANNEL_LAYER`` can be read from settings files.
"""

from __future__ import annotations

from typing import Any

DEFAULT_CHANNEL_LAYER = "default"

__all__ = ["DEFAULT_CHANNEL_LAYER", "Channel", "Group", "channel_layers", "include", "route", "route_class"]

_LAZY = {
    "channel_layers": "asgi",
    "Channel": "channel",
    "Group": "channel",
    "route": "routing",
    "route_class": "routing",
    "include": "routing",
}


def __getattr__(name: str) -> Any:
    # Lazily, as Channels 1.x did with its try/except import: settings files
    # import this package before Django is configured.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'telex.django' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
