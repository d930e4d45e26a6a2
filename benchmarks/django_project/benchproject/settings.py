"""Settings shared by every stack; only what must differ is steered by the environment.

BENCH_DJANGO_STACK  "telex" (telex.django), "channels" (Channels 1.1.8) or "plain" (WSGI/ASGI, no layer)
BENCH_REDIS_URL     the channel layer's redis-server (telex and channels)
BENCH_DJANGO_DB     the sqlite file (a fresh one per stack, made by ``migrate``)

Everything else is Django's default, in particular the full default
MIDDLEWARE and the database session backend.
"""

import os

STACK = os.environ.get("BENCH_DJANGO_STACK", "plain")
if STACK not in ("telex", "channels", "plain"):
    raise RuntimeError(f"BENCH_DJANGO_STACK must be telex, channels or plain, not {STACK!r}")

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "benchproject",
]
if STACK == "telex":
    INSTALLED_APPS.insert(0, "telex.django")
elif STACK == "channels":
    INSTALLED_APPS.insert(0, "channels")

# Django's startproject default, unchanged.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "benchproject.urls"
WSGI_APPLICATION = "benchproject.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_DJANGO_DB", "bench.sqlite3"),
    }
}
# SESSION_ENGINE is Django's default, django.contrib.sessions.backends.db.
USE_TZ = True
# Django 2.1 cannot load its translation catalogs on Python 3.11 (gettext lost ``codeset``);
# off for every stack alike. The view translates nothing.
USE_I18N = False
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

if STACK != "plain":
    # Both name asgi_redis's backend: Channels 1.x loads asgi_redis, telex.django maps the name to
    # Telex's Redis layer. Defaults otherwise (capacity 100, expiry 60 s) on both.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "asgi_redis.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]]},
            # No routes: both send http.request to Django's views.
            "ROUTING": "benchproject.routing.channel_routing",
        }
    }
