"""Django settings: only what Channels 1.x needs, the layer on the harness's Redis."""

import os

SECRET_KEY = "benchmarks-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
DATABASES: dict = {}
LOGGING_CONFIG = None

CHANNEL_LAYERS = {
    "default": {
        # asgi_redis's defaults (capacity 100, expiry 60 s): the peer as users run it.
        "BACKEND": "asgi_redis.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]]},
        "ROUTING": "benchpeer.consumers.channel_routing",
    }
}
