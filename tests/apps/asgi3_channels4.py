"""A Channels 4 chat (Django 5.2, ``ProtocolTypeRouter``, ``AuthMiddlewareStack``, groups) on
``telex.channels4.RedisChannelLayer``; the layer URL comes from ``CHAT_LAYER``, its prefix from
``CHAT_PREFIX``. Each message a socket sends goes to its whole room, as it is, plus ``pid``."""

from __future__ import annotations

import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="telex-tests-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "channels",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    CHANNEL_LAYERS={
        "default": {
            # channels_redis's for the uvicorn contrast in benchmarks/resume_restart.py.
            "BACKEND": os.environ.get("CHAT_BACKEND", "telex.channels4.RedisChannelLayer"),
            # The layer telex serve and the workers use: a consumer's channel_name is then its
            # socket's own channel, which survives the socket moving to another worker.
            "CONFIG": {
                "hosts": [os.environ["CHAT_LAYER"]],
                "prefix": os.environ.get("CHAT_PREFIX", "chat4:"),
            },
        }
    },
)
django.setup()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.urls import path  # noqa: E402

urlpatterns: list = []


class Chat(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()
        if not self.scope["extensions"].get("telex.resume", {}).get("resumed"):
            # A socket resumed on another worker was greeted already.
            await self.send_json({"pid": os.getpid(), "user": str(self.scope["user"])})

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.room, self.channel_name)

    async def receive_json(self, content):
        await self.channel_layer.group_send(self.room, {"type": "chat.message", **content})

    async def chat_message(self, event):
        await self.send_json({**event, "type": None, "pid": os.getpid()})


application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": AuthMiddlewareStack(URLRouter([path("chat/<str:room>/", Chat.as_asgi())])),
    }
)
