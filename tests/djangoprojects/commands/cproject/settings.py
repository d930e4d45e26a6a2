"""Settings steered by environment variables, one project for every command test.

CMD_LAYER      "memory" (default) or a redis:// URL
CMD_PREFIX     the Redis layer's key prefix
CMD_DEBUG      "1" for DEBUG
CMD_APP_ORDER  "static-first" puts django.contrib.staticfiles above telex.django
CMD_BROKEN     "routing" (ROUTING names a missing module) or "backend" (BACKEND cannot be imported)
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "telex-command-tests-not-secret"
DEBUG = os.environ.get("CMD_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = ["telex.django", "django.contrib.staticfiles", "cproject"]
if os.environ.get("CMD_APP_ORDER") == "static-first":
    INSTALLED_APPS = ["django.contrib.staticfiles", "telex.django", "cproject"]

MIDDLEWARE = []
ROOT_URLCONF = "cproject.urls"
DATABASES = {}
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
CHANNELS_WS_PROTOCOLS = ["chat.v1"]

_layer = os.environ.get("CMD_LAYER", "memory")
if _layer == "memory":
    _backend = {"BACKEND": "asgiref.inmemory.ChannelLayer"}
else:
    _backend = {
        "BACKEND": "asgi_redis.RedisChannelLayer",
        "CONFIG": {"hosts": [_layer], "prefix": os.environ.get("CMD_PREFIX", "telex-cmd:")},
    }
CHANNEL_LAYERS = {"default": {**_backend, "ROUTING": "cproject.routing.channel_routing"}}

_broken = os.environ.get("CMD_BROKEN")
if _broken == "routing":
    CHANNEL_LAYERS["default"]["ROUTING"] = "cproject.no_such_module.channel_routing"
elif _broken == "backend":
    CHANNEL_LAYERS["default"]["BACKEND"] = "no_such_package.ChannelLayer"
