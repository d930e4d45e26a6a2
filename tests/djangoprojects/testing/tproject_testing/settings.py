"""Settings of the testing project; TELEX_TEST_DIR holds its sqlite files."""

import os
import tempfile

_DIR = os.environ.get("TELEX_TEST_DIR") or tempfile.mkdtemp(prefix="telex-testing-")

SECRET_KEY = "telex-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = [
    "telex.django",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "chat",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tproject_testing.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(_DIR, "db.sqlite3"),
        # ChannelLiveServerTestCase's worker threads need a file, as Channels' processes did.
        "TEST": {"NAME": os.path.join(_DIR, "test-db.sqlite3")},
        "OPTIONS": {"timeout": 20},
    }
}
USE_TZ = True
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "asgi_redis.RedisChannelLayer",
        "ROUTING": "tproject_testing.routing.channel_routing",
    },
}
