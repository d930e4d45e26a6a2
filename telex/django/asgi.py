"""``CHANNEL_LAYERS`` as Channels 1.x reads it, on Telex's layers.

Each alias has ``BACKEND`` (a class path), ``CONFIG`` (its keyword
arguments), ``ROUTING`` (a dotted path or a list) and optionally
``TEST_CONFIG``. The backend names of the Channels 1.x era select Telex's
equivalents with the same ``CONFIG`` keys, so a settings file works
unchanged; see ``docs/django.md`` for the table.

``myproject/asgi.py`` keeps its one line for ``telex serve
myproject.asgi:channel_layer``::

    channel_layer = get_channel_layer()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import DEFAULT_CHANNEL_LAYER
from .routing import Router

__all__ = [
    "ChannelLayerManager",
    "ChannelLayerWrapper",
    "InvalidChannelLayerError",
    "channel_layers",
    "get_channel_layer",
]


#: What an alias is when ``CHANNEL_LAYERS`` is not set at all: the in-memory
#: layer and no routes, so Django's views answer through ``runserver`` at once.
IMPLICIT_LAYERS: dict[str, dict[str, Any]] = {
    DEFAULT_CHANNEL_LAYER: {"BACKEND": "telex.layers.InMemoryChannelLayer", "ROUTING": []},
}


class InvalidChannelLayerError(ImproperlyConfigured, ValueError):
    """``CHANNEL_LAYERS`` cannot be used; the message names the setting."""


def _redis_layer(config: dict[str, Any]) -> Any:
    from ..layers.redis import RedisChannelLayer

    # asgi_redis kept statistics under their own prefix; Telex keeps them in
    # the layer itself, so the key is accepted and has no use.
    config.pop("stats_prefix", None)
    return RedisChannelLayer(**config)


def _redis_sentinel_layer(config: dict[str, Any]) -> Any:
    """asgi_redis's Sentinel layer: ``hosts`` are Sentinels, ``services`` the masters (one shard each)."""
    sentinels = config.pop("hosts", None) or [("localhost", 26379)]
    services = config.pop("services", None)
    if not services:
        raise InvalidChannelLayerError(
            "CHANNEL_LAYERS: asgi_redis.RedisSentinelChannelLayer needs CONFIG['services'] (the master names)"
        )
    if isinstance(services, str):
        services = [services]
    config.pop("sentinel_refresh_interval", None)  # redis-py's Sentinel asks on every reconnect
    connection_kwargs = config.get("connection_kwargs") or {}
    db = connection_kwargs.get("db", 0)
    config["hosts"] = [
        {"sentinels": [tuple(address) for address in sentinels], "master_name": name, "db": db}
        for name in services
    ]
    return _redis_layer(config)


def _redis_local_layer(config: dict[str, Any]) -> Any:
    # asgi_redis kept process-local channels in shared memory (asgi_ipc);
    # Telex's Redis layer already reads a process's own channels cheaply.
    config.pop("local_layer_prefix", None)
    config.pop("local_expiry", None)
    return _redis_layer(config)


def _memory_layer(config: dict[str, Any]) -> Any:
    from ..layers import InMemoryChannelLayer

    return InMemoryChannelLayer(**config)


#: Backend class paths of the Channels 1.x era, and Telex's own short names.
BACKENDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "asgi_redis.RedisChannelLayer": _redis_layer,
    "asgi_redis.RedisSentinelChannelLayer": _redis_sentinel_layer,
    "asgi_redis.RedisLocalChannelLayer": _redis_local_layer,
    "asgiref.inmemory.ChannelLayer": _memory_layer,
    "telex.layers.RedisChannelLayer": _redis_layer,
    "telex.layers.redis.RedisChannelLayer": _redis_layer,
    "telex.layers.InMemoryChannelLayer": _memory_layer,
    "telex.layers.memory.InMemoryChannelLayer": _memory_layer,
}


class ChannelLayerWrapper:
    """A layer with its alias and routing; other attributes are the layer's own."""

    def __init__(self, channel_layer: Any, alias: str, routing: Any) -> None:
        self.channel_layer = channel_layer
        self.alias = alias
        self.routing = routing
        self.router = Router(routing)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel_layer, name)

    def __str__(self) -> str:
        return f"{self.alias} ({type(self.channel_layer).__module__}.{type(self.channel_layer).__qualname__})"

    def local_only(self) -> bool:
        """True for a layer that lives in this process only (it cannot reach another process)."""
        return bool(getattr(self.channel_layer, "in_process", False))


class ChannelLayerManager:
    """The layers of ``CHANNEL_LAYERS``, made on first use and kept per alias."""

    def __init__(self) -> None:
        self.backends: dict[str, ChannelLayerWrapper] = {}

    @property
    def configs(self) -> dict[str, Any]:
        from django.conf import settings

        configs = getattr(settings, "CHANNEL_LAYERS", None)
        if configs is None:
            return IMPLICIT_LAYERS
        if not isinstance(configs, dict):
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS must be a dict of aliases, not {type(configs).__name__}"
            )
        return configs

    def make_backend(self, name: str) -> ChannelLayerWrapper:
        return self._make_backend(name, self._config(name).get("CONFIG") or {}, "CONFIG")

    def make_test_backend(self, name: str) -> ChannelLayerWrapper:
        config = self._config(name)
        if "TEST_CONFIG" not in config:
            raise InvalidChannelLayerError(f"CHANNEL_LAYERS[{name!r}] has no TEST_CONFIG")
        return self._make_backend(name, config["TEST_CONFIG"] or {}, "TEST_CONFIG")

    def _config(self, name: str) -> dict[str, Any]:
        configs = self.configs
        if name not in configs:
            known = ", ".join(map(repr, configs)) or "none"
            raise InvalidChannelLayerError(f"CHANNEL_LAYERS has no alias {name!r} (it has {known})")
        config = configs[name]
        if not isinstance(config, dict):
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS[{name!r}] must be a dict, not {type(config).__name__}"
            )
        return config

    def _make_backend(self, name: str, options: Any, key: str) -> ChannelLayerWrapper:
        config = self._config(name)
        where = f"CHANNEL_LAYERS[{name!r}]"
        backend = config.get("BACKEND")
        if not backend or not isinstance(backend, str):
            raise InvalidChannelLayerError(
                f"{where} has no BACKEND (a class path such as 'asgi_redis.RedisChannelLayer')"
            )
        if "ROUTING" not in config:
            raise InvalidChannelLayerError(f"{where} has no ROUTING (a dotted path to the routing list)")
        if not isinstance(options, dict):
            raise InvalidChannelLayerError(f"{where}[{key!r}] must be a dict of keyword arguments")
        factory = BACKENDS.get(backend)
        try:
            if factory is not None:
                layer = factory(dict(options))
            else:
                try:
                    backend_class = import_string(backend)
                except ImportError as exc:
                    raise InvalidChannelLayerError(
                        f"{where}: cannot import BACKEND {backend!r}: {exc}"
                    ) from None
                layer = backend_class(**options)
        except InvalidChannelLayerError:
            raise
        except (TypeError, ValueError, ImportError) as exc:
            raise InvalidChannelLayerError(f"{where}: BACKEND {backend!r} refused {key}: {exc}") from None
        from ..worker.routing import RoutingError

        try:
            return ChannelLayerWrapper(layer, name, config["ROUTING"])
        except RoutingError as exc:
            raise InvalidChannelLayerError(f"{where}['ROUTING']: {exc}") from None

    def __getitem__(self, key: str) -> ChannelLayerWrapper:
        if key not in self.backends:
            self.backends[key] = self.make_backend(key)
        return self.backends[key]

    def __contains__(self, key: object) -> bool:
        return key in self.configs

    def set(self, key: str, layer: ChannelLayerWrapper | None) -> ChannelLayerWrapper | None:
        """Point ``key`` at another wrapper (tests swap layers this way); returns the old one."""
        old = self.backends.get(key)
        if layer is None:
            self.backends.pop(key, None)
        else:
            self.backends[key] = layer
        return old


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> Any:
    """Set Django up; the raw layer of ``alias`` (for ``telex serve myproject.asgi:channel_layer``)."""
    import django

    django.setup(set_prefix=False)
    return channel_layers[alias].channel_layer


#: The layers of this process, one per alias.
channel_layers = ChannelLayerManager()
