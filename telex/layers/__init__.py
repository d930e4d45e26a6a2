"""ASGI 1 channel layers: the shared rules, the in-memory layer, Redis, loading.

``get_channel_layer(spec)`` turns what a user types (``memory://``,
``redis://host:6379/0``, ``myproject.asgi:channel_layer``) into a layer.
"""

from __future__ import annotations

import inspect
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .._importing import ImportStringError, import_string
from .base import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PROCESS_LOCAL_CAPACITY,
    BaseChannelLayer,
    ChannelFull,
    MessageTooLarge,
)
from .memory import InMemoryChannelLayer

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_PROCESS_LOCAL_CAPACITY",
    "BaseChannelLayer",
    "ChannelFull",
    "InMemoryChannelLayer",
    "LayerSpecError",
    "MessageTooLarge",
    "RedisChannelLayer",
    "get_channel_layer",
    "unreachable",
]

REQUIRED_METHODS = ("send", "receive", "new_channel")

# Query parameters accepted by memory:// and their types.
_MEMORY_OPTIONS = {
    "expiry": float,
    "group_expiry": int,
    "capacity": int,
    "process_local_capacity": int,
    "max_message_size": int,
    "group_entry_members": int,
}


class LayerSpecError(ValueError):
    """A channel layer specification that cannot be turned into a layer."""


def __getattr__(name: str) -> Any:
    # The Redis layer's libraries live in the optional ``redis`` extra.
    if name == "RedisChannelLayer":
        from .redis import RedisChannelLayer

        return RedisChannelLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_options(query: str, options: dict[str, type], scheme: str) -> dict[str, Any]:
    """Typed keyword arguments from a URL query string, naming any bad one."""
    parsed: dict[str, Any] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        kind = options.get(key)
        if kind is None:
            known = ", ".join(sorted(options))
            raise LayerSpecError(f"unknown option {key!r} for {scheme}:// (known: {known})")
        try:
            parsed[key] = kind(raw)
        except ValueError:
            raise LayerSpecError(f"option {key}={raw!r} for {scheme}:// must be {kind.__name__}") from None
    return parsed


def get_channel_layer(spec: Any) -> Any:
    """Build or import the channel layer that ``spec`` names.

    ``spec`` is a layer object, a URL (``memory://``, ``redis://``,
    ``rediss://``, ``unix://``, ``redis+sentinel://``, ``redis+cluster://``) or ``"module:attribute"``
    naming a layer or a callable returning one.
    """
    if not isinstance(spec, str):
        layer = spec
    elif "://" in spec:
        layer = _from_url(spec)
    else:
        scheme, colon, rest = spec.partition(":")
        if colon and scheme.lower() in _URL_SCHEMES:
            # "redis:/localhost" would otherwise be tried as module "redis", attribute "/localhost".
            raise LayerSpecError(f"{spec!r}: did you mean {scheme}://{rest.lstrip('/')}?")
        try:
            layer = import_string(spec, "channel layer")
        except ImportStringError as exc:
            raise LayerSpecError(str(exc)) from exc
        if callable(layer) and not all(hasattr(layer, m) for m in REQUIRED_METHODS):
            if _is_asgi3_application(layer):
                raise LayerSpecError(
                    f"{spec!r} is an ASGI 3 application (async, taking scope, receive, send); Telex "
                    "serves ASGI 1 channel layers: pass the layer your consumers' workers use "
                    "(e.g. redis://127.0.0.1:6379/0), or serve an ASGI 3 application with an "
                    "ASGI 3 server such as uvicorn, hypercorn or Daphne 2+, or serve it here with "
                    "telex serve --asgi APP (or behind telex serve LAYER with telex worker --asgi APP)"
                )
            layer = layer()
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(layer, m, None))]
    if missing:
        raise LayerSpecError(f"{spec!r} is not an ASGI channel layer: it has no {', '.join(missing)}")
    return layer


#: The URL schemes ``get_channel_layer`` knows.
_URL_SCHEMES = ("memory", "redis", "rediss", "unix", "redis+sentinel", "redis+cluster")


def _is_asgi3_application(target: Any) -> bool:
    """An ``async def app(scope, receive, send)``, or an object whose ``__call__`` is one."""
    if inspect.isclass(target):
        return False
    call = type(target).__call__ if not inspect.isroutine(target) else target
    return inspect.iscoroutinefunction(call)


def _from_url(url: str) -> Any:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.netloc or parts.path not in ("", "/"):
            raise LayerSpecError(f"memory:// takes only query options, got {url!r}")
        try:
            return InMemoryChannelLayer(**parse_options(parts.query, _MEMORY_OPTIONS, scheme))
        except ValueError as exc:
            raise LayerSpecError(f"{url}: {exc}") from exc
    if scheme in ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster"):
        try:
            from .redis import RedisChannelLayer
        except ImportError as exc:
            raise LayerSpecError(
                f"{url!r} needs the Redis layer's libraries: pip install 'telex[redis]' ({exc})"
            ) from exc
        return RedisChannelLayer.from_url(url)
    raise LayerSpecError(
        f"unknown channel layer URL scheme {parts.scheme!r} in {url!r} "
        "(use memory://, redis://, rediss://, unix://, redis+sentinel://, redis+cluster:// "
        "or module:attribute)"
    )


def unreachable(layer: Any) -> str | None:
    """Why a network layer cannot be reached now (one non-blocking receive), or None.

    ``telex serve`` and ``telex worker`` both check this at start and exit
    with status 1 and this line: a supervisor restarts them until it is back.
    """
    if getattr(layer, "in_process", False):
        return None
    try:
        layer.receive(["telex.health"], block=False)
    except Exception as exc:
        return f"channel layer unreachable: {type(exc).__name__}: {exc}"
    return None
