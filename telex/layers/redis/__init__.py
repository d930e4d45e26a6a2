"""The Redis channel layer (``pip install 'telex[redis]'``); see ``docs/redis-layer.md``."""

from .layer import RedisChannelLayer, RedisUnavailable

__all__ = ["RedisChannelLayer", "RedisUnavailable"]
