"""Settings of the Channels 1.x tutorial project, run on Telex.

Environment variables:
  REDIS_URL       use Redis (asgi_redis.RedisChannelLayer) instead of the in-memory layer
  EXAMPLE_DB      the sqlite file (default: db.sqlite3 beside manage.py)
  DJANGO_DEBUG    "0" turns DEBUG off
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# An example: never use this key for a site anyone else can reach.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "telex-example-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "telex.django",  # was "channels"; above staticfiles, so runserver is Telex's
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB") or str(BASE_DIR / "db.sqlite3"),
        # runserver's worker threads, or several runworker processes, share the file.
        "OPTIONS": {"timeout": 20},
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# The settings of a Channels 1.x project, unchanged: the old backend names
# select Telex's in-memory and Redis layers with the same CONFIG keys.
REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL:
    # Across processes: `telex serve example.asgi:channel_layer` + `manage.py runworker`.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "asgi_redis.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
            "ROUTING": "example.routing.channel_routing",
        },
    }
else:
    # One process: `manage.py runserver` runs the server and the consumers.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "asgiref.inmemory.ChannelLayer",
            "ROUTING": "example.routing.channel_routing",
        },
    }
