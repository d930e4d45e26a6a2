"""Settings for both supported Channels 1.x set-ups (see docs/channels1.md).

``CHANNELS1_LAYER`` picks the layer the project's workers use:
``asgi_redis`` (set-up A, Telex serves in front of it) or ``telex`` (set-up B,
Telex's Redis layer in an environment without asgi_redis). Both keep their
default key prefix (``asgi:`` and ``telex:``), so the two never share one.
"""

import os

SECRET_KEY = "telex-interop-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
MIDDLEWARE = []
ROOT_URLCONF = "chatproject.urls"
DATABASES = {}
USE_TZ = True
# Django sets the process's TZ from TIME_ZONE (default America/Chicago); the
# server loads these settings too, so its log times would follow it.
TIME_ZONE = "UTC"

REDIS_HOST = os.environ.get("CHANNELS1_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("CHANNELS1_REDIS_PORT", "6379"))
LAYER = os.environ.get("CHANNELS1_LAYER", "asgi_redis")

if LAYER == "asgi_redis":
    BACKEND = {
        "BACKEND": "asgi_redis.RedisChannelLayer",
        "CONFIG": {"hosts": [(REDIS_HOST, REDIS_PORT)]},
    }
elif LAYER == "telex":
    BACKEND = {
        "BACKEND": "telex.layers.RedisChannelLayer",
        "CONFIG": {"hosts": [f"redis://{REDIS_HOST}:{REDIS_PORT}/0"]},
    }
else:
    raise ValueError(f"CHANNELS1_LAYER must be 'asgi_redis' or 'telex', not {LAYER!r}")

CHANNEL_LAYERS = {"default": {**BACKEND, "ROUTING": "chatproject.routing.channel_routing"}}
